//! Launchers for the routed MoE experts (`cu/moe_experts.cu`): router with f32 weights, the
//! on-device counting sort of (token, slot) pairs by expert ([`moe_align`]), the grouped expert
//! GEMM on bf16 tensor cores ([`moe_grouped_gemm`]) and the weighted combine with the gated
//! shared expert ([`moe_combine`]).
//!
//! Invariant: nothing here reads device values back; every grid is sized from host-known
//! `n_tokens`, `k` and `E` only ([`max_tiles`] bounds the expert tiles for any routing), and
//! blocks of unused tiles exit on the device. Pair `i = t * k + r` is token `t`'s `r`-th slot.

use cudarc::driver::{CudaView, CudaViewMut};
use half::bf16;

use super::{check_len, to_grid, to_i32};
use crate::error::{ensure, Result};
use crate::runtime::{grid, launch_kernel, KernelRuntime};

/// Rows of one expert tile (`MOE_BM` in the kernel).
pub const BLOCK_ROWS: usize = 64;
/// Output columns of one GEMM block (`MOE_BN` in the kernel).
pub const BLOCK_COLS: usize = 64;
/// Largest expert count of the router (`MOE_ROUTE_MAX_E`).
pub const MAX_ROUTE_EXPERTS: usize = 512;
/// Largest expert count of the align kernel (`MOE_ALIGN_MAX_E`).
pub const MAX_ALIGN_EXPERTS: usize = 1024;
/// Largest top-k.
pub const MAX_TOP_K: usize = 32;

/// Upper bound on the expert tiles of `n_pairs` routed pairs over `n_experts` experts:
/// `Σ_e ceil(c_e / BLOCK_ROWS) <= ceil(n_pairs / BLOCK_ROWS) + (#experts with c_e > 0)`.
pub fn max_tiles(n_pairs: usize, n_experts: usize) -> usize {
    n_pairs.div_ceil(BLOCK_ROWS) + n_pairs.min(n_experts)
}

/// Router: `topk_ids` / `topk_weights` per token (softmax over experts in f32, top-k,
/// renormalised, each weight rounded to bf16 and stored as f32).
pub fn moe_topk_softmax_f32(
    rt: &KernelRuntime,
    logits: &CudaView<'_, bf16>,             // [n_tokens, n_experts]
    topk_ids: &mut CudaViewMut<'_, i32>,     // [n_tokens, k]
    topk_weights: &mut CudaViewMut<'_, f32>, // [n_tokens, k]
    n_tokens: usize,
    n_experts: usize,
    k: usize,
) -> Result<()> {
    const OP: &str = "moe_topk_softmax_f32";
    ensure(n_experts > 0 && n_experts <= MAX_ROUTE_EXPERTS, OP, || {
        format!("n_experts {n_experts} not in 1..={MAX_ROUTE_EXPERTS}")
    })?;
    ensure(k > 0 && k <= MAX_TOP_K && k <= n_experts, OP, || {
        format!("k {k} not in 1..=min({MAX_TOP_K}, n_experts)")
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
        "moe_topk_softmax_f32w",
        cfg,
        [logits, topk_ids, topk_weights, &nt, &ne, &ki]
    )
}

/// Output of [`moe_align`]: pairs sorted by expert and the expert tiles of the grouped GEMM.
pub struct MoePlanMut<'a, 'b> {
    /// `[n_experts + 1]`: pairs of expert `e` sit at sorted positions `[off[e], off[e+1])`.
    pub expert_offsets: &'a mut CudaViewMut<'b, i32>,
    /// `[n_pairs]`: pair index `t * k + r` per sorted position (`-1` past the routed pairs).
    pub sorted_pairs: &'a mut CudaViewMut<'b, i32>,
    /// `[max_tiles]`: expert of each tile, `-1` when unused.
    pub tile_expert: &'a mut CudaViewMut<'b, i32>,
    /// `[max_tiles]`: first sorted position of each tile.
    pub tile_row: &'a mut CudaViewMut<'b, i32>,
}

/// The same plan, read by the GEMM.
pub struct MoePlan<'a, 'b> {
    pub expert_offsets: &'a CudaView<'b, i32>, // [n_experts + 1]
    pub sorted_pairs: &'a CudaView<'b, i32>,   // [n_pairs]
    pub tile_expert: &'a CudaView<'b, i32>,    // [max_tiles]
    pub tile_row: &'a CudaView<'b, i32>,       // [max_tiles]
}

/// Counting sort of the `n_pairs` routed pairs by expert, on the device (one block).
pub fn moe_align(
    rt: &KernelRuntime,
    topk_ids: &CudaView<'_, i32>, // [n_pairs]
    plan: &mut MoePlanMut<'_, '_>,
    n_pairs: usize,
    n_experts: usize,
) -> Result<()> {
    const OP: &str = "moe_align";
    ensure(n_experts > 0 && n_experts <= MAX_ALIGN_EXPERTS, OP, || {
        format!("n_experts {n_experts} not in 1..={MAX_ALIGN_EXPERTS}")
    })?;
    ensure(n_pairs > 0, OP, || "no routed pairs".into())?;
    let tiles = max_tiles(n_pairs, n_experts);
    check_len(OP, "topk_ids", topk_ids.len(), n_pairs)?;
    check_len(
        OP,
        "expert_offsets",
        plan.expert_offsets.len(),
        n_experts + 1,
    )?;
    check_len(OP, "sorted_pairs", plan.sorted_pairs.len(), n_pairs)?;
    check_len(OP, "tile_expert", plan.tile_expert.len(), tiles)?;
    check_len(OP, "tile_row", plan.tile_row.len(), tiles)?;
    let (np, ne, mt) = (
        to_i32(OP, "n_pairs", n_pairs)?,
        to_i32(OP, "n_experts", n_experts)?,
        to_i32(OP, "max_tiles", tiles)?,
    );
    let cfg = grid((1, 1, 1), 1024, 0);
    launch_kernel!(
        rt,
        "moe_align",
        cfg,
        [
            topk_ids,
            &np,
            &ne,
            &mt,
            &mut *plan.expert_offsets,
            &mut *plan.sorted_pairs,
            &mut *plan.tile_expert,
            &mut *plan.tile_row
        ]
    )
}

/// Which row of `A` feeds sorted position `p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmInputRows {
    /// `A[p]` (A in sorted order, e.g. the activations between the two GEMMs).
    Sorted,
    /// `A[sorted_pairs[p] / top_k]` (the token rows of the MoE input).
    Tokens { top_k: usize },
}

