//! `arle serve` / `infer`: the OpenAI-compatible server on the chosen backend.

use anyhow::Context;
use arle_server::ServerConfig;

use crate::args::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every route but /healthz and /readyz.
    #[arg(long, env = "ARLE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// Starts the engine and serves until SIGINT/SIGTERM.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let engine_config = args.model.engine_config()?;
    let served_model_name = engine_config.served_model_name.clone();
    let handle = crate::bench::engine::start_handle(&args.model, engine_config)?;
    let config = ServerConfig {
        host: args.host,
        port: args.port,
        api_key: args.api_key,
        served_model_name,
        ..ServerConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(arle_server::serve(config, handle))
        .context("server failed")?;
    Ok(())
}
