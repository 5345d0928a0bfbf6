//! `GET /metrics`: Prometheus text format (server histograms + engine gauges and counters).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::state::AppState;

pub async fn handle(State(state): State<AppState>) -> impl IntoResponse {
    let text = state.metrics.render(&state.engine.stats());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}
