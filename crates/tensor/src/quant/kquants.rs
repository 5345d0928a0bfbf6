//! Scalar decoders for the 256-value k-quant super-blocks (q2_k, q3_k, q4_k, q5_k, q6_k),
//! plus the scale unpacking the SIMD decoders share.
//!
//! Layouts (little-endian, `d`/`dmin` are f16, value index `e` in 0..256):
//! - q2_k `[scales[16], qs[64], d, dmin]`: `q = (qs[32·(e/128) + e%32] >> 2·((e/32)%4)) & 3`,
//!   `s = scales[e/16]`; `w = (d · (s & 15)) · q - dmin · (s >> 4)`.
//! - q3_k `[hmask[32], qs[64], scales[12], d]`: low 2 bits as q2_k, high bit
//!   `h = (hmask[e%32] >> (e/32)) & 1`, `q = low - 4·(1 - h)`; 16 signed 6-bit scales
//!   (see [`q3k_scales`]); `w = (d · scale) · q`.
//! - q4_k `[d, dmin, scales[12], qs[128]]`: `q = (qs[32·(e/64) + e%32] >> 4·((e/32)%2)) & 15`;
//!   8 (scale, min) 6-bit pairs (see [`q4k_scale_min`]); `w = (d · sc) · q - dmin · mn`.
//! - q5_k `[d, dmin, scales[12], qh[32], qs[128]]`: as q4_k plus bit 4 of `q` from
//!   `(qh[e%32] >> (e/32)) & 1`.
//! - q6_k `[ql[128], qh[64], scales: i8[16], d]`: with `h = e/128`, `r = e%128`:
//!   `q = ((ql[64h + r%64] >> 4·(r/64)) & 15) | (((qh[32h + r%32] >> 2·(r/32)) & 3) << 4)`,
//!   minus 32; `w = (d · scales[e/16]) · q`.
//!
//! Invariant: each decoder reads exactly one super-block and performs the reference's f32
//! operations in its order (per-sub-block scale products rounded first; no fused ops).

use super::float::f16_at;
use crate::dtype::QK_K;

/// The 16 signed q3_k sub-block scales (6 bits each, stored biased by 32) of `scales[12]`.
#[inline]
pub(super) fn q3k_scales(scales: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (k, s) in out.iter_mut().enumerate() {
        let low = (scales[k % 8] >> (4 * (k / 8))) & 0x0F;
        let high = (scales[8 + k % 4] >> (2 * (k / 4))) & 0x03;
        *s = ((low | (high << 4)) as i8).wrapping_sub(32);
    }
    out
}

/// The 8 (scale, min) pairs of q4_k/q5_k, 6 bits each, packed into `scales[12]`.
#[inline]
pub(super) fn q4k_scale_min(scales: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = scales[j] & 0x3F;
        mn[j] = scales[j + 4] & 0x3F;
        sc[j + 4] = (scales[j + 8] & 0x0F) | ((scales[j] >> 2) & 0x30);
        mn[j + 4] = (scales[j + 8] >> 4) | ((scales[j + 4] >> 2) & 0x30);
    }
    (sc, mn)
}

/// Calls `decode(e0, out16)` for each run of 16 values starting at `e0` (every run shares
/// one sub-block scale and reads 16 consecutive bytes of each packed array).
#[inline(always)]
fn for_runs(out: &mut [f32], mut decode: impl FnMut(usize, &mut [f32])) {
    for (run, out16) in out[..QK_K].chunks_exact_mut(16).enumerate() {
        decode(16 * run, out16);
    }
}

/// The 16 bytes of a q2_k/q3_k `qs[64]` holding values `e0..e0 + 16`, and their bit shift.
#[inline(always)]
fn crumb_run(qs: &[u8], e0: usize) -> (&[u8], u32) {
    let base = 32 * (e0 / 128) + e0 % 32;
    (&qs[base..base + 16], 2 * ((e0 / 32) % 4) as u32)
}

