//! `GET /v1/stats`: engine counters as JSON (queue, running, KV pages, prefix-cache hits) plus
//! the served model id and readiness.

use arle_engine::handle::EngineStats;
use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::state::AppState;

#[derive(Serialize)]
pub struct StatsResponse {
    pub model: String,
    pub ready: bool,
    /// `kv_blocks_total - kv_blocks_free`: pages held by requests.
    pub kv_blocks_used: usize,
    #[serde(flatten)]
    pub engine: EngineStats,
}

pub async fn handle(State(state): State<AppState>) -> Json<StatsResponse> {
    let engine = state.engine.stats();
    Json(StatsResponse {
        model: state.model_id.clone(),
        ready: state.engine.is_ready(),
        kv_blocks_used: engine.kv_blocks_total.saturating_sub(engine.kv_blocks_free),
        engine,
    })
}
