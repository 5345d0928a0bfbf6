//! Launcher for the MoE router (`cu/moe_routing.cu`): softmax over experts, top-k, renormalise.

use cudarc::driver::{CudaView, CudaViewMut};
use half::bf16;

use super::{check_len, to_grid, to_i32};
use crate::error::{ensure, Result};
use crate::runtime::{grid, launch_kernel, KernelRuntime};

/// Largest expert count the kernel's shared-memory row holds.
pub const MAX_EXPERTS: usize = 512;

/// Router: `topk_ids`/`topk_weights` per token from router logits.
pub fn moe_topk_softmax(
    rt: &KernelRuntime,
    logits: &CudaView<'_, bf16>,              // [n_tokens, n_experts]
    topk_ids: &mut CudaViewMut<'_, i32>,      // [n_tokens, k]
    topk_weights: &mut CudaViewMut<'_, bf16>, // [n_tokens, k]
    n_tokens: usize,
    n_experts: usize,
    k: usize,
) -> Result<()> {
    const OP: &str = "moe_topk_softmax";
    ensure(n_experts > 0 && n_experts <= MAX_EXPERTS, OP, || {
        format!("n_experts {n_experts} not in 1..={MAX_EXPERTS}")
    })?;
    ensure(k > 0 && k <= 32 && k <= n_experts, OP, || {
        format!("k {k} not in 1..=min(32, n_experts)")
    })?;
    check_len(OP, "logits", logits.len(), n_tokens * n_experts)?;
    check_len(OP, "topk_ids", topk_ids.len(), n_tokens * k)?;
    check_len(OP, "topk_weights", topk_weights.len(), n_tokens * k)?;
    let cfg = grid((to_grid(OP, "blocks", n_tokens.div_ceil(4))?, 1, 1), 128, 0);
    let (nt, ne, ki) = (
        to_i32(OP, "n_tokens", n_tokens)?,
        to_i32(OP, "n_experts", n_experts)?,
        to_i32(OP, "k", k)?,
    );
    launch_kernel!(
        rt,
        "moe_topk_softmax_bf16",
        cfg,
        [logits, topk_ids, topk_weights, &nt, &ne, &ki]
    )
}
