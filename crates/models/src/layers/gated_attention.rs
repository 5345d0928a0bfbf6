//! Qwen3.5 gated full attention (MODEL-SPECS §4.3) on top of the shared paged [`Attention`]:
//! `q_proj` rows are `[q_0 | g_0 | q_1 | g_1 | …]` per head (interleaved, **not** all-q then
//! all-gate), q and k get a zero-centred `(1+w)` RMSNorm over `head_dim`, RoPE rotates only the
//! first `partial_rotary_factor · head_dim` dims, and the attention output is multiplied by
//! `sigmoid(gate)` before `o_proj`. The attention math itself is the shared code. On a GPU the
//! q/gate split is two device row gathers and the gate a device `sigmoid_mul`.

use arle_tensor::ops::RmsNormKind;
use arle_tensor::Tensor;

use super::{Attention, AttentionConfig};
use crate::config::ModelConfig;
use crate::weights::WeightSource;
use crate::Result;

/// The attention shape of a Qwen3.5 full-attention layer.
pub fn gated_attention_config(cfg: &ModelConfig) -> AttentionConfig {
    AttentionConfig {
        output_gate: true,
        ..AttentionConfig::from_model(cfg, Some(RmsNormKind::ZeroCentered))
    }
}

/// Takes `{prefix}.{q,k,v,o}_proj.weight` and `{prefix}.{q,k}_norm.weight` of a gated layer.
pub fn load_gated_attention(
    ws: &mut WeightSource,
    prefix: &str,
    cfg: &ModelConfig,
) -> Result<Attention> {
    Attention::load(ws, prefix, &gated_attention_config(cfg))
}

/// qg: `[n, nH · 2D]` interleaved per head → (q `[n, nH · D]`, gate `[n, nH · D]`).
pub(crate) fn split_query_gate(
    qg: &Tensor,
    num_heads: usize,
    head_dim: usize,
) -> Result<(Tensor, Tensor)> {
    let n = qg.shape().first().copied().unwrap_or(0);
    let width = num_heads * head_dim;
    if qg.shape() != [n, 2 * width] {
        return Err(arle_tensor::TensorError::Shape {
            op: "split_query_gate",
            detail: format!("{:?} for {num_heads} heads of {head_dim}", qg.shape()),
        }
        .into());
    }
    if qg.device() != arle_tensor::Device::Cpu {
        // On a GPU: as `[n·nH·2, D]` rows, q is every even row and the gate every odd row (two
        // device row gathers, no host copy).
        let rows = qg.clone().reshape(vec![n * num_heads * 2, head_dim])?;
        let even: Vec<usize> = (0..n * num_heads).map(|r| 2 * r).collect();
        let odd: Vec<usize> = even.iter().map(|r| r + 1).collect();
        return Ok((
            rows.gather_rows(&even)?.reshape(vec![n, width])?,
            rows.gather_rows(&odd)?.reshape(vec![n, width])?,
        ));
    }
    let mut q = Vec::with_capacity(n * width);
    let mut gate = Vec::with_capacity(n * width);
    for head in qg.data().chunks_exact(2 * head_dim) {
        q.extend_from_slice(&head[..head_dim]);
        gate.extend_from_slice(&head[head_dim..]);
    }
    Ok((
        Tensor::from_vec(vec![n, width], q)?,
        Tensor::from_vec(vec![n, width], gate)?,
    ))
}
