//! f32 "NT" micro-GEMM: `out[t][r] = Σ_i x[t][i] · w[r][i]` for an activation block
//! x `[n, k]` and a weight tile w `[rows, k]`, both row-major with `k` contiguous.
//!
//! Register-blocked: 4 tokens × 2 weight rows share each vector load (8 independent FMA
//! accumulators on AVX2; 4 × 4 with 16 accumulators on AVX-512F), horizontal sums happen once
//! per output. The widest supported body is chosen at run time; the portable body uses 8-lane
//! arrays that LLVM vectorises.
//! Invariant: reads only `x[..n*k]` and `w[..rows*k]`; calls `store` exactly once per (t, r).

use super::simd::has_avx2_fma;

/// Tokens per register block.
const BLOCK_TOKENS: usize = 4;
/// Weight rows per register block (AVX2 and portable: 8 accumulators).
const BLOCK_ROWS: usize = 2;
/// Weight rows per register block with 32 AVX-512 registers (16 accumulators).
#[cfg(target_arch = "x86_64")]
const BLOCK_ROWS_512: usize = 4;

/// Calls `store(t, r, dot(x[t], w[r]))` for every token `t < x.len()/k` and row `r < w.len()/k`.
pub(crate) fn gemm_nt(x: &[f32], w: &[f32], k: usize, mut store: impl FnMut(usize, usize, f32)) {
    if k == 0 {
        return;
    }
    let (n, rows) = (x.len() / k, w.len() / k);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F present; the kernel reads x[..n*k] and w[..rows*k] only.
        unsafe { x86_512::gemm_nt(&x[..n * k], &w[..rows * k], k, &mut store) };
        return;
    }
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
    ($x:expr, $w:expr, $k:expr, $store:expr, $kernel:ident, $block_rows:expr) => {{
        let (x, w, k) = ($x, $w, $k);
        let (n, rows) = (x.len() / k, w.len() / k);
        let mut t0 = 0;
        while t0 < n {
            let tt = (n - t0).min(BLOCK_TOKENS);
            let xb = &x[t0 * k..(t0 + tt) * k];
            let mut r0 = 0;
            while r0 < rows {
                let rr = (rows - r0).min($block_rows);
                let wb = &w[r0 * k..(r0 + rr) * k];
                let mut put = |t: usize, r: usize, v: f32| ($store)(t0 + t, r0 + r, v);
                match (tt, rr) {
                    (4, 4) => $kernel::<4, 4>(xb, wb, k, &mut put),
                    (3, 4) => $kernel::<3, 4>(xb, wb, k, &mut put),
                    (2, 4) => $kernel::<2, 4>(xb, wb, k, &mut put),
                    (1, 4) => $kernel::<1, 4>(xb, wb, k, &mut put),
                    (4, 3) => $kernel::<4, 3>(xb, wb, k, &mut put),
                    (3, 3) => $kernel::<3, 3>(xb, wb, k, &mut put),
                    (2, 3) => $kernel::<2, 3>(xb, wb, k, &mut put),
                    (1, 3) => $kernel::<1, 3>(xb, wb, k, &mut put),
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
        tile_loop!(x, w, k, store, block, BLOCK_ROWS);
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
            let mut wv = [[0.0f32; 8]; R];
            for (r, v) in wv.iter_mut().enumerate() {
                v.copy_from_slice(&w[r * k + i..r * k + i + 8]);
            }
            for (t, acc_t) in acc.iter_mut().enumerate() {
                let mut xv = [0.0f32; 8];
                xv.copy_from_slice(&x[t * k + i..t * k + i + 8]);
                for (acc_tr, wr) in acc_t.iter_mut().zip(&wv) {
                    for l in 0..8 {
                        acc_tr[l] += xv[l] * wr[l];
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
        tile_loop!(x, w, k, store, block, BLOCK_ROWS);
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

#[cfg(target_arch = "x86_64")]
mod x86_512 {
    //! AVX-512F kernel: 4 tokens × 4 rows, 16 lanes, masked loads for the `k % 16` tail.
    use super::{BLOCK_ROWS_512, BLOCK_TOKENS};
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512F must be available; `x.len()` and `w.len()` are multiples of `k`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm_nt(
        x: &[f32],
        w: &[f32],
        k: usize,
        store: &mut impl FnMut(usize, usize, f32),
    ) {
        tile_loop!(x, w, k, store, block, BLOCK_ROWS_512);
    }

    /// x: `[T, k]`, w: `[R, k]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn block<const T: usize, const R: usize>(
        x: &[f32],
        w: &[f32],
        k: usize,
        put: &mut impl FnMut(usize, usize, f32),
    ) {
        debug_assert!(x.len() >= T * k && w.len() >= R * k);
        let (px, pw) = (x.as_ptr(), w.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); R]; T];
        let main = k - k % 16;
        let mut i = 0;
        while i < main {
            // SAFETY: i + 16 <= k; x holds T * k and w holds R * k values (caller contract).
            unsafe { step(&mut acc, px.add(i), pw.add(i), k, 0xffff) };
            i += 16;
        }
        if main < k {
            let mask = ((1u32 << (k - main)) - 1) as __mmask16;
            // SAFETY: only the k - main lanes below k are loaded (masked).
            unsafe { step(&mut acc, px.add(main), pw.add(main), k, mask) };
        }
        for (t, acc_t) in acc.iter().enumerate() {
            for (r, a) in acc_t.iter().enumerate() {
                put(t, r, _mm512_reduce_add_ps(*a));
            }
        }
    }

    /// One 16-lane step: `acc[t][r] += x[t*k ..][lanes] · w[r*k ..][lanes]` for enabled lanes.
    ///
    /// # Safety
    /// For every t < T and r < R, the `mask`-enabled lanes of `x.add(t*k)` and `w.add(r*k)`
    /// must be readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn step<const T: usize, const R: usize>(
        acc: &mut [[__m512; R]; T],
        x: *const f32,
        w: *const f32,
        k: usize,
        mask: __mmask16,
    ) {
        let mut wv = [_mm512_setzero_ps(); R];
        for (r, v) in wv.iter_mut().enumerate() {
            // SAFETY: per the function contract.
            *v = unsafe { _mm512_maskz_loadu_ps(mask, w.add(r * k)) };
        }
        for (t, acc_t) in acc.iter_mut().enumerate() {
            // SAFETY: per the function contract.
            let xv = unsafe { _mm512_maskz_loadu_ps(mask, x.add(t * k)) };
            for (a, wr) in acc_t.iter_mut().zip(&wv) {
                *a = _mm512_fmadd_ps(xv, *wr, *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every kernel body (not only the one this CPU dispatches to) against a naive dot.

    fn inputs(n: usize, rows: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        let x = (0..n * k).map(val).collect();
        let w = (0..rows * k).map(|i| val(i + 17)).collect();
        (x, w)
    }

    /// A kernel body under test: `(x, w, k, store)`.
    type Kernel<'a> = &'a dyn Fn(&[f32], &[f32], usize, &mut dyn FnMut(usize, usize, f32));

    fn check(kernel: Kernel) {
        for (n, rows, k) in [(1, 1, 1), (5, 7, 131), (4, 4, 16), (9, 3, 40), (2, 9, 8)] {
            let (x, w) = inputs(n, rows, k);
            let mut got = vec![f32::NAN; n * rows];
            let mut calls = 0;
            kernel(&x, &w, k, &mut |t, r, v| {
                got[t * rows + r] = v;
                calls += 1;
            });
            assert_eq!(calls, n * rows);
            for t in 0..n {
                for r in 0..rows {
                    let want: f32 = (0..k).map(|i| x[t * k + i] * w[r * k + i]).sum();
                    let g = got[t * rows + r];
                    assert!(
                        (g - want).abs() <= 1e-5 * (k as f32),
                        "{n}x{rows}x{k} ({t},{r})"
                    );
                }
            }
        }
    }

    #[test]
    fn portable_kernel_matches_naive() {
        check(&|x, w, k, s| super::portable::gemm_nt(x, w, k, &mut |t, r, v| s(t, r, v)));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernel_matches_naive() {
        if !super::has_avx2_fma() {
            eprintln!("AVX2/FMA absent: kernel not exercised on this CPU");
            return;
        }
        // SAFETY: features checked above.
        check(&|x, w, k, s| unsafe { super::x86::gemm_nt(x, w, k, &mut |t, r, v| s(t, r, v)) });
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_kernel_matches_naive() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("AVX-512F absent: kernel not exercised on this CPU");
            return;
        }
        // SAFETY: feature checked above.
        check(&|x, w, k, s| unsafe { super::x86_512::gemm_nt(x, w, k, &mut |t, r, v| s(t, r, v)) });
    }
}
