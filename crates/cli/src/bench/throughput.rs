//! `arle bench throughput` (issue 6, P2): offline throughput of the in-process engine.
//!
//! `--num-prompts` requests of `--input-len` fresh random ids and `--output-len` new tokens
//! (greedy, `ignore_eos`) are all submitted at once (the waiting-queue cap is raised to fit);
//! the clock runs from the first submit to the last `Finished`. Output tok/s = generated tokens /
//! elapsed; total tok/s = (prompt + generated tokens) / elapsed. A short request runs first, so
//! lazy initialisation is outside the clock. Batch size and KV capacity are the engine flags
//! (`--max-num-seqs`, `--max-num-batched-tokens`, `--kv-cache-tokens`).

use std::time::Instant;

use anyhow::{bail, Context};
use arle_engine::{GenerateEvent, GenerateRequest};
use rand::SeedableRng;

use crate::args::ModelArgs;
use crate::bench::decode::{bench_params, random_ids, time_request};
use crate::bench::engine;

#[derive(clap::Args, Debug)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value_t = 1000)]
    pub num_prompts: usize,
    #[arg(long, default_value_t = 1000)]
    pub input_len: usize,
    #[arg(long, default_value_t = 1000)]
    pub output_len: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct ThroughputReport {
    pub bench: &'static str,
    pub model: String,
    pub backend: String,
    pub num_prompts: usize,
    pub input_len: usize,
    pub output_len: usize,
    pub max_num_seqs: usize,
    pub load_s: f64,
    pub elapsed_s: f64,
    pub prompt_tokens: usize,
    pub output_tokens: usize,
    pub output_tok_s: f64,
    pub total_tok_s: f64,
    pub requests_per_s: f64,
    pub preemptions: u64,
}

pub fn run(args: ThroughputArgs) -> anyhow::Result<ThroughputReport> {
    if args.num_prompts == 0 || args.input_len == 0 || args.output_len == 0 {
        bail!("--num-prompts, --input-len and --output-len must be positive");
    }
    let mut config = args.model.engine_config()?;
    config.max_waiting_requests = config.max_waiting_requests.max(args.num_prompts + 1);
    let model = config.served_model_name.clone();
    let started = engine::start(&args.model, config)?;
    let handle = &started.handle;
    let vocab = handle.model().vocab_size as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let warm = random_ids(&mut rng, 16, vocab);
    time_request(handle, warm, 4).context("warm-up request")?;
    let prompts: Vec<Vec<u32>> = (0..args.num_prompts)
        .map(|_| random_ids(&mut rng, args.input_len, vocab))
        .collect();
    let preempted_before = handle.stats().preemptions_total;
    let start = Instant::now();
    let mut streams = Vec::with_capacity(prompts.len());
    for ids in prompts {
        let stream = handle
            .submit(GenerateRequest {
                prompt_token_ids: ids,
                params: bench_params(args.output_len),
            })
            .context("submitting")?;
        streams.push(stream);
    }
    let (mut prompt_tokens, mut output_tokens) = (0, 0);
    for mut stream in streams {
        loop {
            match stream.blocking_next() {
                Some(GenerateEvent::Finished { usage, .. }) => {
                    prompt_tokens += usage.prompt_tokens;
                    output_tokens += usage.completion_tokens;
                    break;
                }
                Some(GenerateEvent::Error(e)) => bail!("generation failed: {e}"),
                Some(_) => {}
                None => bail!("the engine stopped before every request finished"),
            }
        }
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let preemptions = handle.stats().preemptions_total - preempted_before;
    handle.shutdown();
    Ok(ThroughputReport {
        bench: "throughput",
        model,
        backend: format!("{:?}", args.model.backend),
        num_prompts: args.num_prompts,
        input_len: args.input_len,
        output_len: args.output_len,
        max_num_seqs: args.model.max_num_seqs,
        load_s: started.load_s,
        elapsed_s,
        prompt_tokens,
        output_tokens,
        output_tok_s: output_tokens as f64 / elapsed_s,
        total_tok_s: (prompt_tokens + output_tokens) as f64 / elapsed_s,
        requests_per_s: args.num_prompts as f64 / elapsed_s,
        preemptions,
    })
}

pub fn print(r: &ThroughputReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!(
        "throughput  model {}  backend {}  {} requests of {} in / {} out  max-num-seqs {}  load {:.1} s",
        r.model, r.backend, r.num_prompts, r.input_len, r.output_len, r.max_num_seqs, r.load_s
    );
    println!(
        "elapsed {:.2} s   output tok/s {:.1}   total tok/s {:.1}   req/s {:.2}   preemptions {}",
        r.elapsed_s, r.output_tok_s, r.total_tok_s, r.requests_per_s, r.preemptions
    );
    Ok(())
}
