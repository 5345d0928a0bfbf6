//! Launchers for embedding lookup, SiLU-mul (SwiGLU) and RoPE (`cu/embedding.cu`,
//! `cu/silu_mul.cu`, `cu/rope.cu`).

use cudarc::driver::{CudaView, CudaViewMut};
use half::bf16;

use super::{check_len, to_grid, to_i32};
use crate::error::{ensure, Result};
use crate::runtime::{grid, launch_kernel, KernelRuntime};

/// `out[t] = table[ids[t]]`.
pub fn embedding(
    rt: &KernelRuntime,
    table: &CudaView<'_, bf16>,      // [vocab, hidden]
    ids: &CudaView<'_, i32>,         // [n_tokens]
    out: &mut CudaViewMut<'_, bf16>, // [n_tokens, hidden]
    vocab: usize,
    hidden: usize,
) -> Result<()> {
    const OP: &str = "embedding";
    let n_tokens = ids.len();
    check_len(OP, "table", table.len(), vocab * hidden)?;
    check_len(OP, "out", out.len(), n_tokens * hidden)?;
    let (hidden_i, vocab_i) = (to_i32(OP, "hidden", hidden)?, to_i32(OP, "vocab", vocab)?);
    let cfg = grid((to_grid(OP, "n_tokens", n_tokens)?, 1, 1), 256, 0);
    launch_kernel!(
        rt,
        "embedding_bf16",
        cfg,
        [table, ids, out, &hidden_i, &vocab_i]
    )
}

/// Shape of a SiLU-mul: `n_rows` rows of `inter` values; inputs have row stride `in_stride`.
#[derive(Debug, Clone, Copy)]
pub struct SiluMulShape {
    pub n_rows: usize,
    pub inter: usize,
    pub in_stride: usize,
}

/// `out = bf16(bf16(silu(gate)) * up)`.
pub fn silu_mul(
    rt: &KernelRuntime,
    gate: &CudaView<'_, bf16>, // [n_rows, inter] (row stride in_stride)
    up: &CudaView<'_, bf16>,   // [n_rows, inter] (row stride in_stride)
    out: &mut CudaViewMut<'_, bf16>, // [n_rows, inter]
    shape: SiluMulShape,
) -> Result<()> {
    const OP: &str = "silu_mul";
    let SiluMulShape {
        n_rows,
        inter,
        in_stride,
    } = shape;
    ensure(in_stride >= inter, OP, || {
        format!("in_stride {in_stride} < inter {inter}")
    })?;
    let need_in = n_rows.saturating_sub(1) * in_stride + inter;
    check_len(OP, "gate", gate.len(), need_in)?;
    check_len(OP, "up", up.len(), need_in)?;
    check_len(OP, "out", out.len(), n_rows * inter)?;
    let total = n_rows * inter;
    let blocks = total.div_ceil(256).clamp(1, 65_535);
    let cfg = grid((to_grid(OP, "blocks", blocks)?, 1, 1), 256, 0);
    let (n, i, s) = (
        to_i32(OP, "n_rows", n_rows)?,
        to_i32(OP, "inter", inter)?,
        to_i32(OP, "in_stride", in_stride)?,
    );
    launch_kernel!(rt, "silu_mul_bf16", cfg, [gate, up, out, &n, &i, &s])
}

/// Shape of a RoPE application.
#[derive(Debug, Clone, Copy)]
pub struct RopeShape {
    pub n_tokens: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    /// Rotated leading dims of each head (partial rotary); even, <= head_dim.
    pub rot_dim: usize,
    /// Elements between consecutive tokens' rows (>= n_heads * head_dim).
    pub token_stride: usize,
    /// Multiplies cos and sin (yarn's attention scaling; 1.0 otherwise).
    pub attention_scaling: f32,
}

/// Rotates `x` in place (NeoX pairing: dim i with i + rot_dim/2).
pub fn rope_neox(
    rt: &KernelRuntime,
    x: &mut CudaViewMut<'_, bf16>, // [n_tokens, n_heads, head_dim] (token stride)
    positions: &CudaView<'_, i32>, // [n_tokens]
    inv_freq: &CudaView<'_, f32>,  // [rot_dim / 2]
    shape: RopeShape,
) -> Result<()> {
    const OP: &str = "rope_neox";
    let RopeShape {
        n_tokens,
        n_heads,
        head_dim,
        rot_dim,
        token_stride,
        attention_scaling,
    } = shape;
    ensure(
        rot_dim > 0 && rot_dim % 2 == 0 && rot_dim <= head_dim,
        OP,
        || format!("rot_dim {rot_dim} must be even, > 0 and <= head_dim {head_dim}"),
    )?;
    ensure(token_stride >= n_heads * head_dim, OP, || {
        format!(
            "token_stride {token_stride} < n_heads*head_dim {}",
            n_heads * head_dim
        )
    })?;
    check_len(
        OP,
        "x",
        x.len(),
        n_tokens.saturating_sub(1) * token_stride + n_heads * head_dim,
    )?;
    check_len(OP, "positions", positions.len(), n_tokens)?;
    check_len(OP, "inv_freq", inv_freq.len(), rot_dim / 2)?;
    let cfg = grid((to_grid(OP, "n_tokens", n_tokens)?, 1, 1), 128, 0);
    let args = (
        to_i32(OP, "n_heads", n_heads)?,
        to_i32(OP, "head_dim", head_dim)?,
        to_i32(OP, "rot_dim", rot_dim)?,
        to_i32(OP, "token_stride", token_stride)?,
    );
    launch_kernel!(
        rt,
        "rope_neox_bf16",
        cfg,
        [
            x,
            positions,
            inv_freq,
            &args.0,
            &args.1,
            &args.2,
            &args.3,
            &attention_scaling
        ]
    )
}
