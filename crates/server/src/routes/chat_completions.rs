//! `POST /v1/chat/completions`: read + parse the body, then [`crate::service::chat`].

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::body::read_json_body;
use crate::error::ApiError;
use crate::service;
use crate::state::AppState;

pub async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_json_body(&headers, body, state.config.max_body_bytes).await?;
    let request = arle_api::parse_chat_request(&bytes)?;
    service::chat::complete(state, request).await
}
