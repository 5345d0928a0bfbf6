//! f32 vector primitives (dot, axpy, scale) with runtime-selected AVX2/FMA on x86_64 and a
//! portable fallback (8 independent lanes, which LLVM vectorises on any target).
//!
//! Invariant: every function reads/writes exactly `min(len)` elements of its slices; the
//! SIMD path is entered only after `has_avx2_fma()` confirmed the CPU supports it. Results
//! differ from a sequential sum only in f32 rounding (different summation order).

/// Whether the AVX2 + FMA kernels may run on this CPU (cached by std after the first call).
#[inline]
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `Σ a[i] · b[i]` over the common length.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above); slices have equal length.
        return unsafe { x86::dot(a, b) };
    }
    dot_portable(a, b)
}

/// `y[i] += alpha · x[i]` over the common length.
#[inline]
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    let len = y.len().min(x.len());
    let (y, x) = (&mut y[..len], &x[..len]);
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above); slices have equal length.
        return unsafe { x86::axpy(y, alpha, x) };
    }
    y.iter_mut().zip(x).for_each(|(a, b)| *a += alpha * b);
}

/// `y[i] *= alpha`.
#[inline]
pub fn scale(y: &mut [f32], alpha: f32) {
    y.iter_mut().for_each(|v| *v *= alpha);
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! AVX2/FMA bodies. Callers guarantee the features and equal slice lengths.
    use std::arch::x86_64::*;

    /// Sum of the 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// AVX2 and FMA must be available; `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let len = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 8 <= len for every vector load, both slices have len values.
        while i + 32 <= len {
            for (u, a) in acc.iter_mut().enumerate() {
                let off = i + 8 * u;
                *a = unsafe {
                    _mm256_fmadd_ps(
                        _mm256_loadu_ps(pa.add(off)),
                        _mm256_loadu_ps(pb.add(off)),
                        *a,
                    )
                };
            }
            i += 32;
        }
        while i + 8 <= len {
            acc[0] = unsafe {
                _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i)),
                    _mm256_loadu_ps(pb.add(i)),
                    acc[0],
                )
            };
            i += 8;
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut s = hsum(v);
        while i < len {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    /// # Safety
    /// AVX2 and FMA must be available; `y.len() == x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
        let len = y.len();
        let (py, px) = (y.as_mut_ptr(), x.as_ptr());
        let va = _mm256_set1_ps(alpha);
        let mut i = 0;
        while i + 8 <= len {
            // SAFETY: i + 8 <= len and both slices hold len values.
            unsafe {
                let r = _mm256_fmadd_ps(va, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i)));
                _mm256_storeu_ps(py.add(i), r);
            }
            i += 8;
        }
        while i < len {
            y[i] += alpha * x[i];
            i += 1;
        }
    }
}