/// The 16 bytes of a q4_k/q5_k `qs[128]` holding values `e0..e0 + 16`, and their bit shift.
#[inline(always)]
fn nibble_run(qs: &[u8], e0: usize) -> (&[u8], u32) {
    let base = 32 * (e0 / 64) + e0 % 32;
    (&qs[base..base + 16], 4 * ((e0 / 32) % 2) as u32)
}

pub(super) fn decode_q2_k(block: &[u8], out: &mut [f32]) {
    let (scales, qs) = (&block[..16], &block[16..80]);
    let (d, dmin) = (f16_at(block, 80), f16_at(block, 82));
    for_runs(out, |e0, out16| {
        let s = scales[e0 / 16];
        let (dl, ml) = (d * (s & 0x0F) as f32, dmin * (s >> 4) as f32);
        let (bytes, shift) = crumb_run(qs, e0);
        for (w, &b) in out16.iter_mut().zip(bytes) {
            *w = dl * ((b >> shift) & 0x03) as f32 - ml;
        }
    });
}

pub(super) fn decode_q3_k(block: &[u8], out: &mut [f32]) {
    let (hmask, qs) = (&block[..32], &block[32..96]);
    let scales = q3k_scales(&block[96..108]);
    let d = f16_at(block, 108);
    for_runs(out, |e0, out16| {
        let dl = d * scales[e0 / 16] as f32;
        let (bytes, shift) = crumb_run(qs, e0);
        let (hbytes, hshift) = (&hmask[e0 % 32..e0 % 32 + 16], (e0 / 32) as u32);
        for ((w, &b), &h) in out16.iter_mut().zip(bytes).zip(hbytes) {
            let high = (h >> hshift) & 1;
            let q = ((b >> shift) & 0x03) as i32 - (((high ^ 1) as i32) << 2);
            *w = dl * q as f32;
        }
    });
}

pub(super) fn decode_q4_k(block: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
    let (sc, mn) = q4k_scale_min(&block[4..16]);
    let qs = &block[16..144];
    for_runs(out, |e0, out16| {
        let (dl, ml) = (d * sc[e0 / 32] as f32, dmin * mn[e0 / 32] as f32);
        let (bytes, shift) = nibble_run(qs, e0);
        for (w, &b) in out16.iter_mut().zip(bytes) {
            *w = dl * ((b >> shift) & 0x0F) as f32 - ml;
        }
    });
}

pub(super) fn decode_q5_k(block: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
    let (sc, mn) = q4k_scale_min(&block[4..16]);
    let (qh, qs) = (&block[16..48], &block[48..176]);
    for_runs(out, |e0, out16| {
        let (dl, ml) = (d * sc[e0 / 32] as f32, dmin * mn[e0 / 32] as f32);
        let (bytes, shift) = nibble_run(qs, e0);
        let (hbytes, hshift) = (&qh[e0 % 32..e0 % 32 + 16], (e0 / 32) as u32);
        for ((w, &b), &h) in out16.iter_mut().zip(bytes).zip(hbytes) {
            let q = ((b >> shift) & 0x0F) | (((h >> hshift) & 1) << 4);
            *w = dl * q as f32 - ml;
        }
    });
}

pub(super) fn decode_q6_k(block: &[u8], out: &mut [f32]) {
    let (ql, qh, scales) = (&block[..128], &block[128..192], &block[192..208]);
    let d = f16_at(block, 208);
    for_runs(out, |e0, out16| {
        let dl = d * scales[e0 / 16] as i8 as f32;
        let (h, r) = (e0 / 128, e0 % 128);
        let low_base = 64 * h + r % 64;
        let (low_bytes, low_shift) = (&ql[low_base..low_base + 16], 4 * (r / 64) as u32);
        let high_base = 32 * h + r % 32;
        let (high_bytes, high_shift) = (&qh[high_base..high_base + 16], 2 * (r / 32) as u32);
        for ((w, &lo), &hi) in out16.iter_mut().zip(low_bytes).zip(high_bytes) {
            let q = ((lo >> low_shift) & 0x0F) | (((hi >> high_shift) & 0x03) << 4);
            *w = dl * (q as i32 - 32) as f32;
        }
    });
}
