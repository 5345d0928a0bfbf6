//! The CUDA backend of the op set (compiled only with the `cuda` feature).
//!
//! Storage: activations are bf16 on the device (logits f32), weights are dequantised to bf16 at
//! upload ([`crate::Weight::to_device`]), KV pages are bf16 (allocated on the device by the first
//! `kv_append` of a GPU tensor). Ops run on the device of their tensor arguments: the dispatchers
//! in `ops::dispatch` call [`ops`] / [`attention`] here when an input lives on a GPU, which launch
//! arle-kernels' kernels, the glue kernels of `extra.cu`, and cuBLASLt/cuBLAS GEMMs, all on one
//! stream per device.
//!
//! Invariants: no op silently moves data between host and device; mixing a GPU tensor with a host
//! tensor (or a host-only weight) is a [`crate::TensorError::Cuda`] error. The only host reads are
//! explicit (`Tensor::to_host`, or a host accessor such as `Tensor::data`, which copies once).
//! Per-step metadata (token ids, positions, slot mapping, block tables) is uploaded by the op that
//! needs it; nothing is read back inside a step.

pub mod attention;
mod backend;
mod gemm_plan;
pub mod graph;
pub mod hybrid;
mod hybrid_state;
pub mod memory;
mod meta_cache;
pub mod moe;
pub mod ops;
pub mod pool;
pub mod random;
pub mod sampling;
pub mod step_timing;
mod storage;

pub use backend::{backend, CudaBackend};
pub use graph::{decode_step_inputs, StepGraph};
pub use memory::{memory_info, pool_stats, MemoryInfo};
pub use pool::{BufferPool, PoolStats};
pub use sampling::{sample_rows, GpuSampleRow};
pub(crate) use storage::{to_i32s, upload_bf16, upload_i32, upload_i32_pooled, upload_pooled};
pub use storage::{GpuData, GpuHandle, GpuKv, GpuWeight};

use crate::TensorError;

/// Wraps a cudarc driver error with what was being done.
pub(crate) fn cuda_err<E: std::fmt::Debug>(
    context: impl Into<String>,
) -> impl FnOnce(E) -> TensorError {
    let context = context.into();
    move |e| TensorError::Cuda {
        detail: format!("{context}: {e:?}"),
    }
}

/// A device-placement error for `op`.
pub(crate) fn placement(op: &'static str, detail: impl Into<String>) -> TensorError {
    TensorError::Cuda {
        detail: format!("{op}: {}", detail.into()),
    }
}
