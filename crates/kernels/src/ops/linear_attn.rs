//! Launchers for Gated DeltaNet and its causal conv1d (`cu/gated_delta_net.cu`,
//! `cu/causal_conv1d.cu`). States live in caller-owned slot pools; a fresh sequence's slot must
//! be zeroed by the caller before its first token.

use cudarc::driver::{CudaView, CudaViewMut};
use half::bf16;

use super::{check_len, to_grid, to_i32};
use crate::error::{ensure, Result};
use crate::runtime::{grid, launch_kernel, KernelRuntime};

/// Gated DeltaNet head geometry.
#[derive(Debug, Clone, Copy)]
pub struct GdnShape {
    pub n_k_heads: usize,
    pub n_v_heads: usize,
    pub k_head_dim: usize,
    pub v_head_dim: usize,
    /// Slots in the state pool.
    pub n_slots: usize,
}

impl GdnShape {
    /// Channels of the conv/qkv row: 2*Hk*Dk + Hv*Dv.
    pub fn conv_dim(&self) -> usize {
        2 * self.n_k_heads * self.k_head_dim + self.n_v_heads * self.v_head_dim
    }
    /// Elements of the f32 state pool `[n_slots, Hv, Dk, Dv]`.
    pub fn state_numel(&self) -> usize {
        self.n_slots * self.n_v_heads * self.k_head_dim * self.v_head_dim
    }
}

/// Device inputs of one GDN call.
#[derive(Debug)]
pub struct GdnInputs<'a, 'b> {
    pub qkv: &'a CudaView<'b, bf16>, // [n_tokens, conv_dim] after conv + silu
    pub a: &'a CudaView<'b, bf16>,   // [n_tokens, Hv]
    pub b: &'a CudaView<'b, bf16>,   // [n_tokens, Hv]
    pub a_log: &'a CudaView<'b, f32>, // [Hv]
    pub dt_bias: &'a CudaView<'b, f32>, // [Hv]
    pub state_slots: &'a CudaView<'b, i32>, // [n_seqs]
}

fn check_gdn(
    op: &'static str,
    x: &GdnInputs<'_, '_>,
    s: &GdnShape,
    n_tokens: usize,
    state: usize,
    out: usize,
) -> Result<()> {
    ensure(
        s.n_k_heads > 0 && s.n_v_heads.is_multiple_of(s.n_k_heads),
        op,
        || format!("Hv {} not a multiple of Hk {}", s.n_v_heads, s.n_k_heads),
    )?;
    check_len(op, "qkv", x.qkv.len(), n_tokens * s.conv_dim())?;
    check_len(op, "a", x.a.len(), n_tokens * s.n_v_heads)?;
    check_len(op, "b", x.b.len(), n_tokens * s.n_v_heads)?;
    check_len(op, "a_log", x.a_log.len(), s.n_v_heads)?;
    check_len(op, "dt_bias", x.dt_bias.len(), s.n_v_heads)?;
    check_len(op, "state", state, s.state_numel())?;
    check_len(op, "out", out, n_tokens * s.n_v_heads * s.v_head_dim)
}

/// One recurrent step per sequence (token s belongs to sequence s).
pub fn gdn_decode(
    rt: &KernelRuntime,
    x: &GdnInputs<'_, '_>,
    state: &mut CudaViewMut<'_, f32>, // [n_slots, Hv, Dk, Dv]
    out: &mut CudaViewMut<'_, bf16>,  // [n_seqs, Hv, Dv]
    shape: GdnShape,
) -> Result<()> {
    const OP: &str = "gdn_decode";
    let n_seqs = x.state_slots.len();
    check_gdn(OP, x, &shape, n_seqs, state.len(), out.len())?;
    let cfg = grid(
        (
            to_grid(OP, "Hv", shape.n_v_heads)?,
            to_grid(OP, "n_seqs", n_seqs)?,
            1,
        ),
        128,
        (2 * shape.k_head_dim * 4) as u32,
    );
    let i = |w, v| to_i32(OP, w, v);
    let (hk, hv, dk, dv) = (
        i("Hk", shape.n_k_heads)?,
        i("Hv", shape.n_v_heads)?,
        i("Dk", shape.k_head_dim)?,
        i("Dv", shape.v_head_dim)?,
    );
    launch_kernel!(
        rt,
        "gdn_decode_bf16",
        cfg,
        [
            x.qkv,
            x.a,
            x.b,
            x.a_log,
            x.dt_bias,
            state,
            x.state_slots,
            out,
            &hk,
            &hv,
            &dk,
            &dv
        ]
    )
}

