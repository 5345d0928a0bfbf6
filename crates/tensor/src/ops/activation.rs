//! Elementwise ops: SiLU-gated product (SwiGLU), sigmoid gate, residual add.
//! Parallel over fixed-size chunks once tensors are large; each value is computed exactly as
//! the reference formula (same f32 operation order), so results are bit-identical.

use crate::{error::shape_err, Result, Tensor};
use rayon::prelude::*;

/// Values per rayon task.
const CHUNK_VALUES: usize = 1 << 14;

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return shape_err(op, format!("{:?} vs {:?}", a.shape(), b.shape()));
    }
    Ok(())
}

/// `out[i] = f(a[i], b[i])`, in parallel chunks.
fn zip_map(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32 + Sync) -> Result<Tensor> {
    let mut out = vec![0.0f32; a.elements()];
    out.par_chunks_mut(CHUNK_VALUES)
        .zip(a.data().par_chunks(CHUNK_VALUES))
        .zip(b.data().par_chunks(CHUNK_VALUES))
        .for_each(|((o, a), b)| {
            o.iter_mut()
                .zip(a)
                .zip(b)
                .for_each(|((o, &a), &b)| *o = f(a, b));
        });
    Tensor::from_vec(a.shape().to_vec(), out)
}

/// `silu(gate) * up`, elementwise. Shapes must match.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    same_shape("silu_mul", gate, up)?;
    zip_map(gate, up, |g, u| g / (1.0 + (-g).exp()) * u)
}

/// `x * sigmoid(gate)`, elementwise (output gates). Shapes must match.
pub fn sigmoid_mul(x: &Tensor, gate: &Tensor) -> Result<Tensor> {
    same_shape("sigmoid_mul", x, gate)?;
    zip_map(x, gate, |v, g| v / (1.0 + (-g).exp()))
}

/// `x += y`, elementwise. Shapes must match.
pub fn add_inplace(x: &mut Tensor, y: &Tensor) -> Result<()> {
    same_shape("add_inplace", x, y)?;
    x.data_mut()
        .par_chunks_mut(CHUNK_VALUES)
        .zip(y.data().par_chunks(CHUNK_VALUES))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
    Ok(())
}
