//! [`Linear`]: `y = x · Wᵀ (+ b)` with `W: [out, in]` kept in its checkpoint dtype.

use arle_tensor::{ops, Tensor, Weight};

use crate::weights::WeightSource;
use crate::Result;

#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out_features, in_features]`
    pub weight: Weight,
    /// `[out_features]`
    pub bias: Option<Weight>,
}

impl Linear {
    /// Takes `{prefix}.weight` `[out, in]` and, when `bias`, `{prefix}.bias` `[out]`.
    pub fn load(
        ws: &mut WeightSource,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = ws.take(&format!("{prefix}.weight"), &[out_features, in_features])?;
        let bias = if bias {
            Some(ws.take(&format!("{prefix}.bias"), &[out_features])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// x: `[n, in]` → `[n, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::linear(x, &self.weight, self.bias.as_ref())?)
    }

    pub fn out_features(&self) -> usize {
        self.weight.shape().first().copied().unwrap_or(0)
    }
}
