//! Qwen3.5-MoE (`Qwen3_5MoeForCausalLM`, MODEL-SPECS §5): the [`Qwen3_5`] hybrid stack with a
//! [`crate::layers::SparseMoe`] MLP (softmax top-k router, renormalised, shared expert with a
//! sigmoid gate) in every layer. Both expert layouts (fused `gate_up_proj` / per-expert) load.

use arle_tensor::Tensor;

use crate::config::ModelConfig;
use crate::qwen3_5::{hybrid_of, Qwen3_5};
use crate::weights::WeightSource;
use crate::{ForwardBatch, Model, ModelCache, ModelError, ModelInfo, Result, Tracer};

#[derive(Debug)]
pub struct Qwen3_5Moe {
    pub model: Qwen3_5,
}

impl Qwen3_5Moe {
    /// Takes every tensor of a qwen3_5_moe checkpoint; the config must carry MoE sizes.
    pub fn load(ws: &mut WeightSource, cfg: &ModelConfig) -> Result<Self> {
        if hybrid_of(cfg)?.moe.is_none() {
            return Err(ModelError::Unsupported(
                "qwen3_5_moe config has no MoE sizes".into(),
            ));
        }
        Ok(Self {
            model: Qwen3_5::load(ws, cfg)?,
        })
    }
}

impl Model for Qwen3_5Moe {
    fn info(&self) -> &ModelInfo {
        self.model.info()
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
