//! `arle bench`: performance measurements.
//!
//! - [`latency`]: single-request prefill/decode speed of the in-process engine.
//! - [`serve`]: load test of a running OpenAI-compatible server over HTTP.
//! - [`decode`], [`throughput`], [`prefill`]: issue 6's P1–P3 on the in-process engine (token-id
//!   prompts; [`engine`] starts it with `--load-format dummy` support).
//!
//! Shared pieces: [`stats`] (mean/median/p99), [`client`] (streaming completions),
//! [`dataset`] (random or JSONL prompts), [`cpu_time`] (process CPU time). Reports print as a table or, with `--json`, as one
//! JSON object on stdout.

pub mod client;
pub mod cpu_time;
pub mod dataset;
pub mod decode;
pub mod engine;
pub mod latency;
pub mod prefill;
pub mod serve;
pub mod stats;
pub mod throughput;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Prefill and decode tok/s of one request on the in-process engine.
    Latency(latency::LatencyArgs),
    /// Load-test a running OpenAI-compatible server (TTFT/TPOT/ITL/E2EL, throughput).
    Serve(serve::ServeBenchArgs),
    /// P1: single-stream decode tok/s (128-token prompt, 512 new tokens).
    Decode(decode::DecodeArgs),
    /// P2: offline throughput, N requests submitted at once.
    Throughput(throughput::ThroughputArgs),
    /// P3: prefill time of one long prompt, with MFU.
    Prefill(prefill::PrefillArgs),
}

/// Runs the chosen benchmark and prints its report.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Latency(a) => {
            let json = a.json;
            latency::print(&latency::run(a)?, json)
        }
        BenchCommand::Serve(a) => {
            let json = a.json;
            serve::print(&serve::run(a)?, json)
        }
        BenchCommand::Decode(a) => {
            let json = a.json;
            decode::print(&decode::run(a)?, json)
        }
        BenchCommand::Throughput(a) => {
            let json = a.json;
            throughput::print(&throughput::run(a)?, json)
        }
        BenchCommand::Prefill(a) => {
            let json = a.json;
            prefill::print(&prefill::run(a)?, json)
        }
    }
}
