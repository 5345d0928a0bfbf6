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

    /// Several projections of the same x (q|k|v, gate|up): one launch on a GPU for decode-sized
    /// x, the same values as calling [`Linear::forward`] on each.
    pub fn forward_group<const N: usize>(layers: [&Linear; N], x: &Tensor) -> Result<[Tensor; N]> {
        let pairs: Vec<_> = layers
            .iter()
            .map(|l| (&l.weight, l.bias.as_ref()))
            .collect();
        let outs = ops::linear_group(x, &pairs)?;
        outs.try_into().map_err(|v: Vec<Tensor>| {
            crate::ModelError::Unsupported(format!("{} outputs for {N} projections", v.len()))
        })
    }

    pub fn out_features(&self) -> usize {
        self.weight.shape().first().copied().unwrap_or(0)
    }
}
