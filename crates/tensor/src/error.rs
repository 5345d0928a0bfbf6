//! The one error type of this crate.

/// Errors raised by tensor construction and ops.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("shape mismatch in {op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("{op} does not support dtype {dtype:?}")]
    UnsupportedDType {
        op: &'static str,
        dtype: crate::DType,
    },
    #[error("byte length mismatch: {dtype:?} tensor of {elements} elements needs {expected} bytes, got {actual}")]
    ByteLength {
        dtype: crate::DType,
        elements: usize,
        expected: usize,
        actual: usize,
    },
    #[error("invalid argument to {op}: {detail}")]
    Invalid { op: &'static str, detail: String },
    /// A CUDA library, driver, kernel or device-placement failure (CUDA backend only).
    #[cfg(feature = "cuda")]
    #[error("CUDA: {detail}")]
    Cuda { detail: String },
}

#[cfg(feature = "cuda")]
impl From<arle_kernels::KernelError> for TensorError {
    fn from(e: arle_kernels::KernelError) -> Self {
        TensorError::Cuda {
            detail: e.to_string(),
        }
    }
}

pub type Result<T, E = TensorError> = std::result::Result<T, E>;

/// Shorthand for a shape error.
pub fn shape_err<T>(op: &'static str, detail: impl Into<String>) -> Result<T> {
    Err(TensorError::Shape {
        op,
        detail: detail.into(),
    })
}
