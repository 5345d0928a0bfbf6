//! Shared decoder building blocks (llama, qwen3, and the attention/MLP parts of qwen3.5).
//!
//! Struct fields are named like the HF weights (`q_proj`, `k_norm`, ...) and every block has a
//! `load(ws, prefix, cfg)` that takes exactly its own tensors, so loading reads like the
//! checkpoint. Blocks are device-agnostic: they only call [`arle_tensor::ops`].
//!
//! - [`linear`]: `Linear` (weight + optional bias).
//! - [`norm`]: `RmsNorm` (weight wrapper with eps and convention).
//! - [`mlp`]: SwiGLU `Mlp`.
//! - [`attention`]: GQA `Attention` over the paged KV cache (optional q/k norm, RoPE).
//! - [`gated_attention`]: Qwen3.5's gated attention options on [`Attention`].
//! - [`gated_delta_net`]: Qwen3.5's Gated DeltaNet mixer over per-sequence state slots.
//! - [`moe`]: Qwen3.5-MoE sparse MLP (router, experts, shared expert).
//! - [`decoder`]: the pre-norm `DecoderLayer` and the `DecoderOnly` stack shared by llama and
//!   qwen3 (embedding -> layers -> final norm -> lm_head on the requested rows).

pub mod attention;
pub mod decoder;
pub mod gated_attention;
pub mod gated_delta_net;
pub mod linear;
pub mod mlp;
pub mod moe;
pub mod norm;

pub use attention::{Attention, AttentionConfig};
pub use decoder::{DecoderLayer, DecoderOnly};
pub use gated_delta_net::GatedDeltaNet;
pub use linear::Linear;
pub use mlp::Mlp;
pub use moe::SparseMoe;
pub use norm::RmsNorm;

use arle_tensor::Tensor;

use crate::Tracer;

/// Reports `{prefix}.{name}` to the tracer, if one is attached (names are only formatted then).
pub(crate) fn emit(trace: &mut Option<Tracer<'_>>, prefix: &str, name: &str, t: &Tensor) {
    if let Some(f) = trace.as_mut() {
        f(&format!("{prefix}.{name}"), t);
    }
}
