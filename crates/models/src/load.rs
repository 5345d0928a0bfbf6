//! Path → ready model: an HF folder (config.json + safetensors) or a `.gguf` file.
//! (Skeleton: completed once loaders and architectures exist.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::ModelConfig;
use crate::gguf::GgufFile;
use crate::{Model, Result};

/// Where the model came from; the tokenizer is read from the same place.
#[derive(Clone, Debug)]
pub enum ModelFormat {
    HfFolder(PathBuf),
    Gguf(Arc<GgufFile>),
}

pub struct LoadedModel {
    pub model: Box<dyn Model>,
    pub config: ModelConfig,
    pub format: ModelFormat,
}

/// Loads the model at `path`.
pub fn load_model(path: &Path) -> Result<LoadedModel> {
    let _ = path;
    Err(crate::ModelError::Unsupported(
        "load_model not implemented yet".into(),
    ))
}