/// Prefill over varlen sequences, tokens in order with the running state (recurrent form).
pub fn gdn_prefill(
    rt: &KernelRuntime,
    x: &GdnInputs<'_, '_>,
    cu_seqlens: &CudaView<'_, i32>, // [n_seqs + 1]
    state: &mut CudaViewMut<'_, f32>,
    out: &mut CudaViewMut<'_, bf16>, // [n_tokens, Hv, Dv]
    n_tokens: usize,
    shape: GdnShape,
) -> Result<()> {
    const OP: &str = "gdn_prefill";
    let n_seqs = x.state_slots.len();
    check_gdn(OP, x, &shape, n_tokens, state.len(), out.len())?;
    check_len(OP, "cu_seqlens", cu_seqlens.len(), n_seqs + 1)?;
    let cfg = grid(
        (
            to_grid(OP, "Hv", shape.n_v_heads)?,
            to_grid(OP, "n_seqs", n_seqs)?,
            1,
        ),
        128,
        (2 * shape.k_head_dim * 4) as u32,
    );
    let i = |w, v| to_i32(OP, w, v);
    let (hk, hv, dk, dv) = (
        i("Hk", shape.n_k_heads)?,
        i("Hv", shape.n_v_heads)?,
        i("Dk", shape.k_head_dim)?,
        i("Dv", shape.v_head_dim)?,
    );
    launch_kernel!(
        rt,
        "gdn_prefill_bf16",
        cfg,
        [
            x.qkv,
            x.a,
            x.b,
            x.a_log,
            x.dt_bias,
            state,
            x.state_slots,
            cu_seqlens,
            out,
            &hk,
            &hv,
            &dk,
            &dv
        ]
    )
}

/// Causal conv1d geometry.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub conv_dim: usize,
    pub kernel_size: usize,
    /// Row stride of x (>= conv_dim).
    pub x_stride: usize,
    pub n_slots: usize,
}

fn check_conv(op: &'static str, s: &ConvShape, n_tokens: usize, lens: [usize; 4]) -> Result<()> {
    let [x, w, state, out] = lens;
    ensure((2..=8).contains(&s.kernel_size), op, || {
        format!("kernel_size {} not in 2..=8", s.kernel_size)
    })?;
    ensure(s.x_stride >= s.conv_dim, op, || {
        "x_stride < conv_dim".into()
    })?;
    check_len(
        op,
        "x",
        x,
        n_tokens.saturating_sub(1) * s.x_stride + s.conv_dim,
    )?;
    check_len(op, "w", w, s.conv_dim * s.kernel_size)?;
    check_len(
        op,
        "conv_state",
        state,
        s.n_slots * s.conv_dim * (s.kernel_size - 1),
    )?;
    check_len(op, "out", out, n_tokens * s.conv_dim)
}

/// Conv + SiLU over varlen sequences, reading and updating each sequence's window.
#[allow(clippy::too_many_arguments)]
pub fn causal_conv1d_prefill(
    rt: &KernelRuntime,
    x: &CudaView<'_, bf16>, // [n_tokens, conv_dim] (row stride x_stride)
    w: &CudaView<'_, bf16>, // [conv_dim, K]
    conv_state: &mut CudaViewMut<'_, bf16>, // [n_slots, conv_dim, K-1]
    state_slots: &CudaView<'_, i32>, // [n_seqs]
    cu_seqlens: &CudaView<'_, i32>, // [n_seqs + 1]
    out: &mut CudaViewMut<'_, bf16>, // [n_tokens, conv_dim]
    n_tokens: usize,
    shape: ConvShape,
) -> Result<()> {
    const OP: &str = "causal_conv1d_prefill";
    check_conv(
        OP,
        &shape,
        n_tokens,
        [x.len(), w.len(), conv_state.len(), out.len()],
    )?;
    let n_seqs = state_slots.len();
    check_len(OP, "cu_seqlens", cu_seqlens.len(), n_seqs + 1)?;
    let cfg = grid(
        (
            to_grid(OP, "blocks", shape.conv_dim.div_ceil(128))?,
            to_grid(OP, "n_seqs", n_seqs)?,
            1,
        ),
        128,
        0,
    );
    let (cd, xs, k) = (
        to_i32(OP, "conv_dim", shape.conv_dim)?,
        to_i32(OP, "x_stride", shape.x_stride)?,
        to_i32(OP, "kernel_size", shape.kernel_size)?,
    );
    launch_kernel!(
        rt,
        "causal_conv1d_prefill_bf16",
        cfg,
        [x, w, conv_state, state_slots, cu_seqlens, out, &cd, &xs, &k]
    )
}

/// Conv + SiLU for one new token per sequence (row s is sequence s).
pub fn causal_conv1d_decode(
    rt: &KernelRuntime,
    x: &CudaView<'_, bf16>, // [n_seqs, conv_dim] (row stride x_stride)
    w: &CudaView<'_, bf16>, // [conv_dim, K]
    conv_state: &mut CudaViewMut<'_, bf16>, // [n_slots, conv_dim, K-1]
    state_slots: &CudaView<'_, i32>, // [n_seqs]
    out: &mut CudaViewMut<'_, bf16>, // [n_seqs, conv_dim]
    shape: ConvShape,
) -> Result<()> {
    const OP: &str = "causal_conv1d_decode";
    let n_seqs = state_slots.len();
    check_conv(
        OP,
        &shape,
        n_seqs,
        [x.len(), w.len(), conv_state.len(), out.len()],
    )?;
    let cfg = grid(
        (
            to_grid(OP, "blocks", shape.conv_dim.div_ceil(128))?,
            to_grid(OP, "n_seqs", n_seqs)?,
            1,
        ),
        128,
        0,
    );
    let (cd, xs, k) = (
        to_i32(OP, "conv_dim", shape.conv_dim)?,
        to_i32(OP, "x_stride", shape.x_stride)?,
        to_i32(OP, "kernel_size", shape.kernel_size)?,
    );
    launch_kernel!(
        rt,
        "causal_conv1d_decode_bf16",
        cfg,
        [x, w, conv_state, state_slots, out, &cd, &xs, &k]
    )
}
