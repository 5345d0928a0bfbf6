//! Path → ready model: an HF folder (config.json + safetensors) or a `.gguf` file.
//!
//! Invariants: the architecture comes from the checkpoint (`model_type` in config.json,
//! `general.architecture` in GGUF), never from the file name; every tensor in the checkpoint is
//! consumed by the model or explicitly ignored (`WeightSource::finish`), so a half-loaded model
//! is an error, not a silent success.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arle_tensor::Device;

use crate::config::{Architecture, ModelConfig};
use crate::gguf::GgufFile;
use crate::llama::Llama;
use crate::qwen3::Qwen3;
use crate::qwen3_5::Qwen3_5;
use crate::qwen3_5_moe::Qwen3_5Moe;
use crate::weights::WeightSource;
use crate::{Model, ModelError, Result};

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

/// Loads the model at `path`: a directory holding `config.json` (HF safetensors) or a `.gguf`
/// file.
pub fn load_model(path: &Path) -> Result<LoadedModel> {
    load_model_on(path, Device::Cpu)
}

/// [`load_model`] with every weight placed on `device` (on a GPU: dequantised to bf16 and
/// uploaded as it is taken).
pub fn load_model_on(path: &Path, device: Device) -> Result<LoadedModel> {
    if path.is_dir() {
        let config_path = path.join("config.json");
        if !config_path.is_file() {
            return Err(ModelError::Unsupported(format!(
                "{}: a model folder needs config.json",
                path.display()
            )));
        }
        let config = ModelConfig::from_hf_json(&config_path)?;
        let mut ws = WeightSource::from_hf_folder(path)?.on_device(device);
        if config.architecture.is_hybrid() {
            // VL checkpoints: the vision tower and the multi-token-prediction head are unused.
            ws = ws.ignore_prefixes(&["model.visual.", "mtp."]);
        }
        let model = build(&mut ws, &config)?;
        ws.finish()?;
        return Ok(LoadedModel {
            model,
            config,
            format: ModelFormat::HfFolder(path.to_path_buf()),
        });
    }
    let is_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if !is_gguf {
        return Err(ModelError::Unsupported(format!(
            "{}: expected a model folder with config.json or a .gguf file",
            path.display()
        )));
    }
    let gguf = Arc::new(GgufFile::open(path)?);
    let config = ModelConfig::from_gguf(&gguf)?;
    let mut ws = WeightSource::from_gguf(&gguf, &config)?.on_device(device);
    let model = build(&mut ws, &config)?;
    ws.finish()?;
    Ok(LoadedModel {
        model,
        config,
        format: ModelFormat::Gguf(gguf),
    })
}

/// The architecture's model, taking its tensors from `ws`.
pub(crate) fn build(ws: &mut WeightSource, config: &ModelConfig) -> Result<Box<dyn Model>> {
    Ok(match config.architecture {
        Architecture::Llama => Box::new(Llama::load(ws, config)?),
        Architecture::Qwen3 => Box::new(Qwen3::load(ws, config)?),
        Architecture::Qwen3_5 => Box::new(Qwen3_5::load(ws, config)?),
        Architecture::Qwen3_5Moe => Box::new(Qwen3_5Moe::load(ws, config)?),
    })
}
