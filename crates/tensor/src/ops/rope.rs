//! Rotary position embedding, rotate-half (NeoX) pairing: dim `j` pairs with `j + rot/2`,
//! only the first `rotary_dim` dims of each head rotate (MODEL-SPECS §1.2).

use crate::{error::shape_err, Result, Tensor};

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
    if positions.len() != n || rot > head_dim || rot % 2 != 0 || table.inv_freq.len() != rot / 2 {
        return shape_err(
            "apply_rope",
            format!(
                "x {:?}, {} positions, rotary_dim {rot}",
                x.shape(),
                positions.len()
            ),
        );
    }
    let half = rot / 2;
    let data = x.data_mut();
    for (t, &pos) in positions.iter().enumerate() {
        for i in 0..half {
            let angle = pos as f32 * table.inv_freq[i];
            let (cos, sin) = (
                angle.cos() * table.attention_scaling,
                angle.sin() * table.attention_scaling,
            );
            for h in 0..heads {
                let base = (t * heads + h) * head_dim;
                let (a, b) = (data[base + i], data[base + i + half]);
                data[base + i] = a * cos - b * sin;
                data[base + i + half] = b * cos + a * sin;
            }
        }
    }
    Ok(())
}
