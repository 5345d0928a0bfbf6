//! Qwen3.5 hybrid decoder (`Qwen3_5ForCausalLM` / the text part of
//! `Qwen3_5ForConditionalGeneration`), MODEL-SPECS §4; the MoE variant (§5) reuses this stack
//! with a [`SparseMoe`] MLP (see [`crate::qwen3_5_moe`]).
//!
//! Layer `i` is Gated DeltaNet (`linear_attn`) or gated full attention (`self_attn`) per
//! `layer_types`; every norm except the GDN output norm is zero-centred `(1+w)`.
//! Checkpoint keys are `model.*` (text-only) or `model.language_model.*` (VL layout; the loader
//! ignores `model.visual.*` and `mtp.*`). Invariants: layer `i` touches only `cache.layers[i]`
//! (paged KV for attention layers, the batch's state slots for linear layers); snapshots
//! requested in `batch.snapshot_positions` are pushed to `cache.captured`, one per
//! (sequence, position), layers in linear-layer order; logits come back in `logits_rows` order.

use arle_tensor::ops::{self, RmsNormKind};
use arle_tensor::{Tensor, Weight};

use crate::config::{HybridConfig, LayerType, ModelConfig};
use crate::layers::attention::StepPositions;
use crate::layers::gated_attention::load_gated_attention;
use crate::layers::gated_delta_net::GdnStepCache;
use crate::layers::{emit, Attention, GatedDeltaNet, Mlp, RmsNorm, SparseMoe};
use crate::weights::WeightSource;
use crate::{
    CacheSpec, CapturedState, ForwardBatch, LayerCache, LayerCacheSpec, Model, ModelCache,
    ModelError, ModelInfo, Result, StateSnapshot, Tracer,
};

/// The token mixer of one layer.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one per layer, never moved in a hot path
pub enum Mixer {
    Linear(GatedDeltaNet),
    Attention(Attention),
}

/// The channel mixer of one layer.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one per layer, never moved in a hot path
pub enum FeedForward {
    Dense(Mlp),
    Moe(SparseMoe),
}

#[derive(Clone, Debug)]
pub struct HybridLayer {
    pub input_layernorm: RmsNorm,
    pub mixer: Mixer,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: FeedForward,
}

#[derive(Debug)]
pub struct Qwen3_5 {
    info: ModelInfo,
    /// `[vocab, H]`
    pub embed_tokens: Weight,
    pub layers: Vec<HybridLayer>,
    pub norm: RmsNorm,
    /// `[vocab, H]`; the embedding itself when `lm_head.weight` is absent.
    pub lm_head: Weight,
}

