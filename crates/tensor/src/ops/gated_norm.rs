//! Gated RMSNorm of the Gated DeltaNet output (MODEL-SPECS §1.1 "Gated"):
//! `y = (w ⊙ x̂) ⊙ silu(z)` with `x̂ = x · rsqrt(mean(x²) + eps)` over the last dim, **plain** `w`
//! (not `1 + w`), all in f32. Rows are independent and run in parallel when there are many.

use crate::{error::shape_err, Result, Tensor, Weight};
use rayon::prelude::*;

/// Values per rayon task.
const MIN_TASK_VALUES: usize = 1 << 14;

/// x, z: `[.., n]` (same shape), w: `[n]` → same shape as x.
pub fn gated_rms_norm(x: &Tensor, z: &Tensor, w: &Weight, eps: f32) -> Result<Tensor> {
    let n = x.shape().last().copied().unwrap_or(0);
    if x.shape() != z.shape() || w.elements() != n {
        let detail = format!(
            "x {:?}, z {:?}, weight {:?}",
            x.shape(),
            z.shape(),
            w.shape()
        );
        return shape_err("gated_rms_norm", detail);
    }
    let wv = w.to_f32_vec()?;
    let mut out = x.clone();
    if n == 0 {
        return Ok(out);
    }
    let min_rows = (MIN_TASK_VALUES / n).max(1);
    out.data_mut()
        .par_chunks_mut(n)
        .zip(z.data().par_chunks(n))
        .with_min_len(min_rows)
        .for_each(|(row, gate)| {
            let ms = row.iter().map(|v| v * v).sum::<f32>() / n as f32;
            let inv = 1.0 / (ms + eps).sqrt();
            for ((v, &w), &g) in row.iter_mut().zip(&wv).zip(gate) {
                let silu = g / (1.0 + (-g).exp());
                *v = w * (*v * inv) * silu;
            }
        });
    Ok(out)
}