/// Which row of `C` receives sorted position `p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmOutputRows {
    /// `C[p]`.
    Sorted,
    /// `C[sorted_pairs[p]]` (pair order `t * k + r`, read by [`moe_combine`]).
    Pairs,
}

/// Sizes of one grouped GEMM: per expert `e`, `C[rows] = A[rows] · W[e]ᵀ` with `W` `[E, N, K]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupedGemmShape {
    /// Routed pairs `n_tokens * k` (sorted positions).
    pub n_pairs: usize,
    pub n_experts: usize,
    /// Output columns `N`.
    pub n_out: usize,
    /// Reduction length `K`.
    pub k_in: usize,
    pub input_rows: GemmInputRows,
    pub output_rows: GemmOutputRows,
}

/// Grouped expert GEMM over the tiles of [`moe_align`]'s plan (bf16 in/out, f32 accumulation).
pub fn moe_grouped_gemm(
    rt: &KernelRuntime,
    a: &CudaView<'_, bf16>,        // [n_tokens or n_pairs, K]
    w: &CudaView<'_, bf16>,        // [E, N, K]
    c: &mut CudaViewMut<'_, bf16>, // [n_pairs, N]
    plan: &MoePlan<'_, '_>,
    shape: GroupedGemmShape,
) -> Result<()> {
    const OP: &str = "moe_grouped_gemm";
    let GroupedGemmShape {
        n_pairs,
        n_experts,
        n_out,
        k_in,
        input_rows,
        output_rows,
    } = shape;
    ensure(n_pairs > 0 && n_out > 0 && k_in > 0, OP, || {
        format!("empty problem: {n_pairs} pairs, N {n_out}, K {k_in}")
    })?;
    let (a_rows, a_div) = match input_rows {
        GemmInputRows::Sorted => (n_pairs, 0),
        GemmInputRows::Tokens { top_k } => {
            ensure(top_k > 0 && n_pairs.is_multiple_of(top_k), OP, || {
                format!("n_pairs {n_pairs} is not a multiple of top_k {top_k}")
            })?;
            (n_pairs / top_k, top_k)
        }
    };
    let tiles = max_tiles(n_pairs, n_experts);
    check_len(OP, "a", a.len(), a_rows * k_in)?;
    check_len(OP, "w", w.len(), n_experts * n_out * k_in)?;
    check_len(OP, "c", c.len(), n_pairs * n_out)?;
    check_len(
        OP,
        "expert_offsets",
        plan.expert_offsets.len(),
        n_experts + 1,
    )?;
    check_len(OP, "sorted_pairs", plan.sorted_pairs.len(), n_pairs)?;
    check_len(OP, "tile_expert", plan.tile_expert.len(), tiles)?;
    check_len(OP, "tile_row", plan.tile_row.len(), tiles)?;
    // Largest element offset the kernel forms in 64-bit; row indices themselves are `int`.
    to_i32(OP, "n_pairs * N", n_pairs * n_out)?;
    let cfg = grid(
        (
            to_grid(OP, "column blocks", n_out.div_ceil(BLOCK_COLS))?,
            to_grid(OP, "tiles", tiles)?,
            1,
        ),
        128,
        0,
    );
    ensure(tiles <= 65_535, OP, || {
        format!("{tiles} tiles exceed the grid's y limit (65535)")
    })?;
    let (ni, ki, ad, cs) = (
        to_i32(OP, "N", n_out)?,
        to_i32(OP, "K", k_in)?,
        to_i32(OP, "top_k", a_div)?,
        i32::from(output_rows == GemmOutputRows::Pairs),
    );
    launch_kernel!(
        rt,
        "moe_grouped_gemm_bf16",
        cfg,
        [
            a,
            w,
            c,
            plan.sorted_pairs,
            plan.expert_offsets,
            plan.tile_expert,
            plan.tile_row,
            &ni,
            &ki,
            &ad,
            &cs
        ]
    )
}

