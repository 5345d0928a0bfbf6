//! Device storage: [`GpuTensor`] (an activation's buffer, bf16 or f32), [`GpuWeight`] (a weight
//! dequantised to bf16 at upload) and [`GpuKv`] (one attention layer's bf16 KV pages).
//!
//! Invariants: a buffer holds exactly the owning tensor's element count; a tensor's host mirror
//! (filled on the first host read) is dropped whenever its buffer is mutably borrowed, so a host
//! read never sees stale values. Handles are `Arc`s: cloning a tensor shares its buffer, and the
//! first in-place op on a shared buffer copies it (copy-on-write). An activation's buffer goes
//! back to the backend's [`super::pool::BufferPool`] when its last handle drops (the pool frees
//! buffers it did not hand out).

use std::mem::ManuallyDrop;
use std::sync::{Arc, OnceLock};

use arle_kernels::cudarc::driver::CudaSlice;
use half::bf16;

use super::pool::PoolSlice;
use super::{cuda_err, CudaBackend};
use crate::{Result, TensorError};

/// An activation buffer on the device.
#[derive(Debug)]
pub enum GpuData {
    /// Hidden states, q/k/v, MLP activations.
    Bf16(CudaSlice<bf16>),
    /// Logits (linear with an f32-output weight).
    F32(CudaSlice<f32>),
}

impl GpuData {
    /// A device copy in a pooled buffer.
    pub(crate) fn try_clone(&self, backend: &CudaBackend) -> Result<Self> {
        fn copy<T: arle_kernels::cudarc::driver::DeviceRepr>(
            backend: &CudaBackend,
            s: &CudaSlice<T>,
        ) -> Result<CudaSlice<T>> {
            // SAFETY: fully written by the copy right below.
            let mut out = unsafe { backend.pool().alloc::<T>(s.len())? };
            backend
                .stream()
                .memcpy_dtod(s, &mut out)
                .map_err(cuda_err("tensor copy"))?;
            Ok(out)
        }
        Ok(match self {
            GpuData::Bf16(s) => GpuData::Bf16(copy(backend, s)?),
            GpuData::F32(s) => GpuData::F32(copy(backend, s)?),
        })
    }
}

#[derive(Debug)]
pub struct GpuTensor {
    pub(crate) backend: Arc<CudaBackend>,
    /// Taken only by `Drop` (to hand the buffer back to the pool).
    pub(crate) data: ManuallyDrop<GpuData>,
    host: OnceLock<Vec<f32>>,
}

impl Drop for GpuTensor {
    fn drop(&mut self) {
        // SAFETY: `data` is taken exactly once, here, and never used afterwards.
        let data = unsafe { ManuallyDrop::take(&mut self.data) };
        let pool = self.backend.pool();
        match data {
            GpuData::Bf16(s) => pool.recycle(s),
            GpuData::F32(s) => pool.recycle(s),
        }
    }
}

/// Shared handle to a [`GpuTensor`] (what a `Tensor` holds).
#[derive(Clone, Debug)]
pub struct GpuHandle(pub(crate) Arc<GpuTensor>);

impl PartialEq for GpuHandle {
    /// Same buffer (values are compared on the host by `Tensor`'s callers when needed).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl GpuHandle {
    pub(crate) fn new(backend: Arc<CudaBackend>, data: GpuData) -> Self {
        Self(Arc::new(GpuTensor {
            backend,
            data: ManuallyDrop::new(data),
            host: OnceLock::new(),
        }))
    }

    pub fn backend(&self) -> &Arc<CudaBackend> {
        &self.0.backend
    }

    pub fn data(&self) -> &GpuData {
        &self.0.data
    }

    /// The bf16 buffer, or an error naming `op` when this is an f32 tensor.
    pub(crate) fn bf16(&self, op: &'static str) -> Result<&CudaSlice<bf16>> {
        match &*self.0.data {
            GpuData::Bf16(s) => Ok(s),
            GpuData::F32(_) => Err(TensorError::Cuda {
                detail: format!("{op}: needs a bf16 tensor, got f32"),
            }),
        }
    }

