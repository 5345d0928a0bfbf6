//! Llama family (SmolLM2, Llama 3.x): `LlamaForCausalLM`, MODEL-SPECS §2.
//!
//! Pre-norm decoder with plain RMSNorm, GQA attention (optional q/k/v/o bias), SwiGLU MLP
//! (optional bias), RoPE from the config (default / linear / llama3 / yarn). lm_head is tied to
//! the embedding when `lm_head.weight` is absent. GGUF checkpoints arrive with HF names and
//! un-permuted Q/K rows (the [`WeightSource`] does that), so this file is format-agnostic.

use arle_tensor::Tensor;

use crate::config::ModelConfig;
use crate::layers::{AttentionConfig, DecoderOnly};
use crate::weights::WeightSource;
use crate::{
    CacheSpec, ForwardBatch, LayerCacheSpec, Model, ModelCache, ModelInfo, Result, Tracer,
};

#[derive(Debug)]
pub struct Llama {
    info: ModelInfo,
    model: DecoderOnly,
}

impl Llama {
    /// Takes every tensor of a llama checkpoint from `ws` (the caller calls `ws.finish()`).
    pub fn load(ws: &mut WeightSource, cfg: &ModelConfig) -> Result<Self> {
        let attn = AttentionConfig::from_model(cfg, None);
        Ok(Self {
            info: model_info(cfg),
            model: DecoderOnly::load(ws, cfg, &attn)?,
        })
    }
}

impl Model for Llama {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward(
        &self,
        batch: &ForwardBatch,
        cache: &mut ModelCache,
        trace: Option<Tracer<'_>>,
    ) -> Result<Tensor> {
        self.model.forward(batch, cache, trace)
    }
}

/// Engine-facing facts of a dense attention-only model (one KV entry per layer).
pub(crate) fn model_info(cfg: &ModelConfig) -> ModelInfo {
    let architecture = cfg.architecture.name();
    let layer = LayerCacheSpec::Attention {
        num_kv_heads: cfg.num_key_value_heads,
        head_dim: cfg.head_dim,
    };
    ModelInfo {
        architecture: architecture.to_string(),
        vocab_size: cfg.vocab_size,
        hidden_size: cfg.hidden_size,
        max_context_tokens: cfg.max_position_embeddings,
        cache: CacheSpec {
            layers: vec![layer; cfg.num_hidden_layers],
        },
    }
}
