//! `arle bench serve`: load test of a running OpenAI-compatible server (like `vllm bench serve`).
//!
//! Requests leave on a Poisson schedule (`--request-rate`, default all at once), optionally
//! capped at `--max-concurrency` in flight; each runs on its own thread and streams
//! `/v1/completions` (greedy, `ignore_eos`). Metrics follow vLLM: TTFT, TPOT =
//! (E2EL - TTFT) / (output - 1), ITL = gaps between streamed chunks, E2EL; throughput is over
//! the wall time from the first send to the last response. Invariant: the schedule is drawn
//! before the run starts, so timing code does no random-number work; one untimed probe request
//! checks the server first.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};

use crate::bench::client::{BenchRequest, CompletionClient, RequestOutcome};
use crate::bench::dataset;
use crate::bench::stats::Summary;

#[derive(clap::Args, Debug)]
pub struct ServeBenchArgs {
    /// Server root (without /v1).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub base_url: String,
    /// Model id to request (default: the first one /v1/models lists).
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, env = "ARLE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// JSONL of `{"prompt": text | [ids], "output_len"?: N}` (default: random token ids).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    pub num_prompts: usize,
    /// Prompt tokens of random prompts.
    #[arg(long, default_value_t = 512)]
    pub input_len: usize,
    /// Generated tokens per request (EOS ignored).
    #[arg(long, default_value_t = 128)]
    pub output_len: usize,
    /// Random ids are drawn from 0..vocab-size; keep it within the model's vocabulary.
    #[arg(long, default_value_t = 32000)]
    pub vocab_size: u32,
    /// Requests per second (Poisson arrivals); `inf` sends everything at once.
    #[arg(long, default_value_t = f64::INFINITY)]
    pub request_rate: f64,
    /// Most requests in flight at once (default: unlimited).
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Seed of random prompts and the arrival schedule.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Per-request read timeout in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct ServeReport {
    pub model: String,
    pub request_rate: Option<f64>,
    pub max_concurrency: Option<usize>,
    pub completed: usize,
    pub failed: usize,
    pub duration_s: f64,
    pub total_input_tokens: usize,
    pub total_output_tokens: usize,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub ttft_ms: Summary,
    pub tpot_ms: Summary,
    pub itl_ms: Summary,
    pub e2el_ms: Summary,
    /// Up to five distinct error messages of failed requests.
    pub errors: Vec<String>,
}

pub fn run(args: ServeBenchArgs) -> anyhow::Result<ServeReport> {
    if args.num_prompts == 0 || args.output_len == 0 || args.input_len == 0 {
        bail!("--num-prompts, --input-len and --output-len must be positive");
    }
    if args.request_rate.is_nan() || args.request_rate <= 0.0 {
        bail!("--request-rate must be positive (or inf)");
    }
    if args.max_concurrency == Some(0) {
        bail!("--max-concurrency must be positive");
    }
    let client = CompletionClient::new(
        &args.base_url,
        args.api_key.clone(),
        Duration::from_secs(args.timeout_s),
    );
    let model = match &args.model {
        Some(m) => m.clone(),
        None => client
            .first_model_id()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("listing models at {}", args.base_url))?,
    };
    let requests = match &args.dataset {
        Some(path) => dataset::load_jsonl(path, args.num_prompts, args.output_len)?,
        None => dataset::random_requests(
            args.num_prompts,
            args.input_len,
            args.output_len,
            args.vocab_size,
            args.seed,
        ),
    };
    probe(&client, &model, &requests[0])?;
    let offsets = arrival_offsets(requests.len(), args.request_rate, args.seed);
    let start = Instant::now();
    let outcomes = dispatch(&client, &model, &requests, &offsets, args.max_concurrency);
    let duration_s = start.elapsed().as_secs_f64();
    Ok(summarise(model, &args, &outcomes, duration_s))
}

/// One untimed short request so a misconfigured server fails fast.
fn probe(client: &CompletionClient, model: &str, first: &BenchRequest) -> anyhow::Result<()> {
    let probe = BenchRequest {
        prompt: first.prompt.clone(),
        output_len: 2,
    };
    let outcome = client.complete(model, &probe);
    match outcome.error {
        None => Ok(()),
        Some(e) => bail!("the probe request failed: {e}"),
    }
}

/// Send times relative to the start: cumulative exponential gaps of mean `1 / rate`
/// (all zero for an infinite rate).
pub fn arrival_offsets(n: usize, rate_per_s: f64, seed: u64) -> Vec<Duration> {
    if rate_per_s.is_infinite() {
        return vec![Duration::ZERO; n];
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_a441);
    let mut t = 0.0f64;
    (0..n)
        .map(|_| {
            let u: f64 = rng.random();
            t += -(1.0 - u).ln() / rate_per_s;
            Duration::from_secs_f64(t)
        })
        .collect()
}

/// Counting semaphore for `--max-concurrency`.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn acquire(&self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }

    fn release(&self) {
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.freed.notify_one();
    }
}

/// Sends every request at its offset (waiting for a slot if capped); outcomes in request order.
fn dispatch(
    client: &CompletionClient,
    model: &str,
    requests: &[BenchRequest],
    offsets: &[Duration],
    max_concurrency: Option<usize>,
) -> Vec<RequestOutcome> {
    let slots = Slots {
        free: Mutex::new(max_concurrency.unwrap_or(usize::MAX)),
        freed: Condvar::new(),
    };
    let start = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .zip(offsets)
            .map(|(request, &offset)| {
                if let Some(wait) = offset.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
                slots.acquire();
                let slots = &slots;
                scope.spawn(move || {
                    let outcome = client.complete(model, request);
                    slots.release();
                    outcome
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| RequestOutcome {
                    error: Some("the request thread panicked".into()),
                    ..RequestOutcome::default()
                })
            })
            .collect()
    })
}

