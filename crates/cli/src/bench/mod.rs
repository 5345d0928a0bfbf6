//! `arle bench`: performance measurements.
//!
//! - [`latency`]: single-request prefill/decode speed of the in-process engine.
//! - [`serve`]: load test of a running OpenAI-compatible server over HTTP.
//!
//! Shared pieces: [`stats`] (mean/median/p99), [`client`] (streaming completions),
//! [`dataset`] (random or JSONL prompts), [`cpu_time`] (process CPU time). Reports print as a table or, with `--json`, as one
//! JSON object on stdout.

pub mod client;
pub mod cpu_time;
pub mod dataset;
pub mod latency;
pub mod serve;
pub mod stats;

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
    }
}
