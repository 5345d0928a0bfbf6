//! Hybrid prefix reuse on the real tiny `qwen3_5` golden checkpoint (random weights, 3 Gated
//! DeltaNet layers + 1 gated attention layer, vocab 512) through the engine: a two-turn chat
//! whose turn 2 extends turn 1's prompt + answer (< 528 tokens) resumes from a state snapshot,
//! reports cached tokens, and decodes exactly the greedy tokens of a cold engine.
#![allow(clippy::unwrap_used)]

mod engine_common;
mod engine_hybrid_fake;

use std::path::PathBuf;

use arle_engine::{
    start_engine_with_model, EngineConfig, EngineHandle, EngineModel, SamplingParams,
};
use arle_models::load_model;
use engine_common::generate;

fn checkpoint() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/golden/qwen3_5")
}

fn start(enable_prefix_caching: bool) -> EngineHandle {
    let loaded = load_model(&checkpoint()).unwrap();
    assert!(loaded.model.info().cache.has_linear_layers());
    start_engine_with_model(
        EngineModel {
            model: loaded.model,
            tokenizer: engine_hybrid_fake::fixture_tokenizer(),
            eos_token_ids: Vec::new(),
        },
        EngineConfig {
            enable_prefix_caching,
            kv_cache_tokens: Some(2048),
            max_num_batched_tokens: 96,
            ..Default::default()
        },
    )
    .unwrap()
}

fn greedy(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens: Some(max_tokens),
        ignore_eos: true,
        ..Default::default()
    }
}

/// Deterministic ids in `1..512`.
fn ids(seed: u64, len: usize) -> Vec<u32> {
    engine_hybrid_fake::prompt(seed, len)
        .iter()
        .enumerate()
        .map(|(i, &t)| 1 + (t * 5 + i as u32 * 3) % 511)
        .collect()
}

#[test]
fn two_turn_chat_on_qwen3_5_reuses_the_prefix_and_matches_a_cold_engine() {
    let warm = start(true);
    let cold = start(false);
    let turn1 = ids(1, 100);
    let out1 = generate(&warm, turn1.clone(), greedy(30));
    assert_eq!(
        out1.token_ids,
        generate(&cold, turn1.clone(), greedy(30)).token_ids
    );
    let mut turn2 = turn1;
    turn2.extend(&out1.token_ids);
    turn2.extend(ids(2, 70));
    assert!(turn2.len() < 528);
    let hot = generate(&warm, turn2.clone(), greedy(30));
    // Turn 1 computed 129 tokens: snapshots at 64, 96 (prompt's last page), 128.
    assert_eq!(hot.started_cached_tokens, 128);
    assert_eq!(hot.usage.cached_tokens, 128);
    let cold2 = generate(&cold, turn2, greedy(30));
    assert_eq!(cold2.started_cached_tokens, 0);
    assert_eq!(hot.token_ids, cold2.token_ids);
    let distinct: std::collections::HashSet<u32> = hot.token_ids.iter().copied().collect();
    assert!(distinct.len() >= 3, "degenerate output {:?}", hot.token_ids);
}