impl Qwen3_5 {
    /// Takes every tensor of a qwen3_5 / qwen3_5_moe checkpoint (either key prefix).
    pub fn load(ws: &mut WeightSource, cfg: &ModelConfig) -> Result<Self> {
        let hybrid = hybrid_of(cfg)?;
        let root = if ws.contains("model.language_model.embed_tokens.weight") {
            "model.language_model"
        } else {
            "model"
        };
        let (vocab, h, eps) = (cfg.vocab_size, cfg.hidden_size, cfg.rms_norm_eps);
        let zc = RmsNormKind::ZeroCentered;
        let embed_tokens = ws.take(&format!("{root}.embed_tokens.weight"), &[vocab, h])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for (i, kind) in hybrid.layer_types.iter().enumerate() {
            let p = format!("{root}.layers.{i}");
            let mixer = match kind {
                LayerType::LinearAttention => Mixer::Linear(GatedDeltaNet::load(
                    ws,
                    &format!("{p}.linear_attn"),
                    cfg,
                    &hybrid.linear,
                )?),
                LayerType::FullAttention => {
                    Mixer::Attention(load_gated_attention(ws, &format!("{p}.self_attn"), cfg)?)
                }
            };
            let mlp = match &hybrid.moe {
                Some(moe) => FeedForward::Moe(SparseMoe::load(ws, &format!("{p}.mlp"), h, moe)?),
                None => FeedForward::Dense(Mlp::load(
                    ws,
                    &format!("{p}.mlp"),
                    h,
                    cfg.intermediate_size,
                    false,
                )?),
            };
            layers.push(HybridLayer {
                input_layernorm: RmsNorm::load(ws, &format!("{p}.input_layernorm"), h, eps, zc)?,
                mixer,
                post_attention_layernorm: RmsNorm::load(
                    ws,
                    &format!("{p}.post_attention_layernorm"),
                    h,
                    eps,
                    zc,
                )?,
                mlp,
            });
        }
        let norm = RmsNorm::load(ws, &format!("{root}.norm"), h, eps, zc)?;
        let lm_head = match ws.take_optional("lm_head.weight", &[vocab, h])? {
            Some(w) => w,
            None => embed_tokens.clone(),
        };
        Ok(Self {
            info: hybrid_info(cfg, hybrid),
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }
}

/// The hybrid section of a qwen3_5 config.
pub(crate) fn hybrid_of(cfg: &ModelConfig) -> Result<&HybridConfig> {
    cfg.hybrid.as_ref().ok_or_else(|| {
        ModelError::Unsupported(format!(
            "{} config has no hybrid (layer_types / linear_*) section",
            cfg.architecture.name()
        ))
    })
}

/// Engine-facing facts: paged KV for attention layers, a state slot for linear layers.
fn hybrid_info(cfg: &ModelConfig, hybrid: &HybridConfig) -> ModelInfo {
    let lin = &hybrid.linear;
    let layers = hybrid
        .layer_types
        .iter()
        .map(|t| match t {
            LayerType::FullAttention => LayerCacheSpec::Attention {
                num_kv_heads: cfg.num_key_value_heads,
                head_dim: cfg.head_dim,
            },
            LayerType::LinearAttention => LayerCacheSpec::Linear {
                conv_dim: 2 * lin.num_key_heads * lin.key_head_dim
                    + lin.num_value_heads * lin.value_head_dim,
                conv_kernel: lin.conv_kernel,
                num_v_heads: lin.num_value_heads,
                k_head_dim: lin.key_head_dim,
                v_head_dim: lin.value_head_dim,
            },
        })
        .collect();
    ModelInfo {
        architecture: cfg.architecture.name().to_string(),
        vocab_size: cfg.vocab_size,
        hidden_size: cfg.hidden_size,
        max_context_tokens: cfg.max_position_embeddings,
        cache: CacheSpec { layers },
    }
}

impl Model for Qwen3_5 {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward(
        &self,
        batch: &ForwardBatch,
        cache: &mut ModelCache,
        mut trace: Option<Tracer<'_>>,
    ) -> Result<Tensor> {
        if cache.layers.len() != self.layers.len() {
            return Err(ModelError::Unsupported(format!(
                "cache has {} layers, model {}",
                cache.layers.len(),
                self.layers.len()
            )));
        }
        let step = StepPositions {
            positions: &batch.positions,
            attention: &batch.attention,
        };
        // Per sequence, one snapshot per requested position (layers filled below).
        let mut pending: Vec<Vec<StateSnapshot>> = (0..batch.attention.seqs.len())
            .map(|s| {
                let positions = batch
                    .snapshot_positions
                    .get(s)
                    .map_or(&[][..], Vec::as_slice);
                positions
                    .iter()
                    .map(|&position| StateSnapshot {
                        position,
                        layers: Vec::new(),
                    })
                    .collect()
            })
            .collect();
        let mut gdn_step = GdnStepCache::default(); // GPU launch metadata, shared by GDN layers
        let mut x = ops::embedding(&self.embed_tokens, &batch.token_ids)?; // [n, H]
        for (i, (layer, layer_cache)) in self.layers.iter().zip(&mut cache.layers).enumerate() {
            let prefix = format!("model.layers.{i}");
            emit(&mut trace, &prefix, "in", &x);
            let h = layer.input_layernorm.forward(&x)?;
            emit(&mut trace, &prefix, "input_layernorm.out", &h);
            let mixed = match (&layer.mixer, layer_cache) {
                (Mixer::Attention(attn), LayerCache::Attention(kv)) => {
                    let p = format!("{prefix}.self_attn");
                    attn.forward(&h, step, kv, &p, &mut trace)?
                }
                (Mixer::Linear(gdn), LayerCache::Linear(state)) => {
                    let p = format!("{prefix}.linear_attn");
                    let (out, captures) =
                        gdn.forward(&h, batch, state, &mut gdn_step, &p, &mut trace)?;
                    for (seq_snaps, layer_snaps) in pending.iter_mut().zip(captures) {
                        for (snap, layer_snap) in seq_snaps.iter_mut().zip(layer_snaps) {
                            snap.layers.push(layer_snap);
                        }
                    }
                    out
                }
                _ => {
                    return Err(ModelError::Unsupported(format!(
                        "layer {i}: cache kind does not match the layer type"
                    )))
                }
            };
            ops::add_inplace(&mut x, &mixed)?;
            let h = layer.post_attention_layernorm.forward(&x)?;
            let mlp = match &layer.mlp {
                FeedForward::Dense(mlp) => mlp.forward(&h)?,
                FeedForward::Moe(moe) => moe.forward(&h, &format!("{prefix}.mlp"), &mut trace)?,
            };
            emit(&mut trace, &prefix, "mlp.out", &mlp);
            ops::add_inplace(&mut x, &mlp)?;
            emit(&mut trace, &prefix, "out", &x);
        }
        for (seq_index, snaps) in pending.into_iter().enumerate() {
            cache
                .captured
                .extend(snaps.into_iter().map(|snapshot| CapturedState {
                    seq_index,
                    snapshot,
                }));
        }
        let normed_rows = if trace.is_some() {
            let normed = self.norm.forward(&x)?;
            emit(&mut trace, "model", "norm.out", &normed);
            normed.gather_rows(&batch.logits_rows)?
        } else {
            self.norm.forward(&x.gather_rows(&batch.logits_rows)?)?
        };
        Ok(ops::linear(&normed_rows, &self.lm_head, None)?) // [rows, vocab]
    }
}
