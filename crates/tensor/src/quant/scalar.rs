//! Portable drivers: dequantise, dot and dot-many over whole rows, block by block, through
//! the scalar decoders of [`super::legacy`], [`super::kquants`] and [`super::float`].
//!
//! Invariant: callers (the `quant` API) have checked that the byte and value counts agree;
//! each block is decoded into a stack buffer, nothing is allocated.

use super::{float, kquants, legacy};
use crate::dtype::QK_K;
use crate::DType;

/// Decodes one block (its bytes) into its `block_elems` values.
type DecodeBlock = fn(&[u8], &mut [f32]);

/// The block decoder of a quantised `dtype`; `None` for floats.
fn block_decoder(dtype: DType) -> Option<DecodeBlock> {
    Some(match dtype {
        DType::F32 | DType::F16 | DType::BF16 => return None,
        DType::Q4_0 => legacy::decode_q4_0,
        DType::Q4_1 => legacy::decode_q4_1,
        DType::Q5_0 => legacy::decode_q5_0,
        DType::Q5_1 => legacy::decode_q5_1,
        DType::Q8_0 => legacy::decode_q8_0,
        DType::Q2K => kquants::decode_q2_k,
        DType::Q3K => kquants::decode_q3_k,
        DType::Q4K => kquants::decode_q4_k,
        DType::Q5K => kquants::decode_q5_k,
        DType::Q6K => kquants::decode_q6_k,
    })
}

/// Decodes `dst.len()` values; `src` has the matching byte count.
pub(super) fn dequantize(dtype: DType, src: &[u8], dst: &mut [f32]) {
    match dtype {
        DType::F32 => float::decode_f32(src, dst),
        DType::F16 => float::decode_f16(src, dst),
        DType::BF16 => float::decode_bf16(src, dst),
        _ => {
            let Some(decode) = block_decoder(dtype) else {
                return;
            };
            let src_blocks = src.chunks_exact(dtype.block_bytes());
            for (block, out) in src_blocks.zip(dst.chunks_exact_mut(dtype.block_elems())) {
                decode(block, out);
            }
        }
    }
}

/// Calls `visit(values, start)` for consecutive decoded chunks of at most `QK_K` values,
/// `start` being the index of the chunk's first value in the row.
fn for_each_chunk(dtype: DType, row: &[u8], elements: usize, mut visit: impl FnMut(&[f32], usize)) {
    let mut buf = [0.0f32; QK_K];
    // Floats: any chunk size works; use whole buffers. Blocks: one block per chunk.
    let chunk_elems = if dtype.is_quantized() {
        dtype.block_elems()
    } else {
        QK_K
    };
    let chunk_bytes = chunk_elems * dtype.block_bytes() / dtype.block_elems();
    let mut start = 0;
    for bytes in row.chunks(chunk_bytes) {
        let n = (elements - start).min(chunk_elems);
        dequantize(dtype, bytes, &mut buf[..n]);
        visit(&buf[..n], start);
        start += n;
    }
}

/// Eight-lane f32 dot (the lanes keep LLVM free to vectorise and shorten dependency chains).
#[inline]
fn dot_lanes(acc: &mut [f32; 8], w: &[f32], x: &[f32]) {
    let (wc, xc) = (w.chunks_exact(8), x.chunks_exact(8));
    for (i, (a, b)) in wc.remainder().iter().zip(xc.remainder()).enumerate() {
        acc[i] += a * b;
    }
    for (a, b) in wc.zip(xc) {
        for l in 0..8 {
            acc[l] += a[l] * b[l];
        }
    }
}

/// `Σ row[i] · x[i]`.
pub(super) fn dot(dtype: DType, row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for_each_chunk(dtype, row, x.len(), |w, start| {
        dot_lanes(&mut acc, w, &x[start..start + w.len()]);
    });
    acc.iter().sum()
}

/// `out[r] = Σ rows[r][i] · x[i]` for `out.len()` equal rows (`out` non-empty, `x` too).
pub(super) fn dot_rows(dtype: DType, rows: &[u8], x: &[f32], out: &mut [f32]) {
    let row_bytes = (rows.len() / out.len().max(1)).max(1);
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(row_bytes)) {
        *o = dot(dtype, row, x);
    }
}

/// `out[j] = Σ row[i] · xs[j][i]`, decoding each block once.
pub(super) fn dot_many(dtype: DType, row: &[u8], xs: &[&[f32]], out: &mut [f32]) {
    const MAX_ROWS: usize = 8;
    for (xs, out) in xs.chunks(MAX_ROWS).zip(out.chunks_mut(MAX_ROWS)) {
        let mut acc = [[0.0f32; 8]; MAX_ROWS];
        let elements = xs.first().map_or(0, |x| x.len());
        for_each_chunk(dtype, row, elements, |w, start| {
            for (acc, x) in acc.iter_mut().zip(xs) {
                dot_lanes(acc, w, &x[start..start + w.len()]);
            }
        });
        for (o, acc) in out.iter_mut().zip(&acc) {
            *o = acc.iter().sum();
        }
    }
}
