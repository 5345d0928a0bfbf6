//! Launchers of the decode-step GEMV (`cu/gemv.cu`): `y = x · Wᵀ (+ bias)` for at most
//! [`GEMV_MAX_ROWS`] rows of x, bf16 or f32 output.
//!
//! A row's result depends only on K (fixed lane split and warp-sum order), never on how many rows
//! are in the call.

use cudarc::driver::{CudaView, CudaViewMut, DevicePtr, DeviceRepr};
use half::bf16;

use super::{check_len, to_grid, to_i32};
use crate::error::{ensure, Result};
use crate::runtime::{grid, launch_kernel, KernelRuntime};

/// Most rows of x one launch takes.
pub const GEMV_MAX_ROWS: usize = 8;
/// Output rows per block (one warp each); the block is `32 * GEMV_WARPS` threads.
const GEMV_WARPS: usize = 8;

/// `n_rows` rows of x `[n_rows, k]` times W `[n_out, k]`ᵀ.
#[derive(Debug, Clone, Copy)]
pub struct GemvShape {
    pub n_rows: usize,
    pub n_out: usize,
    pub k: usize,
}

/// Whether [`gemv`] takes this shape (and these buffers: 16-byte aligned).
pub fn gemv_supported(
    rt: &KernelRuntime,
    shape: GemvShape,
    x: &CudaView<'_, bf16>,
    w: &CudaView<'_, bf16>,
) -> bool {
    let aligned = |p: u64| p.is_multiple_of(16);
    (1..=GEMV_MAX_ROWS).contains(&shape.n_rows)
        && shape.k.is_multiple_of(8)
        && shape.n_out > 0
        && aligned(x.device_ptr(rt.stream()).0)
        && aligned(w.device_ptr(rt.stream()).0)
}

/// `y[r, o] = Σ_c x[r, c]·W[o, c] (+ bias[o])` with f32 accumulation; `T` is bf16 or f32.
pub fn gemv<T: GemvOut>(
    rt: &KernelRuntime,
    x: &CudaView<'_, bf16>,            // [n_rows, k]
    w: &CudaView<'_, bf16>,            // [n_out, k]
    bias: Option<&CudaView<'_, bf16>>, // [n_out]
    y: &mut CudaViewMut<'_, T>,        // [n_rows, n_out]
    shape: GemvShape,
) -> Result<()> {
    const OP: &str = "gemv";
    let GemvShape { n_rows, n_out, k } = shape;
    ensure(gemv_supported(rt, shape, x, w), OP, || {
        format!("unsupported shape {shape:?} or unaligned buffers")
    })?;
    check_len(OP, "x", x.len(), n_rows * k)?;
    check_len(OP, "w", w.len(), n_out * k)?;
    check_len(OP, "y", y.len(), n_rows * n_out)?;
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), n_out)?;
    }
    let cfg = grid(
        (to_grid(OP, "blocks", n_out.div_ceil(GEMV_WARPS))?, 1, 1),
        (32 * GEMV_WARPS) as u32,
        0,
    );
    let (r, n, kk) = (
        to_i32(OP, "n_rows", n_rows)?,
        to_i32(OP, "n_out", n_out)?,
        to_i32(OP, "k", k)?,
    );
    let has_bias = i32::from(bias.is_some());
    // Without a bias the kernel never reads it: any valid pointer stands in.
    let b = bias.unwrap_or(w);
    launch_kernel!(rt, T::KERNEL, cfg, [x, w, b, y, &r, &n, &kk, &has_bias])
}

/// Output element types of [`gemv`].
pub trait GemvOut: DeviceRepr {
    const KERNEL: &'static str;
}

impl GemvOut for bf16 {
    const KERNEL: &'static str = "gemv_bf16";
}

impl GemvOut for f32 {
    const KERNEL: &'static str = "gemv_bf16_f32out";
}
