//! GGUF block formats: dequantisation to f32 and dot products against f32 activations.
//!
//! - [`dequantize`]: bit-exact with the python `gguf` package (`gguf.quants.dequantize`) for
//!   f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k and q6_k. Every
//!   implementation (scalar and SIMD) evaluates each weight with the same f32 operations in
//!   the same order as the reference, so the results are identical bit for bit.
//! - [`dot`]: `Σ w[i] · x[i]` over one row, block by block, without allocating. Each weight
//!   `w[i]` is the exact dequantised value; only the summation order differs from a
//!   sequential sum (several f32 accumulator lanes, fused multiply-add).
//! - [`dot_rows`]: several consecutive rows against one activation row (decode mat-vec),
//!   each result bit-identical to [`dot`].
//! - [`dot_many`]: one row against several activation rows, unpacking each block once.
//!
//! The instruction set is chosen once per process ([`Isa::best`], cached); the `*_with`
//! variants force one (tests, benchmarks).
//!
//! Invariant: `src`/`row` holds a whole number of blocks of `dtype`, and `dst`/`x` have
//! exactly `blocks * block_elems` values; violations return an error, never read out of
//! bounds.

mod float;
mod kquants;
mod legacy;
mod scalar;
mod simd;

use crate::{DType, Result, TensorError};
use std::sync::OnceLock;

/// The instruction set a kernel runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, any target.
    Scalar,
    /// x86_64 AVX2 + FMA + F16C, 8 f32 lanes.
    Avx2,
    /// x86_64 AVX-512F (with AVX2 + FMA + F16C), 16 f32 lanes.
    Avx512,
}

impl Isa {
    /// The fastest instruction set this CPU supports (detected once, then cached).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            [Isa::Avx512, Isa::Avx2]
                .into_iter()
                .find(|isa| isa.is_supported())
                .unwrap_or(Isa::Scalar)
        })
    }

    /// Whether this CPU can run kernels of this instruction set.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => simd::avx2_supported(),
            Isa::Avx512 => simd::avx512_supported(),
        }
    }

    /// Every instruction set this CPU supports, slowest first.
    pub fn all_supported() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|isa| isa.is_supported())
            .collect()
    }
}

/// Checks that `bytes` holds exactly `elements` values of `dtype`.
fn check_len(dtype: DType, bytes: &[u8], elements: usize, op: &'static str) -> Result<()> {
    match dtype.bytes_for(elements) {
        Some(expected) if expected == bytes.len() => Ok(()),
        Some(expected) => Err(TensorError::ByteLength {
            dtype,
            elements,
            expected,
            actual: bytes.len(),
        }),
        None => Err(TensorError::Invalid {
            op,
            detail: format!(
                "{elements} values is not a whole number of {} blocks of {}",
                dtype.name(),
                dtype.block_elems()
            ),
        }),
    }
}

fn check_isa(isa: Isa, op: &'static str) -> Result<()> {
    if isa.is_supported() {
        Ok(())
    } else {
        Err(TensorError::Invalid {
            op,
            detail: format!("{isa:?} is not supported by this CPU"),
        })
    }
}

/// Decodes `dst.len()` values of `dtype` from `src` (bit-exact with `gguf.quants.dequantize`).
pub fn dequantize(dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    dequantize_with(Isa::best(), dtype, src, dst)
}

/// [`dequantize`] with a forced instruction set (errors if the CPU lacks it).
pub fn dequantize_with(isa: Isa, dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_isa(isa, "dequantize")?;
    check_len(dtype, src, dst.len(), "dequantize")?;
    match isa {
        Isa::Scalar => scalar::dequantize(dtype, src, dst),
        Isa::Avx2 | Isa::Avx512 => simd::dequantize(isa, dtype, src, dst),
    }
    Ok(())
}

/// `Σ row[i] · x[i]` where `row` holds `x.len()` values of `dtype`.
pub fn dot(dtype: DType, row: &[u8], x: &[f32]) -> Result<f32> {
    dot_with(Isa::best(), dtype, row, x)
}

/// [`dot`] with a forced instruction set (errors if the CPU lacks it).
pub fn dot_with(isa: Isa, dtype: DType, row: &[u8], x: &[f32]) -> Result<f32> {
    check_isa(isa, "dot")?;
    check_len(dtype, row, x.len(), "dot")?;
    Ok(match isa {
        Isa::Scalar => scalar::dot(dtype, row, x),
        Isa::Avx2 | Isa::Avx512 => simd::dot(isa, dtype, row, x),
    })
}

/// `out[r] = Σ rows[r][i] · x[i]`: `out.len()` consecutive weight rows of `x.len()` values of
/// `dtype` (`rows` holds exactly their bytes) against one activation row, several rows per
/// pass over `x`. Each result is bit-identical to [`dot`] of that row.
pub fn dot_rows(dtype: DType, rows: &[u8], x: &[f32], out: &mut [f32]) -> Result<()> {
    dot_rows_with(Isa::best(), dtype, rows, x, out)
}

/// [`dot_rows`] with a forced instruction set (errors if the CPU lacks it).
pub fn dot_rows_with(
    isa: Isa,
    dtype: DType,
    rows: &[u8],
    x: &[f32],
    out: &mut [f32],
) -> Result<()> {
    check_isa(isa, "dot_rows")?;
    check_len(dtype, rows, x.len() * out.len(), "dot_rows")?;
    if out.is_empty() {
        return Ok(());
    }
    if x.is_empty() {
        out.fill(0.0);
        return Ok(());
    }
    check_len(dtype, &rows[..rows.len() / out.len()], x.len(), "dot_rows")?;
    match isa {
        Isa::Scalar => scalar::dot_rows(dtype, rows, x, out),
        Isa::Avx2 | Isa::Avx512 => simd::dot_rows(isa, dtype, rows, x, out),
    }
    Ok(())
}

/// `out[j] = Σ row[i] · xs[j][i]`: one weight row against several activation rows, each
/// block unpacked once for all of them. Every `xs[j]` holds the row's value count; `out`
/// has `xs.len()` entries. Results equal [`dot`] of each pair up to f32 summation order.
pub fn dot_many(dtype: DType, row: &[u8], xs: &[&[f32]], out: &mut [f32]) -> Result<()> {
    dot_many_with(Isa::best(), dtype, row, xs, out)
}

/// [`dot_many`] with a forced instruction set (errors if the CPU lacks it).
pub fn dot_many_with(
    isa: Isa,
    dtype: DType,
    row: &[u8],
    xs: &[&[f32]],
    out: &mut [f32],
) -> Result<()> {
    check_isa(isa, "dot_many")?;
    if xs.len() != out.len() {
        return crate::error::shape_err(
            "dot_many",
            format!("{} activation rows but {} outputs", xs.len(), out.len()),
        );
    }
    let Some(first) = xs.first() else {
        return Ok(());
    };
    let elements = first.len();
    if let Some(bad) = xs.iter().find(|x| x.len() != elements) {
        return crate::error::shape_err(
            "dot_many",
            format!("activation rows of {} and {} values", elements, bad.len()),
        );
    }
    check_len(dtype, row, elements, "dot_many")?;
    match isa {
        Isa::Scalar => scalar::dot_many(dtype, row, xs, out),
        Isa::Avx2 | Isa::Avx512 => simd::dot_many(isa, dtype, row, xs, out),
    }
    Ok(())
}
