//! Naive reference implementations of the op set: the test oracle for the fast CPU ops.
//!
//! Job: define the exact math of every op in the plainest loops (one accumulation order,
//! exact softmax with a per-row max). Invariant: same signatures, shape checks and error
//! behaviour as the public ops in [`crate::ops`]; the fast ops must match these to f32
//! rounding. Not for production use (no threads, no SIMD, per-call allocations).

use super::{AttentionMeta, RmsNormKind, RopeTable};
use crate::KV_BLOCK_TOKENS;
use crate::{error::shape_err, quant, KvLayer, Result, Tensor, TensorError, Weight};

/// `y = x · wᵀ (+ bias)`. x: `[n, in]`, w: `[out, in]`, bias: `[out]` → y: `[n, out]`.
/// Each weight row is dequantised to f32, then a sequential f32 dot (the exact math, independent
/// of how [`quant::dot`] organises its arithmetic).
pub fn linear(x: &Tensor, w: &Weight, bias: Option<&Weight>) -> Result<Tensor> {
    let (n, k) = match x.shape() {
        [n, k] => (*n, *k),
        s => return shape_err("linear", format!("x must be 2-D, got {s:?}")),
    };
    let (m, wk) = match w.shape() {
        [m, wk] => (*m, *wk),
        s => return shape_err("linear", format!("w must be 2-D, got {s:?}")),
    };
    if k != wk {
        return shape_err("linear", format!("x {:?} vs w {:?}", x.shape(), w.shape()));
    }
    let bias = bias.map(|b| b.to_f32_vec()).transpose()?;
    if let Some(b) = &bias {
        if b.len() != m {
            return shape_err(
                "linear",
                format!("bias has {} values, expected {m}", b.len()),
            );
        }
    }
    let mut out = vec![0.0f32; n * m];
    let mut row = vec![0.0f32; k];
    for j in 0..m {
        quant::dequantize(w.dtype(), w.row(j), &mut row)?;
        for i in 0..n {
            let dot = row.iter().zip(x.row(i)).map(|(a, b)| a * b).sum::<f32>();
            out[i * m + j] = dot + bias.as_ref().map_or(0.0, |b| b[j]);
        }
    }
    Tensor::from_vec(vec![n, m], out)
}

/// Gathers rows of `table` (`[vocab, hidden]`) for `ids` → `[ids.len(), hidden]`.
pub fn embedding(table: &Weight, ids: &[u32]) -> Result<Tensor> {
    let [vocab, hidden] = *table.shape() else {
        return shape_err(
            "embedding",
            format!("table must be 2-D, got {:?}", table.shape()),
        );
    };
    let mut out = vec![0.0f32; ids.len() * hidden];
    for (i, &id) in ids.iter().enumerate() {
        let id = id as usize;
        if id >= vocab {
            return Err(TensorError::Invalid {
                op: "embedding",
                detail: format!("token id {id} >= vocab {vocab}"),
            });
        }
        let dst = &mut out[i * hidden..(i + 1) * hidden];
        quant::dequantize(table.dtype(), table.row(id), dst)?;
    }
    Tensor::from_vec(vec![ids.len(), hidden], out)
}

/// x: `[.., n]`, w: `[n]` → same shape. `y = x · rsqrt(mean(x²) + eps) · w'`.
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

/// `silu(gate) * up`, elementwise.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.shape() != up.shape() {
        return shape_err(
            "silu_mul",
            format!("{:?} vs {:?}", gate.shape(), up.shape()),
        );
    }
    let data = gate.data().iter().zip(up.data());
    let data = data.map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect();
    Tensor::from_vec(gate.shape().to_vec(), data)
}

/// `x * sigmoid(gate)`, elementwise.
pub fn sigmoid_mul(x: &Tensor, gate: &Tensor) -> Result<Tensor> {
    if gate.shape() != x.shape() {
        return shape_err(
            "sigmoid_mul",
            format!("{:?} vs {:?}", x.shape(), gate.shape()),
        );
    }
    let data = x.data().iter().zip(gate.data());
    let data = data.map(|(&v, &g)| v / (1.0 + (-g).exp())).collect();
    Tensor::from_vec(x.shape().to_vec(), data)
}

