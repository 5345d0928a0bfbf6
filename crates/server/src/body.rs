//! Reading a JSON request body: the content type must be `application/json` (415 otherwise)
//! and the body at most `limit_bytes` (413 otherwise; checked on `Content-Length` first and
//! again while reading, so a lying or absent length cannot get past it).

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use futures::StreamExt;

use crate::error::ApiError;

fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Checks the headers, then reads the whole body.
pub async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    limit_bytes: usize,
) -> Result<Bytes, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json_content_type(content_type) {
        let shown = if content_type.is_empty() {
            "(none)"
        } else {
            content_type
        };
        return Err(ApiError::unsupported_media_type(shown));
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit_bytes as u64) {
        return Err(ApiError::payload_too_large(limit_bytes));
    }
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::internal(format!("reading the body: {e}")))?;
        if buffer.len() + chunk.len() > limit_bytes {
            return Err(ApiError::payload_too_large(limit_bytes));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}
