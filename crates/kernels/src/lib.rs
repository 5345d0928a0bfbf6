//! arle-kernels: our own CUDA C kernels (`src/cu/*.cu`, one file per op family, each with a
//! header giving its math, shapes and layout), compiled at run time by NVRTC for the device's
//! exact architecture, cached on disk, and launched through typed launchers that check their
//! preconditions and return [`KernelError`] instead of launching a bad grid.
//!
//! Layers: [`sources`] (embedded text) -> [`nvrtc`] (locate NVRTC, compile to CUBIN) ->
//! [`cache`] (disk cache keyed by source hash, options/arch, NVRTC version) -> [`runtime`]
//! (context, stream, loaded kernels) -> [`ops`] (launchers). CUDA libraries are loaded
//! dynamically: the crate builds without a CUDA toolkit, and NVRTC alone (no GPU) is enough to
//! compile every kernel, which CI does with the PyPI wheels (`scripts/fetch-nvrtc.sh`).
//! Storage is bf16, accumulation f32.

pub mod arch;
pub mod cache;
pub mod error;
pub mod nvrtc;
pub mod ops;
pub mod runtime;
pub mod sources;

pub use arch::GpuArch;
pub use cache::{CacheOutcome, KernelCache};
pub use cudarc;
pub use error::{KernelError, Result};
pub use nvrtc::NvrtcToolchain;
pub use runtime::KernelRuntime;
pub use sources::{KernelSource, ALL_SOURCES};
