//! Paged causal GQA attention over the KV pages of [`crate::KvLayer`], for a batch of
//! sequences at different progress (prefill chunks and decode steps mixed).
//!
//! Per sequence `s`, this step's queries are rows `query_start..query_start+query_len` of `q`;
//! the cache already holds all `context_len` tokens of `s` (this step's keys included, written by
//! [`kv_append`]). Query `i` sits at position `context_len - query_len + i` and sees keys
//! `0..=that position`. Query head `h` reads KV head `h / (num_heads / num_kv_heads)`.
//!
//! CPU algorithm: one rayon task per (query token, KV head) computes all `group` query heads
//! that share the KV head, walking the visible keys page by page (16 keys) with an online
//! softmax (running max and sum, accumulator rescaled once per page); SIMD dot/axpy over
//! `head_dim`. Rows of `q` not covered by any span come out as zeros.

use super::simd;
use crate::{error::shape_err, KvLayer, Result, Tensor, TensorError, KV_BLOCK_TOKENS};
use rayon::prelude::*;

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

/// A slot-mapping entry that writes nothing: the padding rows of a batch padded to a fixed size
/// (CUDA step graphs) attend over one page but leave the cache untouched.
pub const PAD_SLOT: u32 = u32::MAX;

/// Writes k, v (`[n, num_kv_heads, head_dim]`) into their slots ([`PAD_SLOT`] rows are skipped).
pub fn kv_append(cache: &mut KvLayer, k: &Tensor, v: &Tensor, slot_mapping: &[u32]) -> Result<()> {
    let stride = cache.slot_stride();
    let n = slot_mapping.len();
    if k.shape() != [n, cache.num_kv_heads, cache.head_dim] || v.shape() != k.shape() {
        let detail = format!(
            "k {:?}, v {:?}, {n} slots, stride {stride}",
            k.shape(),
            v.shape()
        );
        return shape_err("kv_append", detail);
    }
    let capacity = cache.num_blocks * KV_BLOCK_TOKENS;
    for (t, &slot) in slot_mapping.iter().enumerate() {
        if slot == PAD_SLOT {
            continue;
        }
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

/// Geometry shared by every task of one call.
struct Geometry<'a> {
    cache: &'a KvLayer,
    q: &'a [f32], // [n, num_heads, head_dim]
    num_heads: usize,
    head_dim: usize,
    group: usize,
    scale: f32,
}

/// Per-task scratch: scores of one page for each head of the group, running max and sum.
struct Scratch {
    scores: Vec<f32>, // [group, KV_BLOCK_TOKENS]
    max: Vec<f32>,    // [group]
    sum: Vec<f32>,    // [group]
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
    if head_dim != cache.head_dim
        || cache.num_kv_heads == 0
        || !num_heads.is_multiple_of(cache.num_kv_heads)
    {
        let detail = format!(
            "q {:?} vs cache heads {} dim {}",
            q.shape(),
            cache.num_kv_heads,
            cache.head_dim
        );
        return shape_err("paged_attention", detail);
    }
    // token -> (span index, index of the query inside the span)
    let mut token_span: Vec<Option<(u32, u32)>> = vec![None; n];
    for (si, s) in meta.seqs.iter().enumerate() {
        validate_span(s, n, cache.num_blocks)?;
        for i in 0..s.query_len {
            token_span[s.query_start + i] = Some((si as u32, i as u32));
        }
    }
    let group = num_heads / cache.num_kv_heads;
    let mut out = vec![0.0f32; n * num_heads * head_dim];
    if out.is_empty() {
        return Tensor::from_vec(vec![n, num_heads * head_dim], out);
    }
    let geo = Geometry {
        cache,
        q: q.data(),
        num_heads,
        head_dim,
        group,
        scale,
    };
    out.par_chunks_mut(group * head_dim)
        .enumerate()
        .for_each_init(
            || Scratch {
                scores: vec![0.0; group * KV_BLOCK_TOKENS],
                max: vec![0.0; group],
                sum: vec![0.0; group],
            },
            |scratch, (task, o)| {
                let (t, kv_head) = (task / cache.num_kv_heads, task % cache.num_kv_heads);
                if let Some((si, i)) = token_span[t] {
                    let s = &meta.seqs[si as usize];
                    let visible = s.context_len - s.query_len + i as usize + 1;
                    attend_group(&geo, scratch, t, kv_head, &s.block_table, visible, o);
                }
            },
        );
    Tensor::from_vec(vec![n, num_heads * head_dim], out)
}

/// Span bounds and every page the span reads.
fn validate_span(s: &SeqSpan, n: usize, num_blocks: usize) -> Result<()> {
    let pages = s.context_len.div_ceil(KV_BLOCK_TOKENS);
    let bad_page = s
        .block_table
        .iter()
        .take(pages)
        .any(|&b| b as usize >= num_blocks);
    if s.query_start + s.query_len > n
        || s.context_len < s.query_len
        || s.context_len > s.block_table.len() * KV_BLOCK_TOKENS
        || bad_page
    {
        return Err(TensorError::Invalid {
            op: "paged_attention",
            detail: format!("bad span {s:?} for {n} tokens and {num_blocks} blocks"),
        });
    }
    Ok(())
}

/// Attention of query token `t`, heads `kv_head*group..(kv_head+1)*group`, over keys
/// `0..visible`. `o`: `[group, head_dim]`, zero on entry, the normalised output on exit.
fn attend_group(
    geo: &Geometry,
    scratch: &mut Scratch,
    t: usize,
    kv_head: usize,
    block_table: &[u32],
    visible: usize,
    o: &mut [f32],
) {
    let (hd, group) = (geo.head_dim, geo.group);
    let stride = geo.cache.slot_stride();
    let q_base = (t * geo.num_heads + kv_head * group) * hd;
    let qs = &geo.q[q_base..q_base + group * hd]; // [group, head_dim]
    scratch.max.iter_mut().for_each(|m| *m = f32::NEG_INFINITY);
    scratch.sum.iter_mut().for_each(|s| *s = 0.0);
    for (page, &block) in block_table
        .iter()
        .enumerate()
        .take(visible.div_ceil(KV_BLOCK_TOKENS))
    {
        let first = page * KV_BLOCK_TOKENS;
        let count = (visible - first).min(KV_BLOCK_TOKENS);
        let slot0 = block as usize * KV_BLOCK_TOKENS;
        let key_at = |j: usize| (slot0 + j) * stride + kv_head * hd;
        for j in 0..count {
            let kv = &geo.cache.k[key_at(j)..key_at(j) + hd];
            for (g, qv) in qs.chunks_exact(hd).enumerate() {
                scratch.scores[g * KV_BLOCK_TOKENS + j] = simd::dot(qv, kv) * geo.scale;
            }
        }
        for (g, acc) in o.chunks_exact_mut(hd).enumerate() {
            let scores = &mut scratch.scores[g * KV_BLOCK_TOKENS..g * KV_BLOCK_TOKENS + count];
            let page_max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let new_max = scratch.max[g].max(page_max);
            if new_max > scratch.max[g] {
                // exp(-inf) = 0 on the first page, where acc and sum are still zero.
                let correction = (scratch.max[g] - new_max).exp();
                simd::scale(acc, correction);
                scratch.sum[g] *= correction;
                scratch.max[g] = new_max;
            }
            for (j, s) in scores.iter_mut().enumerate() {
                let p = (*s - new_max).exp();
                scratch.sum[g] += p;
                let vv = &geo.cache.v[key_at(j)..key_at(j) + hd];
                simd::axpy(acc, p, vv);
            }
        }
    }
    for (g, acc) in o.chunks_exact_mut(hd).enumerate() {
        let sum = scratch.sum[g];
        if sum > 0.0 {
            simd::scale(acc, 1.0 / sum);
        }
    }
}
