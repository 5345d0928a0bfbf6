//! `arle-server`: the OpenAI-compatible HTTP server (axum).
//!
//! Routes (one file each under [`routes`]): `POST /v1/chat/completions`,
//! `POST /v1/completions`, `GET /v1/models[/{id}]`, `GET /healthz`, `GET /readyz`,
//! `GET /metrics`, `GET /v1/stats`. [`service`] maps API requests to engine requests and
//! back (SSE streaming included); [`middleware`] adds `X-Request-Id`, Bearer auth, request
//! counting and OpenAI-shaped 404/405 bodies.
//!
//! Invariants: every error response has the body `{"error": {"message", "type", "param",
//! "code"}}`; a client that disconnects aborts its engine requests; SIGINT/SIGTERM stop
//! accepting connections, abort in-flight work through the engine, and return `Ok`.

pub mod body;
pub mod config;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod routes;
pub mod service;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use arle_engine::handle::EngineHandle;
use tokio::net::TcpListener;

pub use config::{ServerConfig, DEFAULT_MAX_BODY_BYTES};
pub use error::{ApiError, ServerError};
pub use state::AppState;

/// How long in-flight responses get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The full application: routes + middleware.
pub fn router(state: AppState) -> axum::Router {
    let api_key = state.config.api_key.as_deref().map(Arc::<str>::from);
    let metrics = state.metrics.clone();
    middleware::add_layers(routes::build(state), api_key, metrics)
}

/// Binds `config.host:config.port` and serves until SIGINT/SIGTERM.
pub async fn serve(config: ServerConfig, engine: EngineHandle) -> Result<(), ServerError> {
    let addr = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.clone(),
            source,
        })?;
    serve_on(listener, config, engine).await
}

/// Serves on an already-bound listener until SIGINT/SIGTERM.
pub async fn serve_on(
    listener: TcpListener,
    config: ServerConfig,
    engine: EngineHandle,
) -> Result<(), ServerError> {
    let state = AppState::new(config, engine.clone())?;
    tracing::info!(addr = %listener.local_addr()?, model = %state.model_id, "serving");
    let app = router(state);
    let (signalled_tx, mut signalled_rx) = tokio::sync::watch::channel(false);
    let on_signal = async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal: aborting in-flight requests");
        engine.shutdown();
        let _ = signalled_tx.send(true);
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(on_signal);
    let deadline = async move {
        let _ = signalled_rx.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => result?,
        () = deadline => tracing::warn!("connections still open after the grace period; exiting"),
    }
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
