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

/// The 4-bit value `i` (0..32) of a 16-byte nibble array.
#[inline]
fn nibble(qs: &[u8], i: usize) -> u8 {
    (qs[i % 16] >> (4 * (i / 16))) & 0x0F
}

pub(super) fn decode_q4_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qs = &block[2..18];
    for (i, w) in out.iter_mut().enumerate().take(BLOCK_ELEMS) {
        *w = d * (nibble(qs, i) as i32 - 8) as f32;
    }
}

pub(super) fn decode_q4_1(block: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(block, 0), f16_at(block, 2));
    let qs = &block[4..20];
    for (i, w) in out.iter_mut().enumerate().take(BLOCK_ELEMS) {
        *w = d * nibble(qs, i) as f32 + m;
    }
}

pub(super) fn decode_q5_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let qs = &block[6..22];
    for (i, w) in out.iter_mut().enumerate().take(BLOCK_ELEMS) {
        let q = nibble(qs, i) as i32 | ((((qh >> i) & 1) as i32) << 4);
        *w = d * (q - 16) as f32;
    }
}

pub(super) fn decode_q5_1(block: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(block, 0), f16_at(block, 2));
    let qh = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
    let qs = &block[8..24];
    for (i, w) in out.iter_mut().enumerate().take(BLOCK_ELEMS) {
        let q = nibble(qs, i) as u32 | (((qh >> i) & 1) << 4);
        *w = d * q as f32 + m;
    }
}

pub(super) fn decode_q8_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    for (w, &q) in out.iter_mut().zip(&block[2..2 + BLOCK_ELEMS]) {
        *w = q as i8 as f32 * d;
    }
}