/// `x += y`, elementwise.
pub fn add_inplace(x: &mut Tensor, y: &Tensor) -> Result<()> {
    if x.shape() != y.shape() {
        return shape_err("add_inplace", format!("{:?} vs {:?}", x.shape(), y.shape()));
    }
    for (a, b) in x.data_mut().iter_mut().zip(y.data()) {
        *a += b;
    }
    Ok(())
}

/// x: `[n, heads, head_dim]`, positions: `[n]`; rotate-half RoPE in place.
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
    let data = x.data_mut();
    for (t, &pos) in positions.iter().enumerate() {
        for i in 0..half {
            let angle = pos as f32 * table.inv_freq[i];
            let cos = angle.cos() * table.attention_scaling;
            let sin = angle.sin() * table.attention_scaling;
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

/// `[rows, n]` → `[rows, n]` of `x - logsumexp(x)`.
pub fn log_softmax_rows(x: &Tensor) -> Tensor {
    let n = x.shape().last().copied().unwrap_or(1).max(1);
    let mut out = x.clone();
    for row in out.data_mut().chunks_mut(n) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        row.iter_mut().for_each(|v| *v -= lse);
    }
    out
}

/// q: `[n, num_heads, head_dim]` → `[n, num_heads * head_dim]`; softmax(q·kᵀ·scale)·v with an
/// exact two-pass softmax per (query, head).
pub fn paged_attention(
    q: &Tensor,
    cache: &KvLayer,
    meta: &AttentionMeta,
    scale: f32,
) -> Result<Tensor> {
    let [n, num_heads, head_dim] = *q.shape() else {
        return shape_err(
            "paged_attention",
            format!("q must be 3-D, got {:?}", q.shape()),
        );
    };
    if head_dim != cache.head_dim || !num_heads.is_multiple_of(cache.num_kv_heads) {
        let detail = format!(
            "q {:?} vs cache heads {} dim {}",
            q.shape(),
            cache.num_kv_heads,
            cache.head_dim
        );
        return shape_err("paged_attention", detail);
    }
    let group = num_heads / cache.num_kv_heads;
    let stride = cache.slot_stride();
    let mut out = vec![0.0f32; n * num_heads * head_dim];
    for s in &meta.seqs {
        if s.query_start + s.query_len > n
            || s.context_len < s.query_len
            || s.context_len > s.block_table.len() * KV_BLOCK_TOKENS
        {
            return Err(TensorError::Invalid {
                op: "paged_attention",
                detail: format!("bad span {s:?} for {n} tokens"),
            });
        }
        let slot_of = |j: usize| {
            s.block_table[j / KV_BLOCK_TOKENS] as usize * KV_BLOCK_TOKENS + j % KV_BLOCK_TOKENS
        };
        for i in 0..s.query_len {
            let t = s.query_start + i;
            let visible = s.context_len - s.query_len + i + 1;
            for h in 0..num_heads {
                let kvh = h / group;
                let qv = &q.data()[(t * num_heads + h) * head_dim..][..head_dim];
                let mut scores = Vec::with_capacity(visible);
                for j in 0..visible {
                    let kv = &cache.k[slot_of(j) * stride + kvh * head_dim..][..head_dim];
                    scores.push(qv.iter().zip(kv).map(|(a, b)| a * b).sum::<f32>() * scale);
                }
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut denom = 0.0;
                scores.iter_mut().for_each(|x| {
                    *x = (*x - max).exp();
                    denom += *x;
                });
                let o = &mut out[(t * num_heads + h) * head_dim..][..head_dim];
                for (j, p) in scores.iter().enumerate() {
                    let vv = &cache.v[slot_of(j) * stride + kvh * head_dim..][..head_dim];
                    o.iter_mut().zip(vv).for_each(|(a, b)| *a += p / denom * b);
                }
            }
        }
    }
    Tensor::from_vec(vec![n, num_heads * head_dim], out)
}
