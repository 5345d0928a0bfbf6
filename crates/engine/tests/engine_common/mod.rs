//! Shared helpers for the engine integration tests (`engine_*.rs`, `smollm2_hf_parity.rs`):
//! locating the SmolLM2 GGUF, starting an engine on it, rendering chat prompts, and running a
//! request to completion while collecting every event.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arle_engine::tokenizer::{ChatMessage, RenderOptions};
use arle_engine::{
    start_engine, EngineConfig, EngineHandle, EngineStats, FinishReason, GenerateEvent,
    GenerateRequest, RequestStream, SamplingParams, TokenLogprob, Usage,
};

/// The SmolLM2 GGUF: `ARLE_SMOLLM2_GGUF`, else `<repo>/.cache/models/...`; panics when absent.
pub fn smollm2_gguf() -> PathBuf {
    let path = std::env::var_os("ARLE_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.exists(),
        "SmolLM2 GGUF not found at {}: run scripts/fetch-test-assets.sh (or set ARLE_SMOLLM2_GGUF)",
        path.display()
    );
    path
}

/// Where the engine tests run: `ARLE_TEST_DEVICE=cuda` (builds with the `cuda` feature) puts
/// the model on GPU 0, so the same tests check the CUDA backend on the GPU machine; default CPU.
pub fn test_device() -> arle_tensor::Device {
    match std::env::var("ARLE_TEST_DEVICE").as_deref() {
        Ok("cpu") | Err(_) => arle_tensor::Device::Cpu,
        #[cfg(feature = "cuda")]
        Ok("cuda") => arle_tensor::Device::Cuda(0),
        Ok(other) => {
            panic!("ARLE_TEST_DEVICE={other}: expected cpu or cuda (cuda needs --features cuda)")
        }
    }
}

/// True when the tests run on a GPU (bf16 activations: looser numeric gates).
pub fn on_gpu() -> bool {
    test_device() != arle_tensor::Device::Cpu
}

/// Starts an engine on SmolLM2 with `config` (its `model_path` and device are filled in).
pub fn start(config: EngineConfig) -> EngineHandle {
    start_engine(EngineConfig {
        model_path: smollm2_gguf(),
        device: test_device(),
        ..config
    })
    .unwrap()
}

/// KV capacity of test engines: ample for these tests, small enough for many engines at once.
pub const TEST_KV_CACHE_TOKENS: usize = 4096;

/// The default config with a [`TEST_KV_CACHE_TOKENS`] cache (and context: the scheduler needs
/// one full context to fit the cache).
/// On a GPU the tests run in `--deterministic` mode: batch invariance, cache-hit == cold and
/// prompt-logprob == decode-logprob hold there only with batch-invariant kernels (the default
/// GPU mode trades them for speed, as documented).
pub fn test_config() -> EngineConfig {
    EngineConfig {
        kv_cache_tokens: Some(TEST_KV_CACHE_TOKENS),
        max_model_len: Some(TEST_KV_CACHE_TOKENS),
        deterministic: on_gpu(),
        ..Default::default()
    }
}

/// Starts an engine on SmolLM2 with [`test_config`].
pub fn start_default() -> EngineHandle {
    start(test_config())
}

/// Prompt ids of `messages` rendered with the model's chat template (generation prompt on).
pub fn chat_ids(handle: &EngineHandle, messages: &[ChatMessage]) -> Vec<u32> {
    let opts = RenderOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    let text = handle.render_chat(messages, &opts).unwrap();
    handle.tokenizer().encode(&text, false).unwrap()
}

/// Prompt ids of one user turn.
pub fn user_ids(handle: &EngineHandle, user: &str) -> Vec<u32> {
    chat_ids(handle, &[ChatMessage::new("user", user)])
}

/// Greedy params with a token limit.
pub fn greedy(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens: Some(max_tokens),
        ..Default::default()
    }
}

