//! Engine behaviour on the real SmolLM2 GGUF, through `EngineHandle` only:
//! - batch invariance: concurrent requests (chunked prefill + mixed batches) decode exactly the
//!   greedy tokens each decodes alone;
//! - seeded sampling is reproducible, and different seeds differ;
//! - prefix reuse: a request sharing a long prefix reports `cached_tokens` and decodes what a
//!   cold engine decodes;
//! - abort (dropping the stream) frees the request and all its KV pages;
//! - stop strings, `max_tokens`, prompt logprobs consistency, and preemption under a tiny cache.
#![allow(clippy::unwrap_used)]

mod engine_common;

use std::time::Duration;

use arle_engine::tokenizer::ChatMessage;
use arle_engine::{EngineConfig, FinishReason, GenerateEvent, GenerateRequest, SamplingParams};
use engine_common::{
    chat_ids, generate, generate_concurrently, greedy, start, start_default, test_config, user_ids,
    wait_for_stats, EIGHT_USER_PROMPTS,
};

const POLL_TIMEOUT: Duration = Duration::from_secs(20);

fn small_step_config() -> EngineConfig {
    EngineConfig {
        max_num_batched_tokens: 64,
        ..test_config()
    }
}

#[test]
fn concurrent_greedy_matches_each_request_alone() {
    let handle = start(small_step_config());
    let prompts: Vec<Vec<u32>> = EIGHT_USER_PROMPTS
        .iter()
        .map(|p| user_ids(&handle, p))
        .collect();
    // One prompt alone exceeds the 64-token step budget, and together they need several steps:
    // prefill is chunked, and chunks share steps with other requests' decodes.
    assert!(prompts.iter().any(|p| p.len() > 64));
    assert!(prompts.iter().map(Vec::len).sum::<usize>() > 4 * 64);
    let max_tokens = 24;
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| generate(&handle, p.clone(), greedy(max_tokens)).token_ids)
        .collect();
    let steps_alone = handle.stats().steps_total;
    // A fresh engine, so no prompt is served from pages the solo runs cached.
    let handle = start(small_step_config());
    let together = generate_concurrently(
        &handle,
        prompts
            .iter()
            .map(|p| (p.clone(), greedy(max_tokens)))
            .collect(),
    );
    // (Prompts admitted later may still reuse the chat template's system-prompt pages that
    // earlier ones in this batch cached.)
    let steps_together = handle.stats().steps_total;
    // Batched: far fewer engine steps than the same requests run one after another.
    assert!(
        steps_together * 2 < steps_alone,
        "{steps_together} steps together vs {steps_alone} alone: requests were not batched"
    );
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert!(!a.is_empty());
        assert_eq!(&t.token_ids, a, "prompt {i} ({:?})", EIGHT_USER_PROMPTS[i]);
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let handle = start_default();
    let prompt = user_ids(
        &handle,
        "Tell me a short story about a robot who learns to paint.",
    );
    let sampled = |seed| {
        let params = SamplingParams {
            temperature: 0.8,
            seed: Some(seed),
            max_tokens: Some(32),
            ignore_eos: true,
            ..Default::default()
        };
        generate(&handle, prompt.clone(), params).token_ids
    };
    let first = sampled(42);
    let again = sampled(42);
    let other = sampled(7);
    assert_eq!(first.len(), 32);
    assert_eq!(first, again, "same seed, different tokens");
    assert_ne!(
        first, other,
        "different seeds gave identical 32-token samples"
    );
    // Sampling in a batch with other requests does not change a seeded sample.
    let mut requests: Vec<(Vec<u32>, SamplingParams)> = EIGHT_USER_PROMPTS[..3]
        .iter()
        .map(|p| (user_ids(&handle, p), greedy(16)))
        .collect();
    requests.push((
        prompt.clone(),
        SamplingParams {
            temperature: 0.8,
            seed: Some(42),
            max_tokens: Some(32),
            ignore_eos: true,
            ..Default::default()
        },
    ));
    let batched = generate_concurrently(&handle, requests);
    assert_eq!(
        batched[3].token_ids, first,
        "seeded sample changed when batched"
    );
}

fn long_system_prompt() -> String {
    "You are a careful assistant for a small library in a quiet town. The library opens at nine \
     in the morning and closes at six in the evening, except on Sundays when it is closed. \
     Members may borrow up to five books for three weeks, and may renew each loan once. Late \
     returns cost ten cents per day. Answer questions about the library briefly and politely."
        .to_string()
}

