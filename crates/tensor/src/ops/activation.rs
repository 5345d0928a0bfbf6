//! Elementwise ops: SiLU-gated product (SwiGLU) and residual add.

use crate::{error::shape_err, Result, Tensor};

/// `silu(gate) * up`, elementwise. Shapes must match.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.shape() != up.shape() {
        return shape_err(
            "silu_mul",
            format!("{:?} vs {:?}", gate.shape(), up.shape()),
        );
    }
    let data = gate
        .data()
        .iter()
        .zip(up.data())
        .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
        .collect();
    Tensor::from_vec(gate.shape().to_vec(), data)
}

/// `x += y`, elementwise. Shapes must match.
pub fn add_inplace(x: &mut Tensor, y: &Tensor) -> Result<()> {
    if x.shape() != y.shape() {
        return shape_err("add_inplace", format!("{:?} vs {:?}", x.shape(), y.shape()));
    }
    for (a, b) in x.data_mut().iter_mut().zip(y.data()) {
        *a += b;
    }
    Ok(())
}