fn summarise(
    model: String,
    args: &ServeBenchArgs,
    outcomes: &[RequestOutcome],
    duration_s: f64,
) -> ServeReport {
    let ok: Vec<&RequestOutcome> = outcomes.iter().filter(|o| o.success).collect();
    let mut errors: Vec<String> = Vec::new();
    for e in outcomes.iter().filter_map(|o| o.error.as_ref()) {
        if errors.len() < 5 && !errors.contains(e) {
            errors.push(e.clone());
        }
    }
    let total_input_tokens: usize = ok.iter().map(|o| o.prompt_tokens).sum();
    let total_output_tokens: usize = ok.iter().map(|o| o.output_tokens).sum();
    let per_s = |x: f64| {
        if duration_s > 0.0 {
            x / duration_s
        } else {
            0.0
        }
    };
    let ttft: Vec<f64> = ok.iter().map(|o| o.ttft_ms).collect();
    let tpot: Vec<f64> = ok.iter().filter_map(|o| o.tpot_ms()).collect();
    let itl: Vec<f64> = ok.iter().flat_map(|o| o.itl_ms.iter().copied()).collect();
    let e2el: Vec<f64> = ok.iter().map(|o| o.e2el_ms).collect();
    ServeReport {
        model,
        request_rate: args.request_rate.is_finite().then_some(args.request_rate),
        max_concurrency: args.max_concurrency,
        completed: ok.len(),
        failed: outcomes.len() - ok.len(),
        duration_s,
        total_input_tokens,
        total_output_tokens,
        request_throughput: per_s(ok.len() as f64),
        output_throughput: per_s(total_output_tokens as f64),
        total_token_throughput: per_s((total_input_tokens + total_output_tokens) as f64),
        ttft_ms: Summary::of(&ttft),
        tpot_ms: Summary::of(&tpot),
        itl_ms: Summary::of(&itl),
        e2el_ms: Summary::of(&e2el),
        errors,
    }
}

/// Prints the report in `vllm bench serve`'s layout (or JSON).
pub fn print(r: &ServeReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let rate = r.request_rate.map_or("inf".to_string(), |x| format!("{x}"));
    let conc = r
        .max_concurrency
        .map_or("unlimited".to_string(), |c| c.to_string());
    println!("{:=^50}", " Serving Benchmark Result ");
    let rows: [(&str, String); 10] = [
        ("Model:", r.model.clone()),
        ("Request rate (req/s):", rate),
        ("Maximum request concurrency:", conc),
        ("Successful requests:", r.completed.to_string()),
        ("Failed requests:", r.failed.to_string()),
        ("Benchmark duration (s):", format!("{:.2}", r.duration_s)),
        ("Total input tokens:", r.total_input_tokens.to_string()),
        ("Total generated tokens:", r.total_output_tokens.to_string()),
        (
            "Request throughput (req/s):",
            format!("{:.2}", r.request_throughput),
        ),
        (
            "Output token throughput (tok/s):",
            format!("{:.2}", r.output_throughput),
        ),
    ];
    for (k, v) in rows {
        println!("{k:<40}{v:<10}");
    }
    println!(
        "{:<40}{:<10.2}",
        "Total token throughput (tok/s):", r.total_token_throughput
    );
    for (title, name, s) in [
        ("Time to First Token", "TTFT", &r.ttft_ms),
        (
            "Time per Output Token (excl. 1st token)",
            "TPOT",
            &r.tpot_ms,
        ),
        ("Inter-token Latency", "ITL", &r.itl_ms),
        ("End-to-end Latency", "E2EL", &r.e2el_ms),
    ] {
        println!("{:-^50}", title);
        println!("{:<40}{:<10.2}", format!("Mean {name} (ms):"), s.mean);
        println!("{:<40}{:<10.2}", format!("Median {name} (ms):"), s.median);
        println!("{:<40}{:<10.2}", format!("P99 {name} (ms):"), s.p99);
    }
    println!("{:=^50}", "");
    for e in &r.errors {
        println!("error: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinite_rate_sends_everything_at_once() {
        assert_eq!(
            arrival_offsets(3, f64::INFINITY, 1),
            vec![Duration::ZERO; 3]
        );
    }

    #[test]
    fn poisson_offsets_increase_with_the_requested_mean_gap() {
        let n = 20_000;
        let offsets = arrival_offsets(n, 4.0, 3);
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
        let mean_gap_s = offsets[n - 1].as_secs_f64() / n as f64;
        // mean gap 0.25 s; the standard error of 20k exponential gaps is ~0.7%
        assert!((mean_gap_s - 0.25).abs() < 0.01, "mean gap {mean_gap_s}");
    }

    #[test]
    fn slots_cap_concurrency() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let slots = Slots {
            free: Mutex::new(2),
            freed: Condvar::new(),
        };
        let (inflight, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                slots.acquire();
                let (slots, inflight, peak) = (&slots, &inflight, &peak);
                s.spawn(move || {
                    let now = inflight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    inflight.fetch_sub(1, Ordering::SeqCst);
                    slots.release();
                });
            }
        });
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
