//! Qwen3 dense: `Qwen3ForCausalLM`, MODEL-SPECS §3.
//!
//! Llama's decoder plus a plain per-head RMSNorm of q and k over `head_dim` (weights `[D]`,
//! shared by all heads) applied **before** RoPE; the cache stores k after k_norm and RoPE.
//! `head_dim` is explicit, so `num_heads * head_dim` need not equal `hidden_size`.

use arle_tensor::ops::RmsNormKind;
use arle_tensor::Tensor;

use crate::config::ModelConfig;
use crate::layers::{AttentionConfig, DecoderOnly};
use crate::llama::model_info;
use crate::weights::WeightSource;
use crate::{ForwardBatch, Model, ModelCache, ModelInfo, Result, Tracer};

#[derive(Debug)]
pub struct Qwen3 {
    info: ModelInfo,
    model: DecoderOnly,
}

impl Qwen3 {
    /// Takes every tensor of a qwen3 checkpoint from `ws` (the caller calls `ws.finish()`).
    pub fn load(ws: &mut WeightSource, cfg: &ModelConfig) -> Result<Self> {
        let attn = AttentionConfig::from_model(cfg, Some(RmsNormKind::Plain));
        Ok(Self {
            info: model_info(cfg),
            model: DecoderOnly::load(ws, cfg, &attn)?,
        })
    }
}

impl Model for Qwen3 {
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
