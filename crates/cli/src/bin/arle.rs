//! `arle`: the front door. No subcommand: the interactive agent REPL; `--doctor`: what works on
//! this machine; subcommands: run (one-shot agent), serve, bench.

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "arle",
    version,
    about = "ARLE: LLM serving, local agents, distillation and eval",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Report backends, sandbox, tool interpreters, model resolution and cache paths.
    #[arg(long)]
    doctor: bool,
    /// With --doctor: one JSON document.
    #[arg(long, requires = "doctor")]
    json: bool,
    /// With --doctor: exit non-zero when something required is missing.
    #[arg(long, requires = "doctor")]
    strict: bool,
    /// The REPL's flags (model, sampling, agent).
    #[command(flatten)]
    repl: arle_cli::repl::ReplArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One-shot agent: one prompt (--prompt or --stdin), tools on unless --no-tools.
    Run(arle_cli::run::RunArgs),
    /// The OpenAI-compatible server (same as `infer`).
    Serve(arle_cli::serve::ServeArgs),
    /// Benchmarks: `latency` (in-process prefill/decode) and `serve` (HTTP load test).
    Bench(arle_cli::bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    arle_cli::init_logging();
    let cli = Cli::parse();
    if cli.doctor {
        let code = arle_cli::doctor::doctor(&arle_cli::doctor::DoctorOptions {
            json: cli.json,
            strict: cli.strict,
            model: cli.repl.model.model.clone(),
        });
        std::process::exit(code);
    }
    match cli.command {
        Some(Command::Run(args)) => arle_cli::run::run(args).map(|_| ()),
        Some(Command::Serve(args)) => arle_cli::serve::serve(args),
        Some(Command::Bench(args)) => arle_cli::bench::run(args),
        None => arle_cli::repl::repl(cli.repl),
    }
}
