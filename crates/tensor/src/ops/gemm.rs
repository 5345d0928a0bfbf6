//! f32 "NT" micro-GEMM: `out[t][r] = Σ_i x[t][i] · w[r][i]` for an activation block
//! x `[n, k]` and a weight tile w `[rows, k]`, both row-major with `k` contiguous.
//!
//! Register-blocked: 4 tokens × 2 weight rows share each vector load (8 independent FMA
//! accumulators on AVX2), horizontal sums happen once per output. The AVX2/FMA body is chosen
//! at run time; the portable body uses 8-lane arrays that LLVM vectorises.
//! Invariant: reads only `x[..n*k]` and `w[..rows*k]`; calls `store` exactly once per (t, r).

use super::simd::has_avx2_fma;

/// Tokens per register block.
const BLOCK_TOKENS: usize = 4;
/// Weight rows per register block.
const BLOCK_ROWS: usize = 2;

/// Calls `store(t, r, dot(x[t], w[r]))` for every token `t < x.len()/k` and row `r < w.len()/k`.
pub(crate) fn gemm_nt(x: &[f32], w: &[f32], k: usize, mut store: impl FnMut(usize, usize, f32)) {
    if k == 0 {
        return;
    }
    let (n, rows) = (x.len() / k, w.len() / k);
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: AVX2 + FMA present; the kernel reads x[..n*k] and w[..rows*k] only.
        unsafe { x86::gemm_nt(&x[..n * k], &w[..rows * k], k, &mut store) };
        return;
    }
    let _ = has_avx2_fma;
    portable::gemm_nt(&x[..n * k], &w[..rows * k], k, &mut store);
}

/// Walks (token block, row block) pairs and dispatches the const-size kernel for each.
macro_rules! tile_loop {
    ($x:expr, $w:expr, $k:expr, $store:expr, $kernel:ident) => {{
        let (x, w, k) = ($x, $w, $k);
        let (n, rows) = (x.len() / k, w.len() / k);
        let mut t0 = 0;
        while t0 < n {
            let tt = (n - t0).min(BLOCK_TOKENS);
            let xb = &x[t0 * k..(t0 + tt) * k];
            let mut r0 = 0;
            while r0 < rows {
                let rr = (rows - r0).min(BLOCK_ROWS);
                let wb = &w[r0 * k..(r0 + rr) * k];
                let mut put = |t: usize, r: usize, v: f32| ($store)(t0 + t, r0 + r, v);
                match (tt, rr) {
                    (4, 2) => $kernel::<4, 2>(xb, wb, k, &mut put),
                    (3, 2) => $kernel::<3, 2>(xb, wb, k, &mut put),
                    (2, 2) => $kernel::<2, 2>(xb, wb, k, &mut put),
                    (1, 2) => $kernel::<1, 2>(xb, wb, k, &mut put),
                    (4, _) => $kernel::<4, 1>(xb, wb, k, &mut put),
                    (3, _) => $kernel::<3, 1>(xb, wb, k, &mut put),
                    (2, _) => $kernel::<2, 1>(xb, wb, k, &mut put),
                    _ => $kernel::<1, 1>(xb, wb, k, &mut put),
                }
                r0 += rr;
            }
            t0 += tt;
        }
    }};
}

mod portable {
    //! Target-independent kernel: 8 lanes per accumulator, lane sums at the end.
    use super::{BLOCK_ROWS, BLOCK_TOKENS};

    pub(super) fn gemm_nt(
        x: &[f32],
        w: &[f32],
        k: usize,
        store: &mut impl FnMut(usize, usize, f32),
    ) {
        tile_loop!(x, w, k, store, block);
    }

    /// x: `[T, k]`, w: `[R, k]`.
    #[inline(always)]
    fn block<const T: usize, const R: usize>(
        x: &[f32],
        w: &[f32],
        k: usize,
        put: &mut impl FnMut(usize, usize, f32),
    ) {
        let mut acc = [[[0.0f32; 8]; R]; T];
        let main = k - k % 8;
        for i in (0..main).step_by(8) {
            for (t, acc_t) in acc.iter_mut().enumerate() {
                let xv = &x[t * k + i..t * k + i + 8];
                for (r, acc_tr) in acc_t.iter_mut().enumerate() {
                    let wv = &w[r * k + i..r * k + i + 8];
                    for l in 0..8 {
                        acc_tr[l] += xv[l] * wv[l];
                    }
                }
            }
        }
        for (t, acc_t) in acc.iter().enumerate() {
            for (r, acc_tr) in acc_t.iter().enumerate() {
                let tail: f32 = (main..k).map(|i| x[t * k + i] * w[r * k + i]).sum();
                put(t, r, acc_tr.iter().sum::<f32>() + tail);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2/FMA kernel. Callers guarantee the CPU features.
    use super::super::simd::x86::hsum;
    use super::{BLOCK_ROWS, BLOCK_TOKENS};
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2 and FMA must be available; `x.len()` and `w.len()` are multiples of `k`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm_nt(
        x: &[f32],
        w: &[f32],
        k: usize,
        store: &mut impl FnMut(usize, usize, f32),
    ) {
        tile_loop!(x, w, k, store, block);
    }

    /// x: `[T, k]`, w: `[R, k]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn block<const T: usize, const R: usize>(
        x: &[f32],
        w: &[f32],
        k: usize,
        put: &mut impl FnMut(usize, usize, f32),
    ) {
        debug_assert!(x.len() >= T * k && w.len() >= R * k);
        let (px, pw) = (x.as_ptr(), w.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); R]; T];
        let main = k - k % 8;
        let mut i = 0;
        while i < main {
            let mut wv = [_mm256_setzero_ps(); R];
            for (r, v) in wv.iter_mut().enumerate() {
                // SAFETY: r < R, i + 8 <= k and w holds R * k values (caller contract).
                *v = unsafe { _mm256_loadu_ps(pw.add(r * k + i)) };
            }
            for (t, acc_t) in acc.iter_mut().enumerate() {
                // SAFETY: t < T, i + 8 <= k and x holds T * k values (caller contract).
                let xv = unsafe { _mm256_loadu_ps(px.add(t * k + i)) };
                for (a, wr) in acc_t.iter_mut().zip(&wv) {
                    *a = _mm256_fmadd_ps(xv, *wr, *a);
                }
            }
            i += 8;
        }
        for (t, acc_t) in acc.iter().enumerate() {
            for (r, a) in acc_t.iter().enumerate() {
                let tail: f32 = (main..k).map(|i| x[t * k + i] * w[r * k + i]).sum();
                put(t, r, hsum(*a) + tail);
            }
        }
    }
}
