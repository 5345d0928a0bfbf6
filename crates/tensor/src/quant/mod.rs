//! GGUF block formats: dequantisation to f32 and dot products against f32 activations.
//!
//! Invariant: `src` holds a whole number of blocks of `dtype`, and `dst`/`x` have exactly
//! `blocks * block_elems` values; violations return an error, never read out of bounds.

use crate::{DType, Result, TensorError};
use half::{bf16, f16};

fn check(dtype: DType, src: &[u8], n: usize, op: &'static str) -> Result<()> {
    match dtype.bytes_for(n) {
        Some(b) if b == src.len() => Ok(()),
        _ => Err(TensorError::ByteLength {
            dtype,
            elements: n,
            expected: dtype.bytes_for(n).unwrap_or(0),
            actual: src.len(),
        })
        .map_err(|e| match e {
            TensorError::ByteLength { .. } if dtype.bytes_for(n).is_none() => {
                TensorError::Invalid {
                    op,
                    detail: format!(
                        "{n} values is not a whole number of {} blocks",
                        dtype.name()
                    ),
                }
            }
            e => e,
        }),
    }
}

/// Decodes `dst.len()` values of `dtype` from `src`.
pub fn dequantize(dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    check(dtype, src, dst.len(), "dequantize")?;
    match dtype {
        DType::F32 => dst
            .iter_mut()
            .zip(src.chunks_exact(4))
            .for_each(|(d, b)| *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        DType::F16 => dst
            .iter_mut()
            .zip(src.chunks_exact(2))
            .for_each(|(d, b)| *d = f16::from_le_bytes([b[0], b[1]]).to_f32()),
        DType::BF16 => dst
            .iter_mut()
            .zip(src.chunks_exact(2))
            .for_each(|(d, b)| *d = bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        other => {
            return Err(TensorError::UnsupportedDType {
                op: "dequantize",
                dtype: other,
            })
        }
    }
    Ok(())
}

/// `Σ row[i] · x[i]` where `row` holds `x.len()` values of `dtype`.
pub fn dot(dtype: DType, row: &[u8], x: &[f32]) -> Result<f32> {
    let mut tmp = vec![0.0f32; x.len()];
    dequantize(dtype, row, &mut tmp)?;
    Ok(tmp.iter().zip(x).map(|(a, b)| a * b).sum())
}
