//! `arle bench latency`: single-request prefill and decode speed of the in-process engine.
//!
//! Each repetition submits one greedy request of `--input-len` random token ids with
//! `ignore_eos` and `max_tokens = --output-len`, and times it from `submit`:
//! prefill tok/s = input_len / TTFT, decode tok/s = (output_len - 1) / (E2E - TTFT). The same
//! rates per CPU-second (process CPU time of each phase) are reported as well: on a shared
//! machine wall-clock rates measure the share of cores we got, CPU-second rates do not.
//! Invariant: every repetition (warm-up included) draws fresh random ids, so the prefix cache
//! cannot serve any prompt page (the report shows `cached_tokens`, which must be 0). With the
//! default `--max-num-batched-tokens 512` a 512-token prompt is prefilled in one chunk.

use std::time::Instant;

use anyhow::{bail, Context};
use arle_engine::{start_engine, EngineHandle, GenerateEvent, GenerateRequest, SamplingParams};
use rand::{Rng, SeedableRng};

use crate::args::ModelArgs;
use crate::bench::cpu_time::process_cpu_ms;
use crate::bench::stats::Summary;

#[derive(clap::Args, Debug)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt length in tokens (random ids).
    #[arg(long, default_value_t = 512)]
    pub input_len: usize,
    /// Generated tokens per request (EOS ignored).
    #[arg(long, default_value_t = 128)]
    pub output_len: usize,
    /// Measured repetitions.
    #[arg(long, default_value_t = 5)]
    pub num_iters: usize,
    /// Unmeasured repetitions first.
    #[arg(long, default_value_t = 1)]
    pub num_warmup: usize,
    /// Seed of the random prompt ids.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Timings of one request.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct LatencySample {
    pub ttft_ms: f64,
    pub e2e_ms: f64,
    pub output_tokens: usize,
    pub cached_tokens: usize,
    /// Process CPU time (all threads) until the first token, and after it; `None` off Linux.
    pub prefill_cpu_ms: Option<f64>,
    pub decode_cpu_ms: Option<f64>,
}

impl LatencySample {
    pub fn prefill_tok_s(&self, input_len: usize) -> f64 {
        input_len as f64 / (self.ttft_ms / 1e3)
    }

    /// `None` when fewer than two tokens were generated.
    pub fn decode_tok_s(&self) -> Option<f64> {
        let decode_ms = self.e2e_ms - self.ttft_ms;
        (self.output_tokens > 1 && decode_ms > 0.0)
            .then(|| (self.output_tokens - 1) as f64 / (decode_ms / 1e3))
    }
}

#[derive(Debug, serde::Serialize)]
pub struct LatencyReport {
    pub model: String,
    pub threads: usize,
    pub input_len: usize,
    pub output_len: usize,
    pub num_iters: usize,
    pub prefill_tok_s: Summary,
    pub decode_tok_s: Summary,
    pub ttft_ms: Summary,
    pub e2e_ms: Summary,
    /// Tokens per CPU-second (all threads): robust to other loads taking cores away.
    pub prefill_tok_per_cpu_s: Summary,
    pub decode_tok_per_cpu_s: Summary,
    pub samples: Vec<LatencySample>,
}

pub fn run(args: LatencyArgs) -> anyhow::Result<LatencyReport> {
    if args.input_len == 0 || args.output_len == 0 || args.num_iters == 0 {
        bail!("--input-len, --output-len and --num-iters must be positive");
    }
    let config = args.model.engine_config()?;
    let model = config.served_model_name.clone();
    let handle = start_engine(config).context("starting the engine")?;
    let vocab = handle.model().vocab_size as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut samples = Vec::with_capacity(args.num_iters);
    for i in 0..args.num_warmup + args.num_iters {
        let ids: Vec<u32> = (0..args.input_len)
            .map(|_| rng.random_range(0..vocab))
            .collect();
        let sample = time_request(&handle, ids, args.output_len)?;
        if i >= args.num_warmup {
            samples.push(sample);
        }
    }
    handle.shutdown();
    let prefill: Vec<f64> = samples
        .iter()
        .map(|s| s.prefill_tok_s(args.input_len))
        .collect();
    let decode: Vec<f64> = samples
        .iter()
        .filter_map(LatencySample::decode_tok_s)
        .collect();
    let ttft: Vec<f64> = samples.iter().map(|s| s.ttft_ms).collect();
    let e2e: Vec<f64> = samples.iter().map(|s| s.e2e_ms).collect();
    let prefill_cpu: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.prefill_cpu_ms.filter(|&ms| ms > 0.0))
        .map(|ms| args.input_len as f64 / (ms / 1e3))
        .collect();
    let decode_cpu: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.decode_cpu_ms.filter(|&ms| ms > 0.0))
        .map(|ms| (args.output_len.saturating_sub(1)) as f64 / (ms / 1e3))
        .collect();
    Ok(LatencyReport {
        model,
        threads: arle_tensor::threads::cpu_threads(),
        input_len: args.input_len,
        output_len: args.output_len,
        num_iters: args.num_iters,
        prefill_tok_s: Summary::of(&prefill),
        decode_tok_s: Summary::of(&decode),
        ttft_ms: Summary::of(&ttft),
        e2e_ms: Summary::of(&e2e),
        prefill_tok_per_cpu_s: Summary::of(&prefill_cpu),
        decode_tok_per_cpu_s: Summary::of(&decode_cpu),
        samples,
    })
}

