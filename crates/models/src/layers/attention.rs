//! Causal GQA self-attention over the paged KV cache (MODEL-SPECS §1.2, §1.3, §3.2).
//!
//! Per step: q/k/v projections (optional bias) → optional per-head RMSNorm of q and k over
//! `head_dim` (qwen3; before RoPE) → RoPE on q and k → append k, v to the layer's pages →
//! paged attention with scale `head_dim^-0.5` (full head_dim, not the rotary dim) → o_proj.
//! Invariant: the cache holds k after k_norm and RoPE, so later steps read it unchanged.
//! With `output_gate` (Qwen3.5 gated attention, see [`super::gated_attention`]) `q_proj` emits a
//! query and a gate per head, and the attention output is multiplied by `sigmoid(gate)`.

use arle_tensor::ops::{self, AttentionMeta, RmsNormKind, RopeTable};
use arle_tensor::{KvLayer, Tensor};

use super::{emit, Linear, RmsNorm};
use crate::config::ModelConfig;
use crate::rope::RopeConfig;
use crate::weights::WeightSource;
use crate::{Result, Tracer};

/// What an attention block needs to know to load and run.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionConfig {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// q, k, v and o all carry biases (llama `attention_bias`).
    pub bias: bool,
    /// Per-head RMSNorm of q and k (qwen3: `Plain`), `None` for llama.
    pub qk_norm: Option<RmsNormKind>,
    pub rms_norm_eps: f32,
    pub rope: RopeConfig,
    /// `q_proj` is `[nH·2D, H]` with `[q_h | gate_h]` per head; output ← output ⊙ σ(gate).
    pub output_gate: bool,
}

impl AttentionConfig {
    /// The attention shape of a llama/qwen3-style config.
    pub fn from_model(cfg: &ModelConfig, qk_norm: Option<RmsNormKind>) -> Self {
        Self {
            hidden_size: cfg.hidden_size,
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
            bias: cfg.attention_bias,
            qk_norm,
            rms_norm_eps: cfg.rms_norm_eps,
            rope: cfg.rope.clone(),
            output_gate: false,
        }
    }
}

/// Where this step's tokens sit: positions and the attention metadata of the batch.
#[derive(Clone, Copy, Debug)]
pub struct StepPositions<'a> {
    /// `[n_tokens]` absolute positions.
    pub positions: &'a [u32],
    pub attention: &'a AttentionMeta,
}

#[derive(Clone, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rope: RopeTable,
    /// `head_dim^-0.5`
    pub scale: f32,
    /// Sigmoid output gate from the second half of each head's `q_proj` rows.
    pub output_gate: bool,
}

impl Attention {
    /// Takes `{prefix}.{q,k,v,o}_proj.*` and, with `qk_norm`, `{prefix}.{q,k}_norm.weight`.
    pub fn load(ws: &mut WeightSource, prefix: &str, cfg: &AttentionConfig) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let q_dim = cfg.num_heads * d;
        let kv_dim = cfg.num_kv_heads * d;
        let proj = |ws: &mut WeightSource, name: &str, inp: usize, out: usize| {
            Linear::load(ws, &format!("{prefix}.{name}"), inp, out, cfg.bias)
        };
        let q_rows = if cfg.output_gate { 2 * q_dim } else { q_dim };
        let q_proj = proj(ws, "q_proj", h, q_rows)?;
        let k_proj = proj(ws, "k_proj", h, kv_dim)?;
        let v_proj = proj(ws, "v_proj", h, kv_dim)?;
        let o_proj = proj(ws, "o_proj", q_dim, h)?;
        let (q_norm, k_norm) = match cfg.qk_norm {
            Some(kind) => {
                let eps = cfg.rms_norm_eps;
                let q = RmsNorm::load(ws, &format!("{prefix}.q_norm"), d, eps, kind)?;
                let k = RmsNorm::load(ws, &format!("{prefix}.k_norm"), d, eps, kind)?;
                (Some(q), Some(k))
            }
            None => (None, None),
        };
        Ok(Self {
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            q_norm,
            k_norm,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: d,
            rope: cfg.rope.table(d),
            scale: 1.0 / (d as f32).sqrt(),
            output_gate: cfg.output_gate,
        })
    }

    /// x: `[n, hidden]` → `[n, hidden]`; appends this step's k, v to `kv`.
    /// Traces `{prefix}.q_proj.out`, `{prefix}.q_norm.out` / `k_norm.out`, `{prefix}.o_proj.in`.
    pub fn forward(
        &self,
        x: &Tensor,
        step: StepPositions<'_>,
        kv: &mut KvLayer,
        prefix: &str,
        trace: &mut Option<Tracer<'_>>,
    ) -> Result<Tensor> {
        let n = x.shape().first().copied().unwrap_or(0);
        let d = self.head_dim;
        // q: [n, nH * D] (or [n, nH * 2D] with the gate); k, v: [n, nKV * D]
        let [q, k, v] = Linear::forward_group([&self.q_proj, &self.k_proj, &self.v_proj], x)?;
        emit(trace, prefix, "q_proj.out", &q);
        let (q, gate) = if self.output_gate {
            let (q, gate) = super::gated_attention::split_query_gate(&q, self.num_heads, d)?;
            (q, Some(gate))
        } else {
            (q, None)
        };
        let mut q = q.reshape(vec![n, self.num_heads, d])?;
        let mut k = k.reshape(vec![n, self.num_kv_heads, d])?;
        let v = v.reshape(vec![n, self.num_kv_heads, d])?;
        if let Some(norm) = &self.q_norm {
            q = norm.forward(&q)?;
            emit(trace, prefix, "q_norm.out", &q);
        }
        if let Some(norm) = &self.k_norm {
            k = norm.forward(&k)?;
            emit(trace, prefix, "k_norm.out", &k);
        }
        ops::apply_rope(&mut q, step.positions, &self.rope)?;
        ops::apply_rope(&mut k, step.positions, &self.rope)?;
        ops::kv_append(kv, &k, &v, &step.attention.slot_mapping)?;
        let mut attn = ops::paged_attention(&q, kv, step.attention, self.scale)?; // [n, nH * D]
        if let Some(gate) = &gate {
            attn = ops::sigmoid_mul(&attn, gate)?;
        }
        emit(trace, prefix, "o_proj.in", &attn);
        self.o_proj.forward(&attn)
    }
}
