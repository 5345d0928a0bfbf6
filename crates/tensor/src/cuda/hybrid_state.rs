//! [`GpuLinearState`]: one Gated DeltaNet layer's state slots on a GPU (re-exported by
//! [`super::hybrid`]). Layout (matches arle-kernels' `causal_conv1d` / `gated_delta_net`): conv
//! window `[n_slots, conv_dim, K-1]` bf16, recurrent state `[n_slots, Hv, Dk, Dv]` f32. Host
//! values use the CPU layout (conv `[K-1, conv_dim]` oldest first, recurrent `[Hv, Dk, Dv]`);
//! upload / write / read transpose the conv window. Invariant: slot ranges are checked before
//! every copy; reads wait for the stream.

use std::ops::Range;
use std::sync::Arc;

use arle_kernels::cudarc::driver::CudaSlice;
use half::bf16;

use super::{backend, cuda_err, CudaBackend};
use crate::error::shape_err;
use crate::{Device, Result, TensorError};

/// One linear-attention layer's state slots on a GPU.
#[derive(Debug)]
pub struct GpuLinearState {
    pub(super) backend: Arc<CudaBackend>,
    pub(super) num_slots: usize,
    pub(super) conv_dim: usize,
    /// `K - 1` (window length).
    pub(super) window: usize,
    /// `Hv * Dk * Dv`.
    pub(super) recurrent_floats: usize,
    /// `[n_slots, conv_dim, K-1]`
    pub(super) conv: CudaSlice<bf16>,
    /// `[n_slots, Hv, Dk, Dv]`
    pub(super) recurrent: CudaSlice<f32>,
}

impl GpuLinearState {
    /// Uploads `num_slots` slots from host storage in the CPU layout: `conv`
    /// `[n_slots, K-1, conv_dim]`, `recurrent` `[n_slots, recurrent_floats]`.
    pub fn upload(
        ordinal: usize,
        num_slots: usize,
        (conv_dim, conv_kernel): (usize, usize),
        recurrent_floats: usize,
        conv: &[f32],
        recurrent: &[f32],
    ) -> Result<Self> {
        let window = conv_kernel.saturating_sub(1);
        if conv.len() != num_slots * window * conv_dim
            || recurrent.len() != num_slots * recurrent_floats
        {
            let detail = format!(
                "{num_slots} slots: conv {} values (conv_dim {conv_dim}, K {conv_kernel}), recurrent {}",
                conv.len(),
                recurrent.len()
            );
            return shape_err("GpuLinearState::upload", detail);
        }
        let backend = backend(ordinal)?;
        let stream = backend.stream();
        let mut conv_t = vec![bf16::ZERO; conv.len().max(1)];
        for s in 0..num_slots {
            transpose_window(
                &conv[s * window * conv_dim..][..window * conv_dim],
                &mut conv_t[s * window * conv_dim..][..window * conv_dim],
                window,
                conv_dim,
            );
        }
        let conv = stream
            .clone_htod(&conv_t)
            .map_err(cuda_err("linear state upload"))?;
        let recurrent = if recurrent.is_empty() {
            stream.alloc_zeros::<f32>(1)
        } else {
            stream.clone_htod(recurrent)
        }
        .map_err(cuda_err("linear state upload"))?;
        Ok(Self {
            backend,
            num_slots,
            conv_dim,
            window,
            recurrent_floats,
            conv,
            recurrent,
        })
    }

    pub fn device(&self) -> Device {
        Device::Cuda(self.backend.ordinal())
    }

    fn ranges(&self, slot: usize) -> Result<(Range<usize>, Range<usize>)> {
        if slot >= self.num_slots {
            return Err(TensorError::Invalid {
                op: "state slot",
                detail: format!("slot {slot} >= {} slots", self.num_slots),
            });
        }
        let (c, r) = (self.window * self.conv_dim, self.recurrent_floats);
        Ok((slot * c..(slot + 1) * c, slot * r..(slot + 1) * r))
    }

    /// Zeroes slot `slot` (a sequence starting at position 0).
    pub fn reset_slot(&mut self, slot: usize) -> Result<()> {
        let (c, r) = self.ranges(slot)?;
        let stream = self.backend.stream().clone();
        if !c.is_empty() {
            stream
                .memset_zeros(&mut self.conv.slice_mut(c))
                .map_err(cuda_err("reset_state"))?;
        }
        if !r.is_empty() {
            stream
                .memset_zeros(&mut self.recurrent.slice_mut(r))
                .map_err(cuda_err("reset_state"))?;
        }
        Ok(())
    }

    /// Writes host values (CPU layout: conv `[K-1, conv_dim]`, recurrent `[Hv, Dk, Dv]`) into
    /// slot `slot`.
    pub fn write_slot(&mut self, slot: usize, conv: &[f32], recurrent: &[f32]) -> Result<()> {
        let (c, r) = self.ranges(slot)?;
        if conv.len() != c.len() || recurrent.len() != r.len() {
            let detail = format!(
                "conv {} / {}, recurrent {} / {}",
                conv.len(),
                c.len(),
                recurrent.len(),
                r.len()
            );
            return shape_err("restore_state", detail);
        }
        let stream = self.backend.stream().clone();
        if !c.is_empty() {
            let mut host = vec![bf16::ZERO; c.len()];
            transpose_window(conv, &mut host, self.window, self.conv_dim);
            stream
                .memcpy_htod(&host, &mut self.conv.slice_mut(c))
                .map_err(cuda_err("restore_state"))?;
        }
        if !r.is_empty() {
            stream
                .memcpy_htod(recurrent, &mut self.recurrent.slice_mut(r))
                .map_err(cuda_err("restore_state"))?;
        }
        Ok(())
    }

    /// Slot `slot` on the host in the CPU layout: (conv `[K-1, conv_dim]`, recurrent
    /// `[Hv, Dk, Dv]`). Waits for the stream.
    pub fn read_slot(&self, slot: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (c, r) = self.ranges(slot)?;
        let stream = self.backend.stream();
        let mut conv = vec![0.0f32; c.len()];
        if !c.is_empty() {
            let dev = stream
                .clone_dtoh(&self.conv.slice(c))
                .map_err(cuda_err("snapshot_state"))?;
            // dev is [conv_dim, K-1]; conv is [K-1, conv_dim].
            for ch in 0..self.conv_dim {
                for j in 0..self.window {
                    conv[j * self.conv_dim + ch] = f32::from(dev[ch * self.window + j]);
                }
            }
        }
        let recurrent = if r.is_empty() {
            Vec::new()
        } else {
            stream
                .clone_dtoh(&self.recurrent.slice(r))
                .map_err(cuda_err("snapshot_state"))?
        };
        self.backend.synchronize()?;
        Ok((conv, recurrent))
    }
}

/// `[K-1, conv_dim]` f32 (CPU layout) → `[conv_dim, K-1]` bf16 (kernel layout).
fn transpose_window(src: &[f32], dst: &mut [bf16], window: usize, conv_dim: usize) {
    for j in 0..window {
        for ch in 0..conv_dim {
            dst[ch * window + j] = bf16::from_f32(src[j * conv_dim + ch]);
        }
    }
}