/// Submits one greedy, EOS-ignoring request and times its first and last token.
fn time_request(
    handle: &EngineHandle,
    prompt_token_ids: Vec<u32>,
    output_len: usize,
) -> anyhow::Result<LatencySample> {
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens: Some(output_len),
        ignore_eos: true,
        ..SamplingParams::default()
    };
    let cpu_start = process_cpu_ms();
    let start = Instant::now();
    let mut stream = handle
        .submit(GenerateRequest {
            prompt_token_ids,
            params,
        })
        .context("submitting the benchmark request")?;
    let mut first_token_ms = None;
    let mut first_token_cpu = None;
    while let Some(event) = stream.blocking_next() {
        match event {
            GenerateEvent::Started { .. } => {}
            GenerateEvent::Token { .. } => {
                if first_token_ms.is_none() {
                    first_token_ms = Some(start.elapsed().as_secs_f64() * 1e3);
                    first_token_cpu = process_cpu_ms();
                }
            }
            GenerateEvent::Finished { usage, .. } => {
                let e2e_ms = start.elapsed().as_secs_f64() * 1e3;
                let cpu_end = process_cpu_ms();
                let Some(ttft_ms) = first_token_ms else {
                    bail!("the request finished without generating a token");
                };
                return Ok(LatencySample {
                    ttft_ms,
                    e2e_ms,
                    output_tokens: usage.completion_tokens,
                    cached_tokens: usage.cached_tokens,
                    prefill_cpu_ms: first_token_cpu.zip(cpu_start).map(|(b, a)| b - a),
                    decode_cpu_ms: cpu_end.zip(first_token_cpu).map(|(b, a)| b - a),
                });
            }
            GenerateEvent::Error(e) => bail!("generation failed: {e}"),
        }
    }
    bail!("the engine stopped before the request finished")
}

/// Prints the report as a table (or JSON).
pub fn print(report: &LatencyReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!(
        "model {}  threads {}  input {} tok  output {} tok  iters {}",
        report.model, report.threads, report.input_len, report.output_len, report.num_iters
    );
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>10}",
        "metric", "mean", "median", "min", "max"
    );
    for (name, s) in [
        ("prefill tok/s", &report.prefill_tok_s),
        ("decode tok/s", &report.decode_tok_s),
        ("TTFT ms", &report.ttft_ms),
        ("E2E ms", &report.e2e_ms),
        ("prefill tok/cpu-s", &report.prefill_tok_per_cpu_s),
        ("decode tok/cpu-s", &report.decode_tok_per_cpu_s),
    ] {
        println!(
            "{name:<18} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            s.mean, s.median, s.min, s.max
        );
    }
    let cached: usize = report.samples.iter().map(|s| s.cached_tokens).sum();
    if cached > 0 {
        println!("warning: {cached} prompt tokens came from the prefix cache");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_ttft_and_e2e_definitions() {
        let s = LatencySample {
            ttft_ms: 500.0,
            e2e_ms: 1770.0,
            output_tokens: 128,
            cached_tokens: 0,
            prefill_cpu_ms: None,
            decode_cpu_ms: None,
        };
        assert!((s.prefill_tok_s(512) - 1024.0).abs() < 1e-9);
        // 127 decode steps in 1.27 s
        assert!((s.decode_tok_s().expect("two or more tokens") - 100.0).abs() < 1e-9);
        let one = LatencySample {
            output_tokens: 1,
            ..s
        };
        assert_eq!(one.decode_tok_s(), None);
    }
}
