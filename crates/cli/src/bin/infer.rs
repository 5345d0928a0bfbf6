//! `infer`: the serving-only binary (same server as `arle serve`).

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "infer",
    version,
    about = "ARLE OpenAI-compatible inference server"
)]
struct Cli {
    #[command(flatten)]
    serve: arle_cli::serve::ServeArgs,
}

fn main() -> anyhow::Result<()> {
    arle_cli::init_logging();
    arle_cli::serve::serve(Cli::parse().serve)
}
