//! Launchers for the RMSNorm variants (`cu/rms_norm.cu`): plain, zero-centred (1+w), gated, and
//! residual-add + norm.

use cudarc::driver::{CudaView, CudaViewMut};
use half::bf16;

use super::{check_len, to_grid, to_i32};
use crate::error::{ensure, Result};
use crate::runtime::{grid, launch_kernel, KernelRuntime};

/// Which weight convention a (non-gated) RMSNorm uses (MODEL-SPECS §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RmsNormKind {
    /// `y = w * bf16(x̂)` (llama, qwen3).
    Plain,
    /// `y = x̂ * (1 + w)` in f32, rounded once (qwen3_5).
    ZeroCentred,
}

impl RmsNormKind {
    fn mode(self) -> i32 {
        match self {
            RmsNormKind::Plain => 0,
            RmsNormKind::ZeroCentred => 1,
        }
    }
}

/// Rows, width and row strides (elements) of a norm.
#[derive(Debug, Clone, Copy)]
pub struct RmsNormShape {
    pub n_rows: usize,
    pub dim: usize,
    pub x_stride: usize,
    pub out_stride: usize,
    pub eps: f32,
}

impl RmsNormShape {
    /// Contiguous rows.
    pub fn contiguous(n_rows: usize, dim: usize, eps: f32) -> Self {
        Self {
            n_rows,
            dim,
            x_stride: dim,
            out_stride: dim,
            eps,
        }
    }
}

const BLOCK: u32 = 256;

/// `out = norm(x)` with weight `w`.
pub fn rms_norm(
    rt: &KernelRuntime,
    x: &CudaView<'_, bf16>,          // [n_rows, dim] (row stride x_stride)
    w: &CudaView<'_, bf16>,          // [dim]
    out: &mut CudaViewMut<'_, bf16>, // [n_rows, dim] (row stride out_stride)
    kind: RmsNormKind,
    shape: RmsNormShape,
) -> Result<()> {
    const OP: &str = "rms_norm";
    let RmsNormShape {
        n_rows,
        dim,
        x_stride,
        out_stride,
        eps,
    } = shape;
    ensure(x_stride >= dim && out_stride >= dim, OP, || {
        "row strides must be >= dim".into()
    })?;
    check_len(OP, "x", x.len(), n_rows.saturating_sub(1) * x_stride + dim)?;
    check_len(
        OP,
        "out",
        out.len(),
        n_rows.saturating_sub(1) * out_stride + dim,
    )?;
    check_len(OP, "w", w.len(), dim)?;
    let cfg = grid((to_grid(OP, "n_rows", n_rows)?, 1, 1), BLOCK, 0);
    let a = (
        to_i32(OP, "dim", dim)?,
        to_i32(OP, "x_stride", x_stride)?,
        to_i32(OP, "out_stride", out_stride)?,
    );
    let mode = kind.mode();
    launch_kernel!(
        rt,
        "rms_norm_bf16",
        cfg,
        [x, w, out, &a.0, &a.1, &a.2, &eps, &mode]
    )
}

/// `residual = bf16(residual + x); out = norm(residual)`; rows are contiguous (strides ignored).
pub fn add_rms_norm(
    rt: &KernelRuntime,
    x: &CudaView<'_, bf16>,               // [n_rows, dim]
    residual: &mut CudaViewMut<'_, bf16>, // [n_rows, dim], updated in place
    w: &CudaView<'_, bf16>,               // [dim]
    out: &mut CudaViewMut<'_, bf16>,      // [n_rows, dim]
    kind: RmsNormKind,
    shape: RmsNormShape,
) -> Result<()> {
    const OP: &str = "add_rms_norm";
    let RmsNormShape {
        n_rows, dim, eps, ..
    } = shape;
    for (what, len) in [
        ("x", x.len()),
        ("residual", residual.len()),
        ("out", out.len()),
    ] {
        check_len(OP, what, len, n_rows * dim)?;
    }
    check_len(OP, "w", w.len(), dim)?;
    let cfg = grid((to_grid(OP, "n_rows", n_rows)?, 1, 1), BLOCK, 0);
    let (dim_i, mode) = (to_i32(OP, "dim", dim)?, kind.mode());
    launch_kernel!(
        rt,
        "add_rms_norm_bf16",
        cfg,
        [x, residual, w, out, &dim_i, &eps, &mode]
    )
}

/// Gated norm: `out = bf16(bf16(w * bf16(x̂)) * silu(z))`; rows contiguous (strides ignored).
pub fn rms_norm_gated(
    rt: &KernelRuntime,
    x: &CudaView<'_, bf16>,          // [n_rows, dim]
    z: &CudaView<'_, bf16>,          // [n_rows, dim]
    w: &CudaView<'_, bf16>,          // [dim]
    out: &mut CudaViewMut<'_, bf16>, // [n_rows, dim]
    shape: RmsNormShape,
) -> Result<()> {
    const OP: &str = "rms_norm_gated";
    let RmsNormShape {
        n_rows, dim, eps, ..
    } = shape;
    for (what, len) in [("x", x.len()), ("z", z.len()), ("out", out.len())] {
        check_len(OP, what, len, n_rows * dim)?;
    }
    check_len(OP, "w", w.len(), dim)?;
    let cfg = grid((to_grid(OP, "n_rows", n_rows)?, 1, 1), BLOCK, 0);
    let dim_i = to_i32(OP, "dim", dim)?;
    launch_kernel!(rt, "rms_norm_gated_bf16", cfg, [x, z, w, out, &dim_i, &eps])
}
