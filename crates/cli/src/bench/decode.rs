//! `arle bench decode` (issue 6, P1): single-stream decode speed on the in-process engine.
//!
//! Each repetition submits one greedy, `ignore_eos` request of `--input-len` fresh random token
//! ids and `--output-len` new tokens; decode tok/s = (output_len − 1) / (E2E − TTFT), so the
//! prefill and first token are excluded. With `--hbm-gbps` (a measured copy bandwidth, GB/s) the
//! report adds the roofline: tok/s ≤ bandwidth / bytes per step, bytes = bf16 layer weights + the
//! vocabulary projection (KV reads of a ≤ 640-token context are < 1% for the target shapes and
//! left out). Invariant: every repetition draws new ids, so the prefix cache serves nothing.

use std::time::Instant;

use anyhow::{bail, Context};
use arle_engine::{EngineHandle, GenerateEvent, GenerateRequest, SamplingParams};
use rand::{Rng, SeedableRng};

use crate::args::ModelArgs;
use crate::bench::engine;
use crate::bench::stats::Summary;

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt length in tokens (random ids).
    #[arg(long, default_value_t = 128)]
    pub input_len: usize,
    /// New tokens per request (EOS ignored).
    #[arg(long, default_value_t = 512)]
    pub output_len: usize,
    #[arg(long, default_value_t = 3)]
    pub num_iters: usize,
    #[arg(long, default_value_t = 1)]
    pub num_warmup: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Measured memory copy bandwidth in GB/s (adds the roofline and the ratio to it).
    #[arg(long)]
    pub hbm_gbps: Option<f64>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Timings of one request, from `submit`.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct RequestTiming {
    pub ttft_ms: f64,
    pub e2e_ms: f64,
    pub output_tokens: usize,
    pub cached_tokens: usize,
}

#[derive(Debug, serde::Serialize)]
pub struct DecodeReport {
    pub bench: &'static str,
    pub model: String,
    pub backend: String,
    pub input_len: usize,
    pub output_len: usize,
    pub load_s: f64,
    pub decode_tok_s: Summary,
    pub ms_per_token: Summary,
    pub ttft_ms: Summary,
    pub decode_weight_bytes: Option<usize>,
    /// bandwidth / bytes per step.
    pub roofline_tok_s: Option<f64>,
    /// median tok/s over the roofline.
    pub roofline_ratio: Option<f64>,
    pub samples: Vec<RequestTiming>,
}

/// `n` ids uniform in `0..vocab`.
pub(crate) fn random_ids(rng: &mut rand_chacha::ChaCha8Rng, n: usize, vocab: u32) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..vocab)).collect()
}

/// The greedy, `ignore_eos` parameters every benchmark uses.
pub(crate) fn bench_params(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens: Some(max_tokens),
        ignore_eos: true,
        ..SamplingParams::default()
    }
}

/// Submits one request and times its first and last token.
pub(crate) fn time_request(
    handle: &EngineHandle,
    prompt_token_ids: Vec<u32>,
    max_tokens: usize,
) -> anyhow::Result<RequestTiming> {
    let start = Instant::now();
    let mut stream = handle
        .submit(GenerateRequest {
            prompt_token_ids,
            params: bench_params(max_tokens),
        })
        .context("submitting the benchmark request")?;
    let mut ttft_ms = None;
    while let Some(event) = stream.blocking_next() {
        match event {
            GenerateEvent::Started { .. } => {}
            GenerateEvent::Token { .. } => {
                ttft_ms.get_or_insert_with(|| start.elapsed().as_secs_f64() * 1e3);
            }
            GenerateEvent::Finished { usage, .. } => {
                let Some(ttft_ms) = ttft_ms else {
                    bail!("the request finished without generating a token");
                };
                return Ok(RequestTiming {
                    ttft_ms,
                    e2e_ms: start.elapsed().as_secs_f64() * 1e3,
                    output_tokens: usage.completion_tokens,
                    cached_tokens: usage.cached_tokens,
                });
            }
            GenerateEvent::Error(e) => bail!("generation failed: {e}"),
        }
    }
    bail!("the engine stopped before the request finished")
}

pub fn run(args: DecodeArgs) -> anyhow::Result<DecodeReport> {
    if args.input_len == 0 || args.output_len < 2 || args.num_iters == 0 {
        bail!("--input-len and --num-iters must be positive, --output-len at least 2");
    }
    let config = args.model.engine_config()?;
    let model = config.served_model_name.clone();
    let started = engine::start(&args.model, config)?;
    let handle = &started.handle;
    let vocab = handle.model().vocab_size as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut samples = Vec::new();
    for i in 0..args.num_warmup + args.num_iters {
        let ids = random_ids(&mut rng, args.input_len, vocab);
        let t = time_request(handle, ids, args.output_len)?;
        if i >= args.num_warmup {
            samples.push(t);
        }
    }
    handle.shutdown();
    let decode_ms: Vec<f64> = samples
        .iter()
        .map(|s| (s.e2e_ms - s.ttft_ms) / (s.output_tokens.max(2) - 1) as f64)
        .collect();
    let tok_s: Vec<f64> = decode_ms.iter().map(|ms| 1e3 / ms).collect();
    let ttft: Vec<f64> = samples.iter().map(|s| s.ttft_ms).collect();
    let decode_tok_s = Summary::of(&tok_s);
    let bytes = started.params.map(|p| p.decode_weight_bytes());
    let roofline_tok_s = args
        .hbm_gbps
        .zip(bytes)
        .map(|(gbps, b)| gbps * 1e9 / b as f64);
    Ok(DecodeReport {
        bench: "decode",
        model,
        backend: format!("{:?}", args.model.backend),
        input_len: args.input_len,
        output_len: args.output_len,
        load_s: started.load_s,
        roofline_ratio: roofline_tok_s.map(|r| decode_tok_s.median / r),
        decode_tok_s,
        ms_per_token: Summary::of(&decode_ms),
        ttft_ms: Summary::of(&ttft),
        decode_weight_bytes: bytes,
        roofline_tok_s,
        samples,
    })
}

pub fn print(r: &DecodeReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!(
        "decode  model {}  backend {}  prompt {} tok  new {} tok  load {:.1} s",
        r.model, r.backend, r.input_len, r.output_len, r.load_s
    );
    println!(
        "decode tok/s   median {:.1}  (min {:.1}, max {:.1})   ms/token {:.3}   TTFT {:.1} ms",
        r.decode_tok_s.median,
        r.decode_tok_s.min,
        r.decode_tok_s.max,
        r.ms_per_token.median,
        r.ttft_ms.median
    );
    if let (Some(b), Some(roof), Some(ratio)) =
        (r.decode_weight_bytes, r.roofline_tok_s, r.roofline_ratio)
    {
        println!(
            "roofline       {:.1} tok/s ({:.2} GB per step)   ours/roofline {:.3}",
            roof,
            b as f64 / 1e9,
            ratio
        );
    }
    Ok(())
}
