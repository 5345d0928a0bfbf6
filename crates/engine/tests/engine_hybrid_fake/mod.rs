//! A tiny fake *hybrid* model for the engine's hybrid-cache plumbing tests.
//!
//! Layer 0 is "attention": per token it writes k = [token, position], v = [a, b] into the paged
//! KV cache. Layer 1 is "linear": a per-sequence state in the slot named by the batch, conv
//! window = [previous token], recurrent = [a, b] with, per token t at position p,
//! `a = a / 2 + t + 1`, `b = (7 b + t (p % 13 + 1)) mod 9973` (all exact in f32).
//! The logits row of position p peaks at `h = (Σ_{q<=p} (k_q[0] + v_q[1]) + b + prev + ⌊4a⌋) mod
//! VOCAB` (`prev` = the token before p, from the conv window), reading every earlier position through the block table. So a greedy token depends on
//! the whole state and on every KV page: a wrong reset/restore, a wrong shared page or a wrong
//! slot changes the output. The model never resets or restores a slot itself (the runner does),
//! and captures the slot at each asked position into `ModelCache::captured`.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]
// The row loop indexes several per-row arrays of the batch at once.
#![allow(clippy::needless_range_loop)]

use std::path::PathBuf;

use arle_engine::tokenizer::Tokenizer;
use arle_engine::{start_engine_with_model, EngineConfig, EngineHandle, EngineModel};
use arle_models::{
    CacheSpec, CapturedState, ForwardBatch, LayerCache, LayerCacheSpec, Model, ModelCache,
    ModelInfo, Tracer,
};
use arle_tensor::{Tensor, KV_BLOCK_TOKENS};

pub const VOCAB: usize = 97;

pub struct FakeHybrid {
    info: ModelInfo,
}

impl FakeHybrid {
    pub fn new() -> Self {
        Self {
            info: ModelInfo {
                architecture: "fake_hybrid".into(),
                vocab_size: VOCAB,
                hidden_size: 2,
                max_context_tokens: 2048,
                cache: CacheSpec {
                    layers: vec![
                        LayerCacheSpec::Attention {
                            num_kv_heads: 1,
                            head_dim: 2,
                        },
                        LayerCacheSpec::Linear {
                            conv_dim: 1,
                            conv_kernel: 2,
                            num_v_heads: 1,
                            k_head_dim: 1,
                            v_head_dim: 2,
                        },
                    ],
                },
            },
        }
    }
}

/// (previous token, a, b) of `slot`.
fn read_state(cache: &ModelCache, slot: usize) -> (f32, f32, f32) {
    let LayerCache::Linear(st) = &cache.layers[1] else {
        panic!("layer 1 is linear")
    };
    (
        st.conv[slot],
        st.recurrent[2 * slot],
        st.recurrent[2 * slot + 1],
    )
}

fn write_state(cache: &mut ModelCache, slot: usize, state: (f32, f32, f32)) {
    let LayerCache::Linear(st) = &mut cache.layers[1] else {
        panic!("layer 1 is linear")
    };
    st.conv[slot] = state.0;
    st.recurrent[2 * slot] = state.1;
    st.recurrent[2 * slot + 1] = state.2;
}

impl Model for FakeHybrid {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward(
        &self,
        batch: &ForwardBatch,
        cache: &mut ModelCache,
        _trace: Option<Tracer<'_>>,
    ) -> arle_models::Result<Tensor> {
        assert_eq!(
            batch.state_slots.len(),
            batch.attention.seqs.len(),
            "every seq has a slot"
        );
        let mut peak = vec![0usize; batch.num_tokens()];
        for (i, span) in batch.attention.seqs.iter().enumerate() {
            let slot = batch.state_slots[i] as usize;
            let capture = batch.snapshot_positions.get(i).cloned().unwrap_or_default();
            let (mut prev, mut a, mut b) = read_state(cache, slot);
            for r in span.query_start..span.query_start + span.query_len {
                let tok = batch.token_ids[r] as f32;
                let p = batch.positions[r] as usize;
                a = a / 2.0 + tok + 1.0;
                b = (7.0 * b + tok * ((p % 13) + 1) as f32) % 9973.0;
                let LayerCache::Attention(kv) = &mut cache.layers[0] else {
                    panic!("layer 0 is attention")
                };
                let s = batch.attention.slot_mapping[r] as usize * 2;
                kv.k[s..s + 2].copy_from_slice(&[tok, p as f32]);
                kv.v[s..s + 2].copy_from_slice(&[a, b]);
                let mut sum = 0u64;
                for q in 0..=p {
                    let page = span.block_table[q / KV_BLOCK_TOKENS] as usize;
                    let sq = (page * KV_BLOCK_TOKENS + q % KV_BLOCK_TOKENS) * 2;
                    sum += kv.k[sq] as u64 + kv.v[sq + 1] as u64;
                }
                let h = sum + b as u64 + prev as u64 + (4.0 * a).floor() as u64;
                peak[r] = (h % VOCAB as u64) as usize;
                prev = tok;
                write_state(cache, slot, (prev, a, b));
                if capture.contains(&(p + 1)) {
                    let snapshot = cache.snapshot_state(slot, p + 1)?;
                    cache.captured.push(CapturedState {
                        seq_index: i,
                        snapshot,
                    });
                }
            }
        }
        let mut data = Vec::with_capacity(batch.logits_rows.len() * VOCAB);
        for &r in &batch.logits_rows {
            data.extend((0..VOCAB).map(|j| -((j as f32) - peak[r] as f32).abs()));
        }
        Ok(Tensor::from_vec(
            vec![batch.logits_rows.len(), VOCAB],
            data,
        )?)
    }
}

/// The SmolLM2 tokenizer fixture (only used to detokenize ids < 97).
pub fn fixture_tokenizer() -> Tokenizer {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer/smollm2_hf");
    Tokenizer::from_hf_dir(&dir).unwrap()
}

/// An engine on a fresh [`FakeHybrid`].
pub fn start_fake(config: EngineConfig) -> EngineHandle {
    start_engine_with_model(
        EngineModel {
            model: Box::new(FakeHybrid::new()),
            tokenizer: fixture_tokenizer(),
            eos_token_ids: Vec::new(),
        },
        EngineConfig {
            kv_cache_tokens: config.kv_cache_tokens.or(Some(4096)),
            ..config
        },
    )
    .unwrap()
}

/// Deterministic pseudo-random prompt of `len` ids in `3..VOCAB`, seeded.
pub fn prompt(seed: u64, len: usize) -> Vec<u32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            3 + (x % (VOCAB as u64 - 3)) as u32
        })
        .collect()
}
