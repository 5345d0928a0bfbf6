//! [`Tensor`]: an activation, row-major, on a [`Device`].
//!
//! On the CPU the values are f32 in `data`. With the `cuda` feature a tensor may instead live on
//! a GPU (bf16, or f32 for logits) behind a shared device handle; then `data` is empty and host
//! accessors ([`Tensor::data`], [`Tensor::row`], ...) read a host copy made on first use.
//! [`Tensor::to_host`] is the explicit, fallible way to bring a tensor back.
//!
//! Invariant: `shape.iter().product()` values; on the CPU `data.len()` equals that.

use crate::{error::shape_err, Result};

/// Where a tensor lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// GPU `ordinal` (CUDA backend).
    #[cfg(feature = "cuda")]
    Cuda(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
    /// Device storage; `None` on the CPU.
    #[cfg(feature = "cuda")]
    gpu: Option<crate::cuda::GpuHandle>,
}

impl Tensor {
    /// A tensor from values; fails if the shape does not match the length.
    pub fn from_vec(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return shape_err(
                "Tensor::from_vec",
                format!("shape {shape:?} needs {n} values, got {}", data.len()),
            );
        }
        Ok(Self::host(shape, data))
    }

    fn host(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self {
            shape,
            data,
            #[cfg(feature = "cuda")]
            gpu: None,
        }
    }

    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self::host(shape, vec![0.0; n])
    }

    pub fn device(&self) -> Device {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return Device::Cuda(g.backend().ordinal());
        }
        Device::Cpu
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Size of dimension `i`.
    pub fn dim(&self, i: usize) -> usize {
        self.shape[i]
    }

    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values (f32). For a GPU tensor: a host copy, made once on first use (empty if the
    /// copy failed; use [`Tensor::to_host`] to see the error).
    pub fn data(&self) -> &[f32] {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return g.host_mirror();
        }
        &self.data
    }

    /// Mutable values. A GPU tensor is first moved to the host (it becomes a CPU tensor).
    pub fn data_mut(&mut self) -> &mut [f32] {
        #[cfg(feature = "cuda")]
        if let Some(g) = self.gpu.take() {
            self.data = g.to_host_vec().unwrap_or_default();
        }
        &mut self.data
    }

    /// The values as a vector (a host copy for a GPU tensor, empty if that copy failed).
    pub fn into_vec(self) -> Vec<f32> {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return g.to_host_vec().unwrap_or_default();
        }
        self.data
    }

    /// The same values on the CPU (a device-to-host copy for a GPU tensor; no copy otherwise).
    pub fn to_host(self) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            let data = g.to_host_vec()?;
            return Tensor::from_vec(self.shape, data);
        }
        Ok(self)
    }

    /// The same values on `device` (bf16 on a GPU).
    pub fn to_device(self, device: Device) -> Result<Tensor> {
        match device {
            Device::Cpu => self.to_host(),
            #[cfg(feature = "cuda")]
            Device::Cuda(ordinal) => {
                if self.device() == device {
                    return Ok(self);
                }
                let host = self.to_host()?;
                let backend = crate::cuda::backend(ordinal)?;
                let buf = crate::cuda::upload_bf16(&backend, &host.data)?;
                let handle = crate::cuda::GpuHandle::new(backend, crate::cuda::GpuData::Bf16(buf));
                Ok(Tensor::from_gpu(host.shape, handle))
            }
        }
    }

    /// A tensor backed by device storage holding `shape.iter().product()` values.
    #[cfg(feature = "cuda")]
    pub(crate) fn from_gpu(shape: Vec<usize>, handle: crate::cuda::GpuHandle) -> Self {
        Self {
            shape,
            data: Vec::new(),
            gpu: Some(handle),
        }
    }

    /// The device storage, if this tensor lives on a GPU.
    #[cfg(feature = "cuda")]
    pub fn gpu(&self) -> Option<&crate::cuda::GpuHandle> {
        self.gpu.as_ref()
    }

    #[cfg(feature = "cuda")]
    pub(crate) fn gpu_mut(&mut self) -> Option<&mut crate::cuda::GpuHandle> {
        self.gpu.as_mut()
    }

    /// Same data, new shape with the same number of elements.
    pub fn reshape(mut self, shape: Vec<usize>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.elements() {
            return shape_err("Tensor::reshape", format!("{:?} -> {shape:?}", self.shape));
        }
        self.shape = shape;
        Ok(self)
    }

    /// Row `i` of a 2-D tensor.
    pub fn row(&self, i: usize) -> &[f32] {
        let cols = self.shape.last().copied().unwrap_or(1);
        &self.data()[i * cols..(i + 1) * cols]
    }

    /// Selected rows of a 2-D tensor, in the given order. A GPU bf16 tensor is gathered on the
    /// device; a GPU f32 tensor (logits) is copied to the host once and gathered there (its rows
    /// go to the host sampler).
    pub fn gather_rows(&self, rows: &[usize]) -> Result<Tensor> {
        if self.shape.len() != 2 {
            return shape_err(
                "Tensor::gather_rows",
                format!("needs 2-D, got {:?}", self.shape),
            );
        }
        let cols = self.shape[1];
        if let Some(&r) = rows.iter().find(|&&r| r >= self.shape[0]) {
            return shape_err(
                "Tensor::gather_rows",
                format!("row {r} out of {}", self.shape[0]),
            );
        }
        let every_row =
            rows.len() == self.shape[0] && rows.iter().enumerate().all(|(i, &r)| i == r);
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            if let crate::cuda::GpuData::Bf16(_) = g.data() {
                if every_row {
                    // Decode steps: share the buffer (no upload, no launch; a captured step
                    // graph cannot upload).
                    return Ok(self.clone());
                }
                return crate::cuda::ops::gather_rows(g, rows, cols);
            }
        }
        let mut out = Vec::with_capacity(rows.len() * cols);
        if every_row {
            out.extend_from_slice(self.data());
        } else {
            for &r in rows {
                out.extend_from_slice(self.row(r));
            }
        }
        Tensor::from_vec(vec![rows.len(), cols], out)
    }
}
