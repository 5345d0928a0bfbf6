//! [`RmsNorm`]: a norm weight with its eps and weight convention (MODEL-SPECS §1.1).

use arle_tensor::ops::{self, RmsNormKind};
use arle_tensor::{Tensor, Weight};

use crate::weights::WeightSource;
use crate::Result;

#[derive(Clone, Debug)]
pub struct RmsNorm {
    /// `[size]`
    pub weight: Weight,
    pub eps: f32,
    pub kind: RmsNormKind,
}

impl RmsNorm {
    /// Takes `{prefix}.weight` `[size]`.
    pub fn load(
        ws: &mut WeightSource,
        prefix: &str,
        size: usize,
        eps: f32,
        kind: RmsNormKind,
    ) -> Result<Self> {
        let weight = ws.take(&format!("{prefix}.weight"), &[size])?;
        Ok(Self { weight, eps, kind })
    }

    /// Normalises over the last dim: x `[.., size]` → same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::rms_norm(x, &self.weight, self.eps, self.kind)?)
    }
}
