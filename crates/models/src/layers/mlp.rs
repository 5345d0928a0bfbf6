//! SwiGLU [`Mlp`]: `down(silu(gate(x)) ⊙ up(x))` (MODEL-SPECS §1.4).

use arle_tensor::{ops, Tensor};

use super::Linear;
use crate::weights::WeightSource;
use crate::Result;

#[derive(Clone, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    /// Takes `{prefix}.{gate,up,down}_proj.*`; biases only when `bias` (llama `mlp_bias`).
    pub fn load(
        ws: &mut WeightSource,
        prefix: &str,
        hidden_size: usize,
        intermediate_size: usize,
        bias: bool,
    ) -> Result<Self> {
        Ok(Self {
            gate_proj: Linear::load(
                ws,
                &format!("{prefix}.gate_proj"),
                hidden_size,
                intermediate_size,
                bias,
            )?,
            up_proj: Linear::load(
                ws,
                &format!("{prefix}.up_proj"),
                hidden_size,
                intermediate_size,
                bias,
            )?,
            down_proj: Linear::load(
                ws,
                &format!("{prefix}.down_proj"),
                intermediate_size,
                hidden_size,
                bias,
            )?,
        })
    }

    /// x: `[n, hidden]` → `[n, hidden]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // [n, intermediate] each
        let [gate, up] = Linear::forward_group([&self.gate_proj, &self.up_proj], x)?;
        let act = ops::silu_mul(&gate, &up)?;
        self.down_proj.forward(&act)
    }
}
