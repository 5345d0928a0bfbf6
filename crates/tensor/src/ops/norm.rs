//! RMSNorm over the last dimension, in the two weight conventions of MODEL-SPECS §1.1.
//! (The gated variant used by Gated DeltaNet arrives with Qwen3.5.)
//!
//! Computed in f32: `x̂ = x · (1 / sqrt(mean(x²) + eps))`, then `x̂ · w'` with `w' = w` (Plain) or
//! `1 + w` (ZeroCentered, the 1 added in f32). Rows run in parallel when there are many.
//! [`add_rms_norm`] is the decoder's residual add followed by the next norm: on the CPU exactly
//! `add_inplace` then `rms_norm` (same f32 ops, same order); on a GPU one fused kernel.

use super::simd;
use crate::{error::shape_err, Result, Tensor, Weight};
use rayon::prelude::*;

/// Values per rayon task (rows are grouped until they reach this).
const MIN_TASK_VALUES: usize = 1 << 14;

/// How the norm weight is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RmsNormKind {
    /// `y = w ⊙ x̂` (llama, qwen3).
    Plain,
    /// `y = (1 + w) ⊙ x̂` (qwen3.5; weights stored as offsets around 0).
    ZeroCentered,
}

/// x: `[.., n]`, w: `[n]` → same shape as x. `x̂ = x · rsqrt(mean(x²) + eps)`.
pub fn rms_norm(x: &Tensor, w: &Weight, eps: f32, kind: RmsNormKind) -> Result<Tensor> {
    let n = x.shape().last().copied().unwrap_or(0);
    if w.elements() != n {
        return shape_err(
            "rms_norm",
            format!("x {:?} vs weight {:?}", x.shape(), w.shape()),
        );
    }
    let mut wv = w.to_f32_vec()?;
    if kind == RmsNormKind::ZeroCentered {
        wv.iter_mut().for_each(|v| *v += 1.0);
    }
    let mut out = x.clone();
    if n == 0 {
        return Ok(out);
    }
    let min_rows = (MIN_TASK_VALUES / n).max(1);
    out.data_mut()
        .par_chunks_mut(n)
        .with_min_len(min_rows)
        .for_each(|row| {
            let ms = simd::dot(row, row) / n as f32;
            let inv = 1.0 / (ms + eps).sqrt();
            for (v, w) in row.iter_mut().zip(&wv) {
                *v = *v * inv * w;
            }
        });
    Ok(out)
}

/// `x += y` (the residual stream), then `rms_norm(x)`: x, y `[.., n]`, w `[n]` → same shape as x.
/// Exactly `add_inplace(x, y)` followed by [`rms_norm`]; shapes are checked before x changes.
pub fn add_rms_norm(
    x: &mut Tensor,
    y: &Tensor,
    w: &Weight,
    eps: f32,
    kind: RmsNormKind,
) -> Result<Tensor> {
    add_rms_norm_dim(x, y, w)?;
    super::activation::add_inplace(x, y)?;
    rms_norm(x, w, eps, kind)
}

/// The normalised dim of an `add_rms_norm` (CPU and GPU): x and y the same shape, w `[dim]`.
pub(crate) fn add_rms_norm_dim(x: &Tensor, y: &Tensor, w: &Weight) -> Result<usize> {
    let dim = x.shape().last().copied().unwrap_or(0);
    if x.shape() != y.shape() || w.elements() != dim {
        let detail = format!(
            "x {:?}, y {:?}, weight {:?}",
            x.shape(),
            y.shape(),
            w.shape()
        );
        return shape_err("add_rms_norm", detail);
    }
    Ok(dim)
}
