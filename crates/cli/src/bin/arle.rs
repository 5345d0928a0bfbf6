//! `arle`: the front door (run, serve; the agent REPL, training and eval arrive with their issues).

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "arle",
    version,
    about = "ARLE: LLM serving, local agents, distillation and eval"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One prompt, one reply, printed to stdout.
    Run(arle_cli::run::RunArgs),
    /// The OpenAI-compatible server (same as `infer`).
    Serve(arle_cli::serve::ServeArgs),
    /// Benchmarks: `latency` (in-process prefill/decode) and `serve` (HTTP load test).
    Bench(arle_cli::bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    arle_cli::init_logging();
    match Cli::parse().command {
        Some(Command::Run(args)) => arle_cli::run::run(args).map(|_| ()),
        Some(Command::Serve(args)) => arle_cli::serve::serve(args),
        Some(Command::Bench(args)) => arle_cli::bench::run(args),
        None => anyhow::bail!(
            "the interactive agent is not built yet; try `arle run --prompt ...` or `arle serve`"
        ),
    }
}
