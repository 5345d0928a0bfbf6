//! Rotary position embedding, rotate-half (NeoX) pairing: dim `j` pairs with `j + rot/2`,
//! only the first `rotary_dim` dims of each head rotate (MODEL-SPECS §1.2).
//!
//! Per token, `angle = f32(pos) · inv_freq[i]` and its f32 cos/sin (times `attention_scaling`)
//! are computed once and applied to every head; tokens run in parallel. Same f32 operations as
//! the reference, so results are bit-identical.

use crate::{error::shape_err, Result, Tensor};
use rayon::prelude::*;

/// Precomputed inverse frequencies (`[rotary_dim / 2]`, f32) and the cos/sin scale.
#[derive(Clone, Debug)]
pub struct RopeTable {
    pub inv_freq: Vec<f32>,
    pub rotary_dim: usize,
    /// Multiplies cos and sin (1.0 except for yarn).
    pub attention_scaling: f32,
}

/// x: `[n, heads, head_dim]`, positions: `[n]`; rotates in place.
pub fn apply_rope(x: &mut Tensor, positions: &[u32], table: &RopeTable) -> Result<()> {
    let [n, heads, head_dim] = *x.shape() else {
        return shape_err("apply_rope", format!("x must be 3-D, got {:?}", x.shape()));
    };
    let rot = table.rotary_dim;
    if positions.len() != n
        || rot > head_dim
        || !rot.is_multiple_of(2)
        || table.inv_freq.len() != rot / 2
    {
        let detail = format!(
            "x {:?}, {} positions, rotary_dim {rot}",
            x.shape(),
            positions.len()
        );
        return shape_err("apply_rope", detail);
    }
    let half = rot / 2;
    let token_values = heads * head_dim;
    if half == 0 || token_values == 0 {
        return Ok(());
    }
    let scaling = table.attention_scaling;
    x.data_mut()
        .par_chunks_mut(token_values)
        .zip(positions.par_iter())
        .with_min_len(4)
        .for_each_init(
            || vec![0.0f32; rot],
            |cos_sin, (token, &pos)| {
                let (cos, sin) = cos_sin.split_at_mut(half);
                for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&table.inv_freq) {
                    let angle = pos as f32 * f;
                    *c = angle.cos() * scaling;
                    *s = angle.sin() * scaling;
                }
                for head in token.chunks_mut(head_dim) {
                    let (a, b) = head[..rot].split_at_mut(half);
                    for (((a, b), &c), &s) in a.iter_mut().zip(b.iter_mut()).zip(&*cos).zip(&*sin) {
                        let (x0, x1) = (*a, *b);
                        *a = x0 * c - x1 * s;
                        *b = x1 * c + x0 * s;
                    }
                }
            },
        );
    Ok(())
}
