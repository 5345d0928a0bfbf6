//! Plain float formats (f32, f16, bf16) and the little-endian field readers shared by the
//! block decoders.
//!
//! Invariant: conversions are exact (every f16/bf16 value is representable in f32), so the
//! results equal numpy's `astype(np.float32)` bit for bit.

use half::{bf16, f16};

/// The little-endian f16 at `bytes[offset..offset + 2]`, widened to f32.
#[inline]
pub(super) fn f16_at(bytes: &[u8], offset: usize) -> f32 {
    f16::from_le_bytes([bytes[offset], bytes[offset + 1]]).to_f32()
}

/// Decodes f32 values: `src` has `4 * dst.len()` bytes.
pub(super) fn decode_f32(src: &[u8], dst: &mut [f32]) {
    dst.iter_mut()
        .zip(src.chunks_exact(4))
        .for_each(|(d, b)| *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
}

/// Decodes f16 values: `src` has `2 * dst.len()` bytes.
pub(super) fn decode_f16(src: &[u8], dst: &mut [f32]) {
    dst.iter_mut()
        .zip(src.chunks_exact(2))
        .for_each(|(d, b)| *d = f16::from_le_bytes([b[0], b[1]]).to_f32());
}

/// Decodes bf16 values: `src` has `2 * dst.len()` bytes.
pub(super) fn decode_bf16(src: &[u8], dst: &mut [f32]) {
    dst.iter_mut()
        .zip(src.chunks_exact(2))
        .for_each(|(d, b)| *d = bf16::from_le_bytes([b[0], b[1]]).to_f32());
}
