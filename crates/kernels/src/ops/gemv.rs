//! Launchers of the decode-step GEMV (`cu/gemv.cu`): `y = x · Wᵀ (+ bias)` for at most
//! [`GEMV_MAX_ROWS`] rows of x, bf16 or f32 output.
//!
//! A row's result depends only on K (fixed lane split and warp-sum order), never on how many rows
//! are in the call.

use cudarc::driver::{CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceRepr};
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

/// One projection of a [`gemv_multi`] launch: weight `[n_out, k]`, optional bias `[n_out]`,
/// output `[n_rows, n_out]`.
pub struct GemvPart<'a, 'b> {
    pub w: &'a CudaView<'b, bf16>,
    pub bias: Option<&'a CudaView<'b, bf16>>,
    pub y: &'a mut CudaViewMut<'b, bf16>,
}

/// Most projections one [`gemv_multi`] launch takes.
pub const GEMV_MAX_PARTS: usize = 3;

/// Up to [`GEMV_MAX_PARTS`] GEMVs of the same x `[n_rows, k]` in one launch (q|k|v, gate|up);
/// each output equals a separate [`gemv`] bit for bit.
pub fn gemv_multi(
    rt: &KernelRuntime,
    x: &CudaView<'_, bf16>, // [n_rows, k]
    parts: &mut [GemvPart<'_, '_>],
    n_rows: usize,
    k: usize,
) -> Result<()> {
    const OP: &str = "gemv_multi";
    ensure((1..=GEMV_MAX_PARTS).contains(&parts.len()), OP, || {
        format!("{} parts (1..={GEMV_MAX_PARTS})", parts.len())
    })?;
    let mut n = [0usize; GEMV_MAX_PARTS];
    let mut bias_mask = 0i32;
    for (i, p) in parts.iter().enumerate() {
        n[i] = p.w.len() / k.max(1);
        let shape = GemvShape {
            n_rows,
            n_out: n[i],
            k,
        };
        ensure(gemv_supported(rt, shape, x, p.w), OP, || {
            format!("part {i}: unsupported shape {shape:?} or unaligned buffers")
        })?;
        check_len(OP, "w", p.w.len(), n[i] * k)?;
        check_len(OP, "y", p.y.len(), n_rows * n[i])?;
        if let Some(b) = p.bias {
            check_len(OP, "bias", b.len(), n[i])?;
            bias_mask |= 1 << i;
        }
    }
    check_len(OP, "x", x.len(), n_rows * k)?;
    let total: usize = n.iter().sum();
    let cfg = grid(
        (to_grid(OP, "blocks", total.div_ceil(GEMV_WARPS))?, 1, 1),
        (32 * GEMV_WARPS) as u32,
        0,
    );
    let ni = |i: usize| to_i32(OP, "n_out", n[i]);
    let (n0, n1, n2) = (ni(0)?, ni(1)?, ni(2)?);
    let (r, kk) = (to_i32(OP, "n_rows", n_rows)?, to_i32(OP, "k", k)?);
    // Raw device pointers (all on the runtime's stream); unused slots (n_i = 0) are never read
    // or written, part 0's buffers stand in for them.
    let stream = rt.stream();
    let (mut w, mut b, mut y) = (
        [0u64; GEMV_MAX_PARTS],
        [0u64; GEMV_MAX_PARTS],
        [0u64; GEMV_MAX_PARTS],
    );
    for (i, p) in parts.iter_mut().enumerate() {
        w[i] = p.w.device_ptr(stream).0;
        b[i] = p.bias.map_or(w[i], |v| v.device_ptr(stream).0);
        y[i] = p.y.device_ptr_mut(stream).0;
    }
    for i in parts.len()..GEMV_MAX_PARTS {
        (w[i], b[i], y[i]) = (w[0], b[0], y[0]);
    }
    launch_kernel!(
        rt,
        "gemv_multi_bf16",
        cfg,
        [
            x, &w[0], &w[1], &w[2], &b[0], &b[1], &b[2], &y[0], &y[1], &y[2], &n0, &n1, &n2, &r,
            &kk, &bias_mask
        ]
    )
}
