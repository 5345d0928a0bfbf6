//! Pre-norm dense decoder: [`DecoderLayer`] and the [`DecoderOnly`] stack shared by llama and
//! qwen3 (MODEL-SPECS §2.2).
//!
//! Invariants: layer `i` reads and writes only `cache.layers[i]`; the final norm and lm_head run
//! only on `batch.logits_rows` (the norm runs on every row only while tracing, for
//! `model.norm.out`); logits come back in `logits_rows` order. Residual adds are fused into the
//! following norm (`ops::add_rms_norm`, exactly add then norm), the MLP output of layer `i` being
//! added by layer `i + 1`'s input norm (one kernel fewer per add on a GPU).

use arle_tensor::ops::{self, RmsNormKind};
use arle_tensor::{KvLayer, Tensor, Weight};

use super::attention::StepPositions;
use super::{emit, Attention, AttentionConfig, Mlp, RmsNorm};
use crate::config::ModelConfig;
use crate::weights::WeightSource;
use crate::{ForwardBatch, LayerCache, ModelCache, ModelError, Result, Tracer};

/// `x += attn(norm(x)); x += mlp(norm(x))`.
#[derive(Clone, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

impl DecoderLayer {
    /// Takes every tensor under `{prefix}.` (e.g. `model.layers.3`).
    pub fn load(
        ws: &mut WeightSource,
        prefix: &str,
        cfg: &ModelConfig,
        attn: &AttentionConfig,
    ) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let plain = RmsNormKind::Plain;
        Ok(Self {
            input_layernorm: RmsNorm::load(
                ws,
                &format!("{prefix}.input_layernorm"),
                h,
                eps,
                plain,
            )?,
            self_attn: Attention::load(ws, &format!("{prefix}.self_attn"), attn)?,
            post_attention_layernorm: RmsNorm::load(
                ws,
                &format!("{prefix}.post_attention_layernorm"),
                h,
                eps,
                plain,
            )?,
            mlp: Mlp::load(
                ws,
                &format!("{prefix}.mlp"),
                h,
                cfg.intermediate_size,
                cfg.mlp_bias,
            )?,
        })
    }

    /// x: `[n, hidden]`, updated in place (residual stream).
    pub fn forward(
        &self,
        x: &mut Tensor,
        step: StepPositions<'_>,
        kv: &mut KvLayer,
        prefix: &str,
        trace: &mut Option<Tracer<'_>>,
    ) -> Result<()> {
        let mlp = self.forward_deferred(x, None, step, kv, prefix, trace)?;
        ops::add_inplace(x, &mlp)?;
        Ok(())
    }

    /// [`Self::forward`] with the residual adds fused into the norms: `pending` (the previous
    /// layer's MLP output, not yet added) is added to `x` by this layer's input norm, and the
    /// returned MLP output `[n, hidden]` is left for the caller to add (the next layer's input
    /// norm, or `add_inplace`). Same values as the unfused order (`add_rms_norm` is exactly add
    /// then norm).
    pub fn forward_deferred(
        &self,
        x: &mut Tensor,
        pending: Option<Tensor>,
        step: StepPositions<'_>,
        kv: &mut KvLayer,
        prefix: &str,
        trace: &mut Option<Tracer<'_>>,
    ) -> Result<Tensor> {
        let norm = |n: &super::RmsNorm, x: &mut Tensor, add: Option<&Tensor>| match add {
            Some(y) => ops::add_rms_norm(x, y, &n.weight, n.eps, n.kind),
            None => ops::rms_norm(x, &n.weight, n.eps, n.kind),
        };
        let h = norm(&self.input_layernorm, x, pending.as_ref())?;
        emit(trace, prefix, "input_layernorm.out", &h);
        let attn_prefix = format!("{prefix}.self_attn");
        let attn = self.self_attn.forward(&h, step, kv, &attn_prefix, trace)?;
        let h = norm(&self.post_attention_layernorm, x, Some(&attn))?;
        let mlp = self.mlp.forward(&h)?;
        emit(trace, prefix, "mlp.out", &mlp);
        Ok(mlp)
    }
}

/// embed_tokens → layers → norm → lm_head.
#[derive(Clone, Debug)]
pub struct DecoderOnly {
    /// `[vocab, hidden]`
    pub embed_tokens: Weight,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `[vocab, hidden]`; the embedding table itself when tied.
    pub lm_head: Weight,
}

impl DecoderOnly {
    /// Loads `model.*` and `lm_head.weight`; ties lm_head to the embedding when that key is absent
    /// (MODEL-SPECS §1.5).
    pub fn load(ws: &mut WeightSource, cfg: &ModelConfig, attn: &AttentionConfig) -> Result<Self> {
        let (vocab, h) = (cfg.vocab_size, cfg.hidden_size);
        let embed_tokens = ws.take("model.embed_tokens.weight", &[vocab, h])?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(ws, &format!("model.layers.{i}"), cfg, attn))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(ws, "model.norm", h, cfg.rms_norm_eps, RmsNormKind::Plain)?;
        let lm_head = match ws.take_optional("lm_head.weight", &[vocab, h])? {
            Some(w) => w,
            None => embed_tokens.clone(),
        };
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }

    /// Logits `[batch.logits_rows.len(), vocab]`.
    pub fn forward(
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
        #[cfg(feature = "cuda")]
        let timer = arle_tensor::cuda::step_timing::start(batch.token_ids.len());
        let mut x = ops::embedding(&self.embed_tokens, &batch.token_ids)?; // [n, hidden]
                                                                           // The MLP output of the previous layer, added by the next layer's fused input norm
                                                                           // (only while not tracing: a trace reads the full residual after every layer).
        let mut pending: Option<Tensor> = None;
        for (i, (layer, layer_cache)) in self.layers.iter().zip(&mut cache.layers).enumerate() {
            let kv = attention_kv(layer_cache, i)?;
            let prefix = format!("model.layers.{i}");
            emit(&mut trace, &prefix, "in", &x);
            let mlp =
                layer.forward_deferred(&mut x, pending.take(), step, kv, &prefix, &mut trace)?;
            if trace.is_some() {
                ops::add_inplace(&mut x, &mlp)?;
                emit(&mut trace, &prefix, "out", &x);
            } else {
                pending = Some(mlp);
            }
        }
        if let Some(mlp) = pending {
            ops::add_inplace(&mut x, &mlp)?;
        }
        let normed_rows = if trace.is_some() {
            let normed = self.norm.forward(&x)?;
            emit(&mut trace, "model", "norm.out", &normed);
            normed.gather_rows(&batch.logits_rows)?
        } else {
            self.norm.forward(&x.gather_rows(&batch.logits_rows)?)?
        };
        let logits = ops::linear(&normed_rows, &self.lm_head, None)?; // [rows, vocab]
        #[cfg(feature = "cuda")]
        if let Some(timer) = timer {
            timer.finish(&logits)?; // ARLE_STEP_TIMING: host enqueue vs device wait
        }
        Ok(logits)
    }
}

/// The KV pages of attention layer `index`.
fn attention_kv(layer: &mut LayerCache, index: usize) -> Result<&mut KvLayer> {
    #[allow(unreachable_patterns)] // more cache kinds (linear-attention state) are coming
    match layer {
        LayerCache::Attention(kv) => Ok(kv),
        _ => Err(ModelError::Unsupported(format!(
            "layer {index}: expected an attention cache"
        ))),
    }
}
