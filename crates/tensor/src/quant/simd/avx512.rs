//! AVX-512F kernels (with AVX2 + FMA + F16C): 16 f32 lanes per vector.
//!
//! Invariant: everything here is compiled for `avx512f,avx2,fma,f16c` and reached only through
//! [`super`] after `avx512_supported()`; pointer arguments address the bytes the primitive's
//! doc names, which the decoders guarantee.

use super::super::scalar;
use crate::DType;
use std::arch::x86_64::*;

type F = __m512;
type I = __m512i;
const LANES: usize = 16;

#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn zero() -> F {
    _mm512_setzero_ps()
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn splat(v: f32) -> F {
    _mm512_set1_ps(v)
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn splat_i(v: i32) -> I {
    _mm512_set1_epi32(v)
}
/// Lanes `0, 1, ..., 15`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn iota() -> I {
    _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}
/// 16 bytes at `p`, zero-extended to i32 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn ld_u8(p: *const u8) -> I {
    // SAFETY: the caller guarantees 16 readable bytes at `p` (unaligned load).
    _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(p.cast()) })
}
/// 16 bytes at `p`, sign-extended to i32 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn ld_i8(p: *const u8) -> I {
    // SAFETY: the caller guarantees 16 readable bytes at `p` (unaligned load).
    _mm512_cvtepi8_epi32(unsafe { _mm_loadu_si128(p.cast()) })
}
/// 16 little-endian f16 at `p` (32 bytes), widened exactly.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn ld_f16(p: *const u8) -> F {
    // SAFETY: the caller guarantees 32 readable bytes at `p` (unaligned load).
    _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) })
}
/// 16 little-endian bf16 at `p` (32 bytes), widened exactly.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn ld_bf16(p: *const u8) -> F {
    // SAFETY: the caller guarantees 32 readable bytes at `p` (unaligned load).
    let wide = _mm512_cvtepu16_epi32(unsafe { _mm256_loadu_si256(p.cast()) });
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
}
/// 16 f32 at `p`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn ldx(p: *const f32) -> F {
    // SAFETY: the caller guarantees 16 readable f32 at `p` (unaligned load).
    unsafe { _mm512_loadu_ps(p) }
}
/// Stores 16 f32 at `p`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn st(p: *mut f32, v: F) {
    // SAFETY: the caller guarantees 16 writable f32 at `p` (unaligned store).
    unsafe { _mm512_storeu_ps(p, v) }
}
/// The little-endian f16 at `p + offset`, widened exactly and broadcast to every lane.
///
/// Converting the broadcast vector (rather than one lane) keeps every lane demanded, so LLVM
/// emits a full-register broadcast load instead of a lane insert whose merge with a stale
/// register would chain each block's decode to the previous block's accumulators.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn f16_splat(p: *const u8, offset: usize) -> F {
    // SAFETY: the caller guarantees 2 readable bytes at `p + offset`.
    let bits = unsafe { p.add(offset).cast::<u16>().read_unaligned() }.to_le();
    _mm512_cvtph_ps(_mm256_set1_epi16(bits as i16))
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn srl(v: I, n: u32) -> I {
    _mm512_srl_epi32(v, _mm_cvtsi32_si128(n as i32))
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn sll(v: I, n: u32) -> I {
    _mm512_sll_epi32(v, _mm_cvtsi32_si128(n as i32))
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn srlv(v: I, n: I) -> I {
    _mm512_srlv_epi32(v, n)
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn and(a: I, b: I) -> I {
    _mm512_and_si512(a, b)
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn or(a: I, b: I) -> I {
    _mm512_or_si512(a, b)
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn xor(a: I, b: I) -> I {
    _mm512_xor_si512(a, b)
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn sub_i(a: I, b: I) -> I {
    _mm512_sub_epi32(a, b)
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn to_f(v: I) -> F {
    _mm512_cvtepi32_ps(v)
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn mul(a: F, b: F) -> F {
    _mm512_mul_ps(a, b)
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn add(a: F, b: F) -> F {
    _mm512_add_ps(a, b)
}
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn sub(a: F, b: F) -> F {
    _mm512_sub_ps(a, b)
}
/// `a · b + c` with one rounding.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn fmadd(a: F, b: F, c: F) -> F {
    _mm512_fmadd_ps(a, b, c)
}
/// A 16-entry f32 table (one vector): entry `q` is lane `q`.
type T = F;
/// The table `f(q)` for `q = 0..16`, evaluated lane-wise on the exact f32 values of `q`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn table16(f: impl Fn(F) -> F) -> T {
    f(to_f(iota()))
}
/// Per lane `t[q & 15]` (bits above the low 4 of each lane are ignored).
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn lookup16(t: T, q: I) -> F {
    _mm512_permutexvar_ps(q, t)
}
/// Sum of the 16 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn hsum(v: F) -> f32 {
    _mm512_reduce_add_ps(v)
}

simd_kernels!("avx512f,avx2,fma,f16c");
