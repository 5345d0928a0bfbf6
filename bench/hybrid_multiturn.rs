//! Multi-turn agent-style workload on a hybrid (Qwen3.5) model, CPU backend: TTFT per turn with
//! and without prefix reuse. Not a test; numbers go to docs/benchmarks.md.
//!
//! Each of 10 turns appends 60..=100 tokens of "tool output" to the conversation (prompt +
//! every earlier answer) and generates 30 greedy tokens. Each configuration runs the whole
//! conversation `REPEATS` times on a fresh engine; the table shows the median TTFT per turn.
//!
//! Run: `/tmp/ref/venv/bin/python bench/hybrid_multiturn_model.py` (random hidden-256 / 8-layer
//! checkpoint into `.cache/models/qwen3_5-bench`), then
//! `cargo run --release -p arle-engine --example hybrid_multiturn [-- <model dir>]`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arle_engine::tokenizer::Tokenizer;
use arle_engine::{
    start_engine_with_model, EngineConfig, EngineHandle, EngineModel, GenerateEvent,
    GenerateRequest, SamplingParams,
};

const TURNS: usize = 10;
const OUTPUT_TOKENS: usize = 30;
const FIRST_PROMPT_TOKENS: usize = 120;
const REPEATS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".cache/models/qwen3_5-bench"));
    let tokenizer_dir = root.join("crates/engine/tests/fixtures/tokenizer/smollm2_hf");
    println!("model: {}", model_dir.display());
    let mut rows: Vec<[Vec<f64>; 2]> = vec![[Vec::new(), Vec::new()]; TURNS];
    let mut cached = [[0usize; 2]; TURNS];
    let mut prompt_lens = [0usize; TURNS];
    for _ in 0..REPEATS {
        for (c, enable) in [true, false].into_iter().enumerate() {
            let loaded = arle_models::load_model(&model_dir)?;
            let vocab = loaded.model.info().vocab_size as u32;
            let handle = start_engine_with_model(
                EngineModel {
                    model: loaded.model,
                    tokenizer: Tokenizer::from_hf_dir(&tokenizer_dir)?,
                    eos_token_ids: Vec::new(),
                },
                EngineConfig {
                    enable_prefix_caching: enable,
                    kv_cache_tokens: Some(8192),
                    ..Default::default()
                },
            )?;
            let mut rng = 12345u64;
            let mut conversation = Vec::new();
            for turn in 0..TURNS {
                let n = if turn == 0 {
                    FIRST_PROMPT_TOKENS
                } else {
                    60 + (next(&mut rng) % 41) as usize
                };
                conversation
                    .extend((0..n).map(|_| 1 + (next(&mut rng) % (vocab as u64 - 1)) as u32));
                prompt_lens[turn] = conversation.len();
                let (ttft, tokens, cached_tokens) = timed_turn(&handle, &conversation)?;
                rows[turn][c].push(ttft.as_secs_f64() * 1e3);
                cached[turn][c] = cached_tokens;
                conversation.extend(tokens);
            }
        }
    }
    println!("| turn | prompt tokens | cached (reuse on) | TTFT ms, reuse on | TTFT ms, reuse off | speed-up |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let (mut on_total, mut off_total) = (0.0, 0.0);
    for turn in 0..TURNS {
        let on = median(&mut rows[turn][0]);
        let off = median(&mut rows[turn][1]);
        on_total += on;
        off_total += off;
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.2}x |",
            turn + 1,
            prompt_lens[turn],
            cached[turn][0],
            on,
            off,
            off / on
        );
    }
    println!(
        "| all | | | {on_total:.1} | {off_total:.1} | {:.2}x |",
        off_total / on_total
    );
    Ok(())
}

/// Submits `prompt`, returns (time to first token, generated ids, cached prompt tokens).
fn timed_turn(
    handle: &EngineHandle,
    prompt: &[u32],
) -> Result<(Duration, Vec<u32>, usize), Box<dyn std::error::Error>> {
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens: Some(OUTPUT_TOKENS),
        ignore_eos: true,
        ..Default::default()
    };
    let start = Instant::now();
    let mut stream = handle.submit(GenerateRequest {
        prompt_token_ids: prompt.to_vec(),
        params,
    })?;
    let mut ttft = None;
    let mut tokens = Vec::new();
    let mut cached = 0;
    while let Some(event) = stream.blocking_next() {
        match event {
            GenerateEvent::Started { cached_tokens, .. } => cached = cached_tokens,
            GenerateEvent::Token { token_id, .. } => {
                ttft.get_or_insert_with(|| start.elapsed());
                tokens.push(token_id);
            }
            GenerateEvent::Finished { .. } => break,
            GenerateEvent::Error(e) => return Err(e.into()),
        }
    }
    Ok((ttft.unwrap_or_default(), tokens, cached))
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
