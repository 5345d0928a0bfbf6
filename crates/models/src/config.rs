//! Validated model configuration, built from an HF `config.json` or from GGUF metadata.
//! (Skeleton: the loader helper implements parsing.)

use std::path::Path;

use crate::rope::RopeConfig;
use crate::Result;

/// Supported architectures (HF `model_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen3,
}

/// Hyper-parameters of a decoder-only model, validated (heads divide, dims positive).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope: RopeConfig,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub max_position_embeddings: usize,
    pub bos_token_id: Option<u32>,
    /// Every id that ends generation (config may give one or a list).
    pub eos_token_ids: Vec<u32>,
}

impl ModelConfig {
    /// Parses and validates `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let _ = path;
        Err(crate::ModelError::Unsupported(
            "config parsing not implemented yet".into(),
        ))
    }
}
