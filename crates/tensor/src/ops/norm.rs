//! RMSNorm over the last dimension, in the two weight conventions of MODEL-SPECS §1.1.
//! (The gated variant used by Gated DeltaNet arrives with Qwen3.5.)

use crate::{error::shape_err, Result, Tensor, Weight};

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
    for row in out.data_mut().chunks_mut(n.max(1)) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / n as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for (v, w) in row.iter_mut().zip(&wv) {
            *v = *v * inv * w;
        }
    }
    Ok(out)
}
