//! Scalar decoders for the 32-value legacy GGUF blocks (q4_0, q4_1, q5_0, q5_1, q8_0).
//!
//! Layouts (little-endian, `d`/`m` are f16):
//! - q4_0 `[d, qs[16]]`: value `j < 16` is `qs[j] & 15`, value `16 + j` is `qs[j] >> 4`;
//!   `w = d · (q - 8)`.
//! - q4_1 `[d, m, qs[16]]`: nibbles as q4_0; `w = d · q + m`.
//! - q5_0 `[d, qh: u32, qs[16]]`: nibbles as q4_0, bit `i` of `qh` is bit 4 of value `i`;
//!   `w = d · (q - 16)`.
//! - q5_1 `[d, m, qh: u32, qs[16]]`: as q5_0; `w = d · q + m`.
//! - q8_0 `[d, qs: i8[32]]`: `w = d · q`.
//!
//! Invariant: each decoder reads exactly one block (`block` has `DType::block_bytes()`
//! bytes, `out` has 32 values) and performs the reference's f32 operations in its order
//! (product rounded before the offset is added; no fused multiply-add).

use super::float::f16_at;

/// Values per legacy block.
pub(super) const BLOCK_ELEMS: usize = 32;

/// Calls `put(value_index, q)` for the 32 nibbles of `qs[16]`: low nibbles are values 0..16,
/// high nibbles values 16..32. Written as two straight loops so that LLVM vectorises them.
#[inline(always)]
fn for_nibbles(qs: &[u8], out: &mut [f32], put: impl Fn(usize, u8) -> f32) {
    let (low, high) = out[..BLOCK_ELEMS].split_at_mut(16);
    for (i, (w, &q)) in low.iter_mut().zip(&qs[..16]).enumerate() {
        *w = put(i, q & 0x0F);
    }
    for (i, (w, &q)) in high.iter_mut().zip(&qs[..16]).enumerate() {
        *w = put(16 + i, q >> 4);
    }
}

pub(super) fn decode_q4_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    for_nibbles(&block[2..18], out, |_, q| d * (q as i32 - 8) as f32);
}

pub(super) fn decode_q4_1(block: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(block, 0), f16_at(block, 2));
    for_nibbles(&block[4..20], out, |_, q| d * q as f32 + m);
}

pub(super) fn decode_q5_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    for_nibbles(&block[6..22], out, |i, q| {
        let q = q as i32 | ((((qh >> i) & 1) as i32) << 4);
        d * (q - 16) as f32
    });
}

pub(super) fn decode_q5_1(block: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(block, 0), f16_at(block, 2));
    let qh = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
    for_nibbles(&block[8..24], out, |i, q| {
        let q = q as u32 | (((qh >> i) & 1) << 4);
        d * q as f32 + m
    });
}

pub(super) fn decode_q8_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    for (w, &q) in out[..BLOCK_ELEMS]
        .iter_mut()
        .zip(&block[2..2 + BLOCK_ELEMS])
    {
        *w = q as i8 as f32 * d;
    }
}
