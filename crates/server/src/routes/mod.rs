//! One file per route; [`build`] wires them into a router.

pub mod chat_completions;
pub mod completions;
pub mod health;
pub mod metrics;
pub mod models;
pub mod stats;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// Every route, without middleware (see [`crate::middleware::add_layers`]).
pub fn build(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions::handle))
        .route("/v1/completions", post(completions::handle))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{model_id}", get(models::retrieve))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::handle))
        .route("/v1/stats", get(stats::handle))
        .with_state(state)
}
