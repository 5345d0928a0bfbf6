//! The one error type of this crate. Every loading error names the file it concerns.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file exists but its contents are not what the format requires.
    #[error("{path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: invalid config: {detail}")]
    Config { path: PathBuf, detail: String },
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: unexpected tensors not used by the model: {names:?}")]
    UnexpectedTensors { path: PathBuf, names: Vec<String> },
    #[error("{path}: tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    TensorShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Tensor(#[from] arle_tensor::TensorError),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