/// Everything one request streamed back.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub prompt_tokens: usize,
    pub started_cached_tokens: usize,
    pub prompt_logprobs: Option<Vec<Option<TokenLogprob>>>,
    pub token_ids: Vec<u32>,
    pub token_logprobs: Vec<Option<TokenLogprob>>,
    /// Token texts plus the text released by `Finished`.
    pub text: String,
    pub reason: Option<FinishReason>,
    pub usage: Usage,
}

/// Reads `stream` to its end and checks the event order `Started`, `Token`*, `Finished`.
pub fn collect(mut stream: RequestStream) -> Outcome {
    let mut out = Outcome::default();
    let mut started = false;
    while let Some(event) = stream.blocking_next() {
        match event {
            GenerateEvent::Started {
                prompt_tokens,
                cached_tokens,
                prompt_logprobs,
            } => {
                assert!(!started, "two Started events");
                started = true;
                out.prompt_tokens = prompt_tokens;
                out.started_cached_tokens = cached_tokens;
                out.prompt_logprobs = prompt_logprobs;
            }
            GenerateEvent::Token {
                token_id,
                text,
                logprob,
            } => {
                assert!(started, "Token before Started");
                assert!(out.reason.is_none(), "Token after Finished");
                out.token_ids.push(token_id);
                out.token_logprobs.push(logprob);
                out.text.push_str(&text);
            }
            GenerateEvent::Finished {
                reason,
                text,
                usage,
            } => {
                assert!(started, "Finished before Started");
                assert!(out.reason.is_none(), "two Finished events");
                out.text.push_str(&text);
                out.reason = Some(reason);
                out.usage = usage;
            }
            GenerateEvent::Error(e) => panic!("request failed: {e}"),
        }
    }
    assert!(out.reason.is_some(), "stream ended without Finished");
    out
}

/// Submits one request and waits for its outcome.
pub fn generate(
    handle: &EngineHandle,
    prompt_token_ids: Vec<u32>,
    params: SamplingParams,
) -> Outcome {
    let stream = handle
        .submit(GenerateRequest {
            prompt_token_ids,
            params,
        })
        .unwrap();
    collect(stream)
}

/// Submits all requests before reading any, then collects each (they run concurrently).
pub fn generate_concurrently(
    handle: &EngineHandle,
    requests: Vec<(Vec<u32>, SamplingParams)>,
) -> Vec<Outcome> {
    let streams: Vec<RequestStream> = requests
        .into_iter()
        .map(|(prompt_token_ids, params)| {
            handle
                .submit(GenerateRequest {
                    prompt_token_ids,
                    params,
                })
                .unwrap()
        })
        .collect();
    let readers: Vec<_> = streams
        .into_iter()
        .map(|s| std::thread::spawn(move || collect(s)))
        .collect();
    readers.into_iter().map(|r| r.join().unwrap()).collect()
}

/// Polls `handle.stats()` until `done` holds or `timeout` passes; returns the last snapshot.
pub fn wait_for_stats(
    handle: &EngineHandle,
    timeout: Duration,
    done: impl Fn(&EngineStats) -> bool,
) -> EngineStats {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = handle.stats();
        if done(&stats) || Instant::now() >= deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Eight different chat prompts (topics, lengths) for multi-request tests.
pub const EIGHT_USER_PROMPTS: [&str; 8] = [
    "What is the capital of France?",
    "Explain photosynthesis in two sentences.",
    "Write a Python function that returns the sum of a list.",
    "I work night shifts at a hospital three times a week, drink two cups of coffee during \
     each shift, and usually try to sleep from eight in the morning until two in the afternoon \
     in a bright apartment next to a busy street. Give me three tips for sleeping better, with \
     a short reason for each one.",
    "What is 12 times 7?",
    "Tell me a short story about a robot who learns to paint.",
    "Name the planets of the solar system in order from the sun.",
    "Why is the sky blue?",
];
