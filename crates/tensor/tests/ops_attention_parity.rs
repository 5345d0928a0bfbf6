//! Parity of the fast paged attention against `ops::reference::paged_attention`: GQA 1:1,
//! 2:1 and 3:1, pages shared between sequences, non-contiguous block tables, odd context
//! lengths, and prefill / prefill-continuation / decode spans mixed in one batch.

mod common;

use arle_tensor::ops::{self, reference, AttentionMeta, SeqSpan};
use arle_tensor::{KvLayer, Tensor, KV_BLOCK_TOKENS};
use common::*;

const REL_TOL: f32 = 1e-5;

fn random_cache(seed: u64, num_blocks: usize, num_kv_heads: usize, head_dim: usize) -> KvLayer {
    let mut rng = rng(seed);
    let mut cache = KvLayer::new(num_blocks, num_kv_heads, head_dim);
    cache.k = random_vec(&mut rng, cache.k.len())
        .iter()
        .map(|v| v * 3.0)
        .collect();
    cache.v = random_vec(&mut rng, cache.v.len());
    cache
}

fn span(query_start: usize, query_len: usize, context_len: usize, table: &[u32]) -> SeqSpan {
    SeqSpan {
        query_start,
        query_len,
        context_len,
        block_table: table.to_vec(),
    }
}

/// A batch of: fresh prefill (45 tokens), prefill continuation (7 new of 33), two decodes
/// sharing the first pages of the prefill sequence, and a one-token sequence.
fn mixed_batch() -> (usize, AttentionMeta) {
    let seqs = vec![
        span(0, 45, 45, &[7, 2, 11]),
        span(45, 7, 33, &[7, 2, 5]),
        span(52, 1, 17, &[7, 9]),
        span(53, 1, 40, &[7, 2, 0, 13]),
        span(54, 1, 1, &[3]),
    ];
    (
        55,
        AttentionMeta {
            seqs,
            slot_mapping: Vec::new(),
        },
    )
}

fn check(num_heads: usize, num_kv_heads: usize, head_dim: usize, seed: u64) {
    let (n, meta) = mixed_batch();
    let cache = random_cache(seed, 14, num_kv_heads, head_dim);
    let mut rng = rng(seed + 100);
    let q = random_tensor(&mut rng, &[n, num_heads, head_dim]);
    let scale = 1.0 / (head_dim as f32).sqrt();
    let fast = ops::paged_attention(&q, &cache, &meta, scale).expect("fast");
    let slow = reference::paged_attention(&q, &cache, &meta, scale).expect("reference");
    let what = format!("attention heads {num_heads}/{num_kv_heads} dim {head_dim}");
    assert_close(&what, &fast, &slow, REL_TOL);
}

#[test]
fn attention_matches_reference_mha() {
    check(4, 4, 64, 1);
}

#[test]
fn attention_matches_reference_gqa_2_to_1() {
    check(4, 2, 64, 2);
}

#[test]
fn attention_matches_reference_gqa_3_to_1_odd_head_dim() {
    check(9, 3, 20, 3);
}

#[test]
fn attention_long_context_many_pages() {
    // One decode query over 301 keys on a scattered table, plus a 40-token continuation.
    let table: Vec<u32> = (0..19).map(|i| (i * 7 + 3) % 40).collect();
    let meta = AttentionMeta {
        seqs: vec![span(0, 1, 301, &table), span(1, 40, 290, &table)],
        slot_mapping: Vec::new(),
    };
    let cache = random_cache(4, 40, 2, 32);
    let q = random_tensor(&mut rng(5), &[41, 6, 32]);
    let fast = ops::paged_attention(&q, &cache, &meta, 0.3).expect("fast");
    let slow = reference::paged_attention(&q, &cache, &meta, 0.3).expect("reference");
    assert_close("attention long context", &fast, &slow, REL_TOL);
}

#[test]
fn attention_leaves_uncovered_rows_zero_and_rejects_bad_spans() {
    let cache = random_cache(6, 4, 1, 8);
    let q = random_tensor(&mut rng(7), &[3, 2, 8]);
    let meta = AttentionMeta {
        seqs: vec![span(1, 1, 5, &[2])],
        slot_mapping: Vec::new(),
    };
    let out = ops::paged_attention(&q, &cache, &meta, 0.5).expect("attention");
    assert!(out.row(0).iter().chain(out.row(2)).all(|&v| v == 0.0));
    assert!(out.row(1).iter().any(|&v| v != 0.0));
    for bad in [
        span(2, 2, 5, &[2]),
        span(0, 2, 1, &[2]),
        span(0, 1, 17, &[2]),
        span(0, 1, 3, &[4]),
    ] {
        let meta = AttentionMeta {
            seqs: vec![bad],
            slot_mapping: Vec::new(),
        };
        assert!(ops::paged_attention(&q, &cache, &meta, 0.5).is_err());
    }
    let q_bad_dim = random_tensor(&mut rng(8), &[3, 2, 7]);
    assert!(ops::paged_attention(&q_bad_dim, &cache, &AttentionMeta::default(), 0.5).is_err());
}

#[test]
fn attention_after_kv_append_sees_the_new_token() {
    // Decode step: append one token's k/v, and the only visible key is that token, so the
    // output must equal its v exactly (softmax over a single key is 1).
    let (kv_heads, head_dim) = (2, 16);
    let mut cache = KvLayer::new(3, kv_heads, head_dim);
    let mut rng = rng(9);
    let k = random_tensor(&mut rng, &[1, kv_heads, head_dim]);
    let v = random_tensor(&mut rng, &[1, kv_heads, head_dim]);
    let slot = 2 * KV_BLOCK_TOKENS as u32;
    ops::kv_append(&mut cache, &k, &v, &[slot]).expect("append");
    let meta = AttentionMeta {
        seqs: vec![span(0, 1, 1, &[2])],
        slot_mapping: vec![slot],
    };
    let q = random_tensor(&mut rng, &[1, 4, head_dim]);
    let out = ops::paged_attention(&q, &cache, &meta, 1.0).expect("attention");
    let expected: Vec<f32> = [0, 0, 1, 1]
        .iter()
        .flat_map(|&kvh| v.data()[kvh * head_dim..(kvh + 1) * head_dim].to_vec())
        .collect();
    assert_eq!(
        out,
        Tensor::from_vec(vec![1, 4 * head_dim], expected).expect("expected")
    );
}
