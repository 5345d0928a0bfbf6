//! Device dispatch of the op set (compiled only with the `cuda` feature): each function has the
//! signature of the CPU op it replaces in `ops`' exports and runs on the device of its inputs —
//! the CUDA implementation in `crate::cuda` when the activation (or, for `embedding`, the table)
//! lives on a GPU, the CPU op otherwise. Without the feature `ops` exports the CPU ops directly.

use super::{activation, attention, linear as cpu_linear, norm, rope};
use super::{AttentionMeta, RmsNormKind, RopeTable};
use crate::{cuda, KvLayer, Result, Tensor, Weight};

fn on_gpu(t: &Tensor) -> bool {
    t.gpu().is_some()
}

/// See the CPU `linear`.
pub fn linear(x: &Tensor, w: &Weight, bias: Option<&Weight>) -> Result<Tensor> {
    if on_gpu(x) {
        return cuda::ops::linear(x, w, bias);
    }
    cpu_linear::linear(x, w, bias)
}

/// See the CPU `embedding`; runs on the GPU when the table was uploaded there.
pub fn embedding(table: &Weight, ids: &[u32]) -> Result<Tensor> {
    if table.gpu().is_some() {
        return cuda::ops::embedding(table, ids);
    }
    cpu_linear::embedding(table, ids)
}

/// See the CPU `rms_norm`.
pub fn rms_norm(x: &Tensor, w: &Weight, eps: f32, kind: RmsNormKind) -> Result<Tensor> {
    if on_gpu(x) {
        return cuda::ops::rms_norm(x, w, eps, kind);
    }
    norm::rms_norm(x, w, eps, kind)
}

/// See the CPU `add_rms_norm` (one fused kernel on the GPU).
pub fn add_rms_norm(
    x: &mut Tensor,
    y: &Tensor,
    w: &Weight,
    eps: f32,
    kind: RmsNormKind,
) -> Result<Tensor> {
    if on_gpu(x) || on_gpu(y) {
        return cuda::ops::add_rms_norm(x, y, w, eps, kind);
    }
    norm::add_rms_norm(x, y, w, eps, kind)
}

/// See the CPU `silu_mul`.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if on_gpu(gate) || on_gpu(up) {
        return cuda::ops::silu_mul(gate, up);
    }
    activation::silu_mul(gate, up)
}

/// See the CPU `add_inplace`.
pub fn add_inplace(x: &mut Tensor, y: &Tensor) -> Result<()> {
    if on_gpu(x) || on_gpu(y) {
        return cuda::ops::add_inplace(x, y);
    }
    activation::add_inplace(x, y)
}

/// See the CPU `apply_rope`.
pub fn apply_rope(x: &mut Tensor, positions: &[u32], table: &RopeTable) -> Result<()> {
    if on_gpu(x) {
        return cuda::ops::apply_rope(x, positions, table);
    }
    rope::apply_rope(x, positions, table)
}

/// See the CPU `kv_append`; moves the layer's pages to the GPU on the first GPU append.
pub fn kv_append(cache: &mut KvLayer, k: &Tensor, v: &Tensor, slot_mapping: &[u32]) -> Result<()> {
    if on_gpu(k) || on_gpu(v) || cache.gpu.is_some() {
        return cuda::attention::kv_append(cache, k, v, slot_mapping);
    }
    attention::kv_append(cache, k, v, slot_mapping)
}

/// See the CPU `paged_attention`.
pub fn paged_attention(
    q: &Tensor,
    cache: &KvLayer,
    meta: &AttentionMeta,
    scale: f32,
) -> Result<Tensor> {
    if on_gpu(q) || cache.gpu.is_some() {
        return cuda::attention::paged_attention(q, cache, meta, scale);
    }
    attention::paged_attention(q, cache, meta, scale)
}

// Qwen3.5 hybrid ops (the GDN conv + delta rule itself is the batch-level
// `crate::cuda::hybrid::gdn_conv_delta_rule`, called by the model on the GPU path).

/// See the CPU `gated_rms_norm`.
pub fn gated_rms_norm(x: &Tensor, z: &Tensor, w: &Weight, eps: f32) -> Result<Tensor> {
    if on_gpu(x) || on_gpu(z) {
        return cuda::hybrid::gated_rms_norm(x, z, w, eps);
    }
    super::gated_norm::gated_rms_norm(x, z, w, eps)
}

/// See the CPU `sigmoid_mul`.
pub fn sigmoid_mul(x: &Tensor, gate: &Tensor) -> Result<Tensor> {
    if on_gpu(x) || on_gpu(gate) {
        return cuda::hybrid::sigmoid_mul(x, gate);
    }
    activation::sigmoid_mul(x, gate)
}

/// The routed experts (top `top_k` of `router_logits`) and, with `shared` = (shared expert
/// output `[n, H]`, `shared_expert_gate.weight` `[1, H]`), the gated shared expert of a sparse MoE
/// block: x `[n, H]` → `[n, H]`. GPU only (see `crate::cuda::moe`); the CPU path is the model's
/// own per-expert loop, so a CPU `x` is an error.
pub fn sparse_moe(
    x: &Tensor,
    router_logits: &Tensor,
    gate_up: &Weight,
    down: &Weight,
    top_k: usize,
    shared: Option<(&Tensor, &Weight)>,
) -> Result<Tensor> {
    if on_gpu(x) {
        return cuda::moe::sparse_moe(x, router_logits, gate_up, down, top_k, shared);
    }
    Err(crate::TensorError::Invalid {
        op: "sparse_moe",
        detail: "x is on the CPU (the CPU MoE runs per expert in the model)".into(),
    })
}