#[test]
fn shared_prefix_is_reused_and_decodes_like_a_cold_run() {
    let system = ChatMessage::new("system", long_system_prompt());
    let handle = start_default();
    let first = chat_ids(
        &handle,
        &[
            system.clone(),
            ChatMessage::new("user", "When does the library open?"),
        ],
    );
    let second = chat_ids(
        &handle,
        &[
            system,
            ChatMessage::new("user", "How many books can I borrow?"),
        ],
    );
    let shared = first
        .iter()
        .zip(&second)
        .take_while(|(a, b)| a == b)
        .count();
    assert!(shared >= 64, "shared prefix of {shared} tokens");

    let warm_up = generate(&handle, first, greedy(16));
    assert_eq!(
        warm_up.usage.cached_tokens, 0,
        "nothing cached on a fresh engine"
    );
    let warm = generate(&handle, second.clone(), greedy(32));
    let hits = handle.stats().prefix_cache_hit_tokens_total;
    assert!(
        hits >= 64,
        "the scheduler found no prefix hit ({hits} tokens)"
    );
    assert!(
        warm.started_cached_tokens > 0,
        "Started reports no cached tokens"
    );
    assert!(warm.started_cached_tokens <= shared);
    assert_eq!(warm.usage.cached_tokens, warm.started_cached_tokens);
    assert_eq!(hits, warm.usage.cached_tokens as u64);

    let cold_handle = start_default();
    let cold = generate(&cold_handle, second, greedy(32));
    assert_eq!(cold.usage.cached_tokens, 0);
    assert!(!cold.token_ids.is_empty());
    assert_eq!(
        warm.token_ids, cold.token_ids,
        "prefix-cached decode differs from cold"
    );
    assert_eq!(warm.text, cold.text);
}

#[test]
fn identical_prompt_resubmitted_hits_the_cache() {
    let handle = start_default();
    let prompt = chat_ids(
        &handle,
        &[
            ChatMessage::new("system", long_system_prompt()),
            ChatMessage::new("user", "Is the library open on Sunday?"),
        ],
    );
    let cold = generate(&handle, prompt.clone(), greedy(24));
    let warm = generate(&handle, prompt.clone(), greedy(24));
    assert!(warm.usage.cached_tokens >= 64, "{:?}", warm.usage);
    // At least the last prompt token is recomputed to produce the first logits.
    assert!(warm.usage.cached_tokens < prompt.len());
    assert_eq!(warm.token_ids, cold.token_ids);
}

