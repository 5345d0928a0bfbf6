//! Shared code of the `arle` and `infer` binaries: argument groups, model resolution and the
//! subcommands. `anyhow` lives only in this crate.

pub mod agent_run;
pub mod args;
pub mod bench;
pub mod doctor;
pub mod repl;
pub mod run;
pub mod serve;

/// Logs to stderr; `RUST_LOG` overrides the default `info`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