    /// The bf16 buffer for in-place update (copied first when shared; host mirror dropped).
    pub(crate) fn bf16_mut(&mut self, op: &'static str) -> Result<&mut CudaSlice<bf16>> {
        if Arc::get_mut(&mut self.0).is_none() {
            let copy = GpuTensor {
                backend: self.0.backend.clone(),
                data: ManuallyDrop::new(self.0.data.try_clone(&self.0.backend)?),
                host: OnceLock::new(),
            };
            self.0 = Arc::new(copy);
        }
        let inner = Arc::get_mut(&mut self.0).ok_or_else(|| TensorError::Cuda {
            detail: format!("{op}: buffer still shared after copy"),
        })?;
        inner.host = OnceLock::new();
        match &mut *inner.data {
            GpuData::Bf16(s) => Ok(s),
            GpuData::F32(_) => Err(TensorError::Cuda {
                detail: format!("{op}: needs a bf16 tensor, got f32"),
            }),
        }
    }

    /// Copies the values to the host as f32 (waits for the stream).
    pub fn to_host_vec(&self) -> Result<Vec<f32>> {
        let stream = self.0.backend.stream();
        let out = match &*self.0.data {
            GpuData::Bf16(s) => stream
                .clone_dtoh(s)
                .map(|v| v.into_iter().map(f32::from).collect()),
            GpuData::F32(s) => stream.clone_dtoh(s),
        }
        .map_err(cuda_err("device-to-host copy"))?;
        self.0.backend.synchronize()?;
        Ok(out)
    }

    /// The host mirror, filled by the first call (one device-to-host copy); empty when the copy
    /// failed (the failure is also reported by [`GpuHandle::to_host_vec`]).
    pub(crate) fn host_mirror(&self) -> &[f32] {
        self.0
            .host
            .get_or_init(|| self.to_host_vec().unwrap_or_default())
    }
}

/// A weight's device copy: bf16 values, row-major as on the host.
#[derive(Debug)]
pub struct GpuWeight {
    pub(crate) backend: Arc<CudaBackend>,
    pub(crate) data: CudaSlice<bf16>,
    /// `linear` with this weight produces f32 outputs (vocabulary projections: logits).
    pub(crate) f32_output: bool,
}

/// One attention layer's KV pages on the device, `[num_blocks, 16, num_kv_heads, head_dim]` bf16.
#[derive(Debug)]
pub struct GpuKv {
    pub(crate) backend: Arc<CudaBackend>,
    pub(crate) k: CudaSlice<bf16>,
    pub(crate) v: CudaSlice<bf16>,
}

/// Uploads `values` into a pooled buffer (returned to the pool when dropped); `values` must not
/// be empty.
pub(crate) fn upload_pooled<T: arle_kernels::cudarc::driver::DeviceRepr>(
    backend: &CudaBackend,
    values: &[T],
) -> Result<PoolSlice<T>> {
    // SAFETY: fully written by the copy right below.
    let mut buf = unsafe { backend.pool().alloc::<T>(values.len().max(1))? };
    backend
        .stream()
        .memcpy_htod(values, &mut buf.slice_mut(0..values.len()))
        .map_err(cuda_err("host-to-device copy"))?;
    Ok(PoolSlice::new(backend.pool().clone(), buf))
}

/// Uploads small i32 metadata into a pooled buffer (the decode path's uploads).
pub(crate) fn upload_i32_pooled(backend: &CudaBackend, values: &[i32]) -> Result<PoolSlice<i32>> {
    upload_pooled(backend, values)
}

/// Uploads f32 values as bf16 (round to nearest even).
pub(crate) fn upload_bf16(backend: &CudaBackend, values: &[f32]) -> Result<CudaSlice<bf16>> {
    let host: Vec<bf16> = values.iter().map(|&v| bf16::from_f32(v)).collect();
    backend
        .stream()
        .clone_htod(&host)
        .map_err(cuda_err("host-to-device copy"))
}

/// Uploads small i32 metadata (token ids, positions, slots, block tables).
pub(crate) fn upload_i32(backend: &CudaBackend, values: &[i32]) -> Result<CudaSlice<i32>> {
    backend
        .stream()
        .clone_htod(values)
        .map_err(cuda_err("host-to-device copy"))
}

/// Converts host `u32` ids/positions/slots to the kernels' `int`, failing on overflow.
pub(crate) fn to_i32s(op: &'static str, values: &[u32]) -> Result<Vec<i32>> {
    values
        .iter()
        .map(|&v| {
            i32::try_from(v).map_err(|_| TensorError::Invalid {
                op,
                detail: format!("{v} exceeds i32"),
            })
        })
        .collect()
}
