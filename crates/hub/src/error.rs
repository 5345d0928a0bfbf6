//! The one error type of this crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("model `{0}` is not a local path, a built-in model name or a Hugging Face hub id (owner/name)")]
    NotFound(String),
    #[error("{path}: {detail}")]
    InvalidLocal { path: PathBuf, detail: String },
    #[error("download of {url} failed: {detail}")]
    Download { url: String, detail: String },
    #[error("Hugging Face hub: {0}")]
    Hub(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("package {package}: {detail}")]
    Package { package: String, detail: String },
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
    move |source| HubError::Io {
        path: path.to_path_buf(),
        source,
    }
}
