//! `EngineConfig` as the engine applies it on the real SmolLM2 GGUF: the KV cache size asked for
//! is the usable capacity, and a context as long as that cache is accepted and served.
#![allow(clippy::unwrap_used)]

mod engine_common;

use arle_engine::{EngineConfig, EngineError, FinishReason, GenerateRequest, SamplingParams};
use engine_common::{generate, start, user_ids};

#[test]
fn kv_cache_tokens_is_the_usable_capacity() {
    let handle = start(EngineConfig {
        kv_cache_tokens: Some(256),
        max_model_len: Some(256),
        ..Default::default()
    });
    let stats = handle.stats();
    assert_eq!(
        stats.kv_blocks_total * stats.kv_block_tokens,
        256,
        "{stats:?}"
    );
    assert_eq!(stats.kv_blocks_free, stats.kv_blocks_total);
    assert_eq!(handle.model().max_context_tokens, 256);

    // A request filling the whole context runs to its length limit.
    let prompt = user_ids(&handle, "Tell me a long story about a dragon and a knight.");
    let max_tokens = 256 - prompt.len();
    let params = SamplingParams {
        temperature: 0.0,
        ignore_eos: true,
        max_tokens: Some(max_tokens),
        ..Default::default()
    };
    let out = generate(&handle, prompt.clone(), params.clone());
    assert_eq!(out.reason, Some(FinishReason::Length));
    assert_eq!(out.token_ids.len(), max_tokens);

    // One token more can never fit and is refused up front.
    let too_long = handle.submit(GenerateRequest {
        prompt_token_ids: prompt,
        params: SamplingParams {
            max_tokens: Some(max_tokens + 1),
            ..params
        },
    });
    assert!(matches!(too_long, Err(EngineError::InvalidRequest(_))));
}
