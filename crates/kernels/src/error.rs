//! The crate's error type. Every fallible path (library discovery, NVRTC compile, the disk cache,
//! CUDA driver calls, launcher preconditions) returns [`KernelError`]; nothing panics.

use std::path::PathBuf;

/// Errors of the kernel crate.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A CUDA shared library could not be loaded (dynamic loading found none of its names).
    #[error("CUDA library {library} not found ({hint})")]
    LibraryMissing { library: &'static str, hint: String },
    /// The CUDA headers NVRTC needs (`cuda_bf16.h`) are not under the include directory.
    #[error("CUDA headers not found: {path} has no cuda_bf16.h ({hint})")]
    HeadersMissing { path: PathBuf, hint: String },
    /// NVRTC rejected a kernel source; `log` is the compiler's log.
    #[error("NVRTC failed to compile {source_name} for {arch}: {log}")]
    Compile {
        source_name: &'static str,
        arch: String,
        log: String,
    },
    /// An NVRTC API call failed outside compilation.
    #[error("NVRTC call {call} failed: {code}")]
    Nvrtc { call: &'static str, code: String },
    /// A CUDA driver call failed.
    #[error("CUDA driver error in {context}: {source}")]
    Driver {
        context: String,
        source: cudarc::driver::DriverError,
    },
    /// Reading or writing the on-disk kernel cache failed.
    #[error("kernel cache I/O at {path}: {source}")]
    CacheIo {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A launcher's precondition (shape, length, alignment, limit) does not hold.
    #[error("{op}: {message}")]
    Precondition { op: &'static str, message: String },
    /// A kernel or module name is not known to this crate.
    #[error("unknown kernel {0}")]
    UnknownKernel(String),
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, KernelError>;

/// Returns a [`KernelError::Precondition`] unless `cond` holds.
pub(crate) fn ensure(cond: bool, op: &'static str, message: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(KernelError::Precondition {
            op,
            message: message(),
        })
    }
}

/// Wraps a driver error with the operation it came from.
pub(crate) fn driver(
    context: impl Into<String>,
) -> impl FnOnce(cudarc::driver::DriverError) -> KernelError {
    let context = context.into();
    move |source| KernelError::Driver { context, source }
}