#[test]
fn dropping_the_stream_aborts_and_frees_every_page() {
    let handle = start_default();
    let before = handle.stats();
    assert_eq!(before.kv_blocks_free, before.kv_blocks_total);
    let prompt = user_ids(&handle, "Tell me a long story about a dragon and a knight.");
    let params = SamplingParams {
        ignore_eos: true,
        ..greedy(400)
    };
    let mut stream = handle
        .submit(GenerateRequest {
            prompt_token_ids: prompt,
            params,
        })
        .unwrap();
    let mut tokens = 0;
    while tokens < 4 {
        match stream.blocking_next().unwrap() {
            GenerateEvent::Token { .. } => tokens += 1,
            GenerateEvent::Started { .. } => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    let mid = handle.stats();
    assert_eq!(mid.running_requests, 1);
    assert!(mid.kv_blocks_free < mid.kv_blocks_total);
    drop(stream);
    let after = wait_for_stats(&handle, POLL_TIMEOUT, |s| {
        s.running_requests == 0
            && s.waiting_requests == 0
            && s.kv_blocks_free == s.kv_blocks_total
            && s.requests_finished_total == before.requests_finished_total + 1
    });
    assert_eq!(after.running_requests, 0, "{after:?}");
    assert_eq!(after.waiting_requests, 0, "{after:?}");
    assert_eq!(after.kv_blocks_free, after.kv_blocks_total, "{after:?}");
    assert_eq!(
        after.requests_finished_total,
        before.requests_finished_total + 1
    );
    assert!(
        after.generation_tokens_total < 400,
        "generation ran on after the abort: {after:?}"
    );
    // The engine still serves.
    let next = generate(&handle, user_ids(&handle, "Hi"), greedy(4));
    assert!(!next.token_ids.is_empty());
}

#[test]
fn stop_string_truncates_output_and_reports_stop() {
    let handle = start_default();
    let prompt = user_ids(&handle, "Explain photosynthesis in two sentences.");
    let free = generate(&handle, prompt.clone(), greedy(40));
    let chars: Vec<char> = free.text.chars().collect();
    assert!(
        chars.len() > 40,
        "too little text to pick a stop string: {:?}",
        free.text
    );
    // A stop string starting mid-word, likely spanning a token boundary.
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 7].iter().collect();
    let expected_byte_end = free.text.find(&stop).unwrap();
    let expected = &free.text[..expected_byte_end];
    let params = SamplingParams {
        stop: vec!["never appears 12345".into(), stop.clone()],
        ..greedy(40)
    };
    let stopped = generate(&handle, prompt, params);
    assert_eq!(stopped.reason, Some(FinishReason::Stop), "stop {stop:?}");
    assert_eq!(stopped.text, expected, "stop {stop:?}");
    assert!(stopped.token_ids.len() < free.token_ids.len());
    assert_eq!(
        stopped.token_ids[..],
        free.token_ids[..stopped.token_ids.len()],
        "greedy tokens before the stop"
    );
    assert_eq!(stopped.usage.completion_tokens, stopped.token_ids.len());
}

#[test]
fn max_tokens_finishes_with_length_and_exact_count() {
    let handle = start_default();
    let prompt = user_ids(
        &handle,
        "Tell me a short story about a robot who learns to paint.",
    );
    for max_tokens in [1, 5, 17] {
        let params = SamplingParams {
            ignore_eos: true,
            ..greedy(max_tokens)
        };
        let out = generate(&handle, prompt.clone(), params);
        assert_eq!(out.reason, Some(FinishReason::Length));
        assert_eq!(out.token_ids.len(), max_tokens);
        assert_eq!(out.usage.completion_tokens, max_tokens);
        assert_eq!(out.usage.prompt_tokens, prompt.len());
        assert_eq!(out.prompt_tokens, prompt.len());
    }
}

#[test]
fn prompt_logprobs_agree_with_generation_logprobs() {
    let handle = start_default();
    let prompt = user_ids(
        &handle,
        "Name the planets of the solar system in order from the sun.",
    );
    let params = SamplingParams {
        logprobs: Some(1),
        prompt_logprobs: Some(1),
        ..greedy(12)
    };
    let a = generate(&handle, prompt.clone(), params);
    assert!(a.token_ids.len() >= 8, "{:?}", a.token_ids);

    let prompt_lps = a.prompt_logprobs.as_ref().unwrap();
    assert_eq!(prompt_lps.len(), prompt.len());
    assert!(
        prompt_lps[0].is_none(),
        "the first prompt token has no logprob"
    );
    for (i, lp) in prompt_lps.iter().enumerate().skip(1) {
        let lp = lp
            .as_ref()
            .unwrap_or_else(|| panic!("prompt position {i} has no logprob"));
        assert_eq!(lp.token_id, prompt[i]);
        assert!(lp.logprob.is_finite() && lp.logprob <= 0.0, "{lp:?}");
        assert_eq!(lp.top.len(), 1);
        assert!(lp.top[0].1 >= lp.logprob);
    }

    // Re-score prompt + output as one prompt (echo): each generated token's prompt logprob
    // equals the logprob it had when it was generated, and the original prompt's logprobs are
    // unchanged. This runs after `a`, so its pages are in the prefix cache: prompt logprobs must
    // still cover every position.
    let mut echo_prompt = prompt.clone();
    echo_prompt.extend(&a.token_ids);
    let b = generate(
        &handle,
        echo_prompt.clone(),
        SamplingParams {
            prompt_logprobs: Some(1),
            ..greedy(1)
        },
    );
    let echo_lps = b.prompt_logprobs.as_ref().unwrap();
    assert_eq!(echo_lps.len(), echo_prompt.len());
    for (i, (ours, original)) in echo_lps.iter().zip(prompt_lps).enumerate().skip(1) {
        let (ours, original) = (ours.as_ref().unwrap(), original.as_ref().unwrap());
        assert!(
            (ours.logprob - original.logprob).abs() <= 1e-3,
            "prompt position {i}"
        );
    }
    for (k, generated) in a.token_logprobs.iter().enumerate() {
        let generated = generated.as_ref().unwrap();
        let scored = echo_lps[prompt.len() + k].as_ref().unwrap();
        assert_eq!(scored.token_id, a.token_ids[k]);
        assert_eq!(generated.token_id, a.token_ids[k]);
        assert!(
            (scored.logprob - generated.logprob).abs() <= 1e-3,
            "generated token {k}: decode logprob {} vs prompt logprob {}",
            generated.logprob,
            scored.logprob
        );
    }
}

#[test]
fn preemption_under_a_tiny_cache_keeps_greedy_tokens() {
    let tiny_cache = || {
        start(EngineConfig {
            kv_cache_tokens: Some(256),
            // The scheduler requires one full context to fit the pool.
            max_model_len: Some(256),
            ..Default::default()
        })
    };
    let handle = tiny_cache();
    let params = SamplingParams {
        ignore_eos: true,
        ..greedy(48)
    };
    let prompts: Vec<Vec<u32>> = EIGHT_USER_PROMPTS[..4]
        .iter()
        .map(|p| user_ids(&handle, p))
        .collect();
    let needed: usize = prompts.iter().map(|p| p.len() + 48).sum();
    assert!(
        needed > 256,
        "requests fit the cache together ({needed} tokens)"
    );
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| generate(&handle, p.clone(), params.clone()).token_ids)
        .collect();
    assert_eq!(
        handle.stats().preemptions_total,
        0,
        "a request alone was preempted"
    );
    let handle = tiny_cache();
    let together = generate_concurrently(
        &handle,
        prompts
            .iter()
            .map(|p| (p.clone(), params.clone()))
            .collect(),
    );
    let stats = handle.stats();
    assert!(
        stats.preemptions_total > 0,
        "no preemption happened: {stats:?}"
    );
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(t.reason, Some(FinishReason::Length));
        assert_eq!(&t.token_ids, a, "request {i}");
    }
    let idle = wait_for_stats(&handle, POLL_TIMEOUT, |s| {
        s.kv_blocks_free == s.kv_blocks_total
    });
    assert_eq!(idle.kv_blocks_free, idle.kv_blocks_total, "{idle:?}");
}
