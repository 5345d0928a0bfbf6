//! Paged causal GQA attention over the KV pages of [`crate::KvLayer`], for a batch of
//! sequences at different progress (prefill chunks and decode steps mixed).
//!
//! Per sequence `s`, this step's queries are rows `query_start..query_start+query_len` of `q`;
//! the cache already holds all `context_len` tokens of `s` (this step's keys included, written by
//! [`kv_append`]). Query `i` sits at position `context_len - query_len + i` and sees keys
//! `0..=that position`. Query head `h` reads KV head `h / (num_heads / num_kv_heads)`.

use crate::{error::shape_err, KvLayer, Result, Tensor, TensorError, KV_BLOCK_TOKENS};

/// One sequence's slice of the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqSpan {
    pub query_start: usize,
    pub query_len: usize,
    /// Tokens in the cache for this sequence after this step's append.
    pub context_len: usize,
    /// Page ids holding positions `16*j .. 16*j+15` at index `j`.
    pub block_table: Vec<u32>,
}

/// Everything attention needs to find keys and values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttentionMeta {
    pub seqs: Vec<SeqSpan>,
    /// `[n_tokens]`: where each new token's k/v is written (`block * 16 + offset`).
    pub slot_mapping: Vec<u32>,
}

/// Writes k, v (`[n, num_kv_heads, head_dim]`) into their slots.
pub fn kv_append(cache: &mut KvLayer, k: &Tensor, v: &Tensor, slot_mapping: &[u32]) -> Result<()> {
    let stride = cache.slot_stride();
    let n = slot_mapping.len();
    if k.shape() != [n, cache.num_kv_heads, cache.head_dim] || v.shape() != k.shape() {
        return shape_err(
            "kv_append",
            format!(
                "k {:?}, v {:?}, {n} slots, stride {stride}",
                k.shape(),
                v.shape()
            ),
        );
    }
    let capacity = cache.num_blocks * KV_BLOCK_TOKENS;
    for (t, &slot) in slot_mapping.iter().enumerate() {
        let slot = slot as usize;
        if slot >= capacity {
            return Err(TensorError::Invalid {
                op: "kv_append",
                detail: format!("slot {slot} >= capacity {capacity}"),
            });
        }
        cache.k[slot * stride..(slot + 1) * stride]
            .copy_from_slice(&k.data()[t * stride..(t + 1) * stride]);
        cache.v[slot * stride..(slot + 1) * stride]
            .copy_from_slice(&v.data()[t * stride..(t + 1) * stride]);
    }
    Ok(())
}

/// q: `[n, num_heads, head_dim]` → `[n, num_heads * head_dim]`; softmax(q·kᵀ·scale)·v.
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
    if head_dim != cache.head_dim || num_heads % cache.num_kv_heads != 0 {
        return shape_err(
            "paged_attention",
            format!(
                "q {:?} vs cache heads {} dim {}",
                q.shape(),
                cache.num_kv_heads,
                cache.head_dim
            ),
        );
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
        for i in 0..s.query_len {
            let t = s.query_start + i;
            let visible = s.context_len - s.query_len + i + 1;
            for h in 0..num_heads {
                let kvh = h / group;
                let qv = &q.data()[(t * num_heads + h) * head_dim..][..head_dim];
                let mut scores = Vec::with_capacity(visible);
                for j in 0..visible {
                    let slot = s.block_table[j / KV_BLOCK_TOKENS] as usize * KV_BLOCK_TOKENS
                        + j % KV_BLOCK_TOKENS;
                    let kv = &cache.k[slot * stride + kvh * head_dim..][..head_dim];
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
                    let slot = s.block_table[j / KV_BLOCK_TOKENS] as usize * KV_BLOCK_TOKENS
                        + j % KV_BLOCK_TOKENS;
                    let vv = &cache.v[slot * stride + kvh * head_dim..][..head_dim];
                    o.iter_mut().zip(vv).for_each(|(a, b)| *a += p / denom * b);
                }
            }
        }
    }
    Tensor::from_vec(vec![n, num_heads * head_dim], out)
}