/// The always-on shared expert folded into [`moe_combine`].
pub struct SharedExpert<'a, 'b> {
    /// The MoE input `[n_tokens, H]` (for the gate logit `x · wsg`).
    pub x: &'a CudaView<'b, bf16>,
    /// `shared_expert_gate.weight` `[H]`.
    pub gate_weight: &'a CudaView<'b, bf16>,
    /// The shared expert's output `[n_tokens, H]`.
    pub output: &'a CudaView<'b, bf16>,
}

/// Routing of one combine: ids and f32 weights per pair.
pub struct Routing<'a, 'b> {
    pub topk_ids: &'a CudaView<'b, i32>,     // [n_tokens * k]
    pub topk_weights: &'a CudaView<'b, f32>, // [n_tokens * k]
    pub n_tokens: usize,
    pub top_k: usize,
    pub n_experts: usize,
}

/// `routed[t] = bf16(Σ_r bf16(w[t,r] · y[t·k+r]))` (f32 sum); with a shared expert
/// `out[t] = bf16(routed + bf16(bf16(sigmoid(bf16(x[t]·wsg))) · s[t]))` (HF's bf16 rounding points).
pub fn moe_combine(
    rt: &KernelRuntime,
    y: &CudaView<'_, bf16>, // [n_tokens * k, H] (pair order)
    routing: &Routing<'_, '_>,
    shared: Option<&SharedExpert<'_, '_>>,
    out: &mut CudaViewMut<'_, bf16>, // [n_tokens, H]
    hidden: usize,
) -> Result<()> {
    const OP: &str = "moe_combine";
    let Routing {
        topk_ids,
        topk_weights,
        n_tokens,
        top_k,
        n_experts,
    } = *routing;
    ensure(hidden > 0 && top_k > 0, OP, || {
        format!("hidden {hidden}, top_k {top_k}")
    })?;
    let n_pairs = n_tokens * top_k;
    check_len(OP, "y", y.len(), n_pairs * hidden)?;
    check_len(OP, "topk_ids", topk_ids.len(), n_pairs)?;
    check_len(OP, "topk_weights", topk_weights.len(), n_pairs)?;
    check_len(OP, "out", out.len(), n_tokens * hidden)?;
    to_i32(OP, "n_pairs * hidden", n_pairs * hidden)?;
    // Without a shared expert the kernel never reads these three; `y` stands in for them.
    let (x, gate_weight, s, has_shared) = match shared {
        Some(sh) => {
            check_len(OP, "x", sh.x.len(), n_tokens * hidden)?;
            check_len(OP, "shared gate weight", sh.gate_weight.len(), hidden)?;
            check_len(OP, "shared output", sh.output.len(), n_tokens * hidden)?;
            (sh.x, sh.gate_weight, sh.output, 1i32)
        }
        None => (y, y, y, 0i32),
    };
    let cfg = grid((to_grid(OP, "tokens", n_tokens)?, 1, 1), 256, 0);
    let (hi, ki, ne) = (
        to_i32(OP, "hidden", hidden)?,
        to_i32(OP, "top_k", top_k)?,
        to_i32(OP, "n_experts", n_experts)?,
    );
    launch_kernel!(
        rt,
        "moe_combine_bf16",
        cfg,
        [
            y,
            topk_ids,
            topk_weights,
            x,
            gate_weight,
            s,
            out,
            &hi,
            &ki,
            &ne,
            &has_shared
        ]
    )
}
