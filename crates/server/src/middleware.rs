//! HTTP middleware, outermost first: [`request_id`] (every response carries `X-Request-Id`),
//! [`count_requests`] (Prometheus request counter), [`require_api_key`] (Bearer auth on every
//! route but `/healthz` and `/readyz`), [`shape_errors`] (framework-made 405 responses get the
//! OpenAI error body and keep `Allow`). [`add_layers`] applies them in that order.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{HeaderName, HeaderValue, ALLOW, AUTHORIZATION};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::metrics::Metrics;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_CHARS: usize = 128;

/// The request id of the current request (also put in request extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// A client id is kept when it is 1..=128 chars of `[A-Za-z0-9-_.]`.
pub fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// 32 random hex digits.
pub fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid_request_id(v))
        .map_or_else(new_request_id, str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

pub async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    metrics.record_request(&route, &method, response.status().as_u16());
    response
}

/// The expected API key; `None` disables auth.
pub type ApiKey = Option<Arc<str>>;

/// Routes reachable without the API key.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Constant-time check of `Authorization: Bearer <key>` (only the length can leak).
pub fn bearer_matches(header: Option<&HeaderValue>, expected: &str) -> bool {
    let presented = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

pub async fn require_api_key(State(key): State<ApiKey>, request: Request, next: Next) -> Response {
    let Some(key) = key else {
        return next.run(request).await;
    };
    if is_public(request.uri().path()) || bearer_matches(request.headers().get(AUTHORIZATION), &key)
    {
        return next.run(request).await;
    }
    ApiError::unauthorized().into_response()
}

pub async fn shape_errors(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED || is_json(&response) {
        return response;
    }
    let allow = response
        .headers()
        .get(ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    ApiError::method_not_allowed(&method, &path, &allow).into_response()
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// 404 for every unknown route.
pub async fn unknown_route(request: Request) -> Response {
    ApiError::route_not_found(request.method().as_str(), request.uri().path()).into_response()
}

/// Adds the fallback and the middleware stack to `router`.
pub fn add_layers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    api_key: ApiKey,
    metrics: Arc<Metrics>,
) -> Router<S> {
    router
        .fallback(unknown_route)
        .layer(from_fn(shape_errors))
        .layer(from_fn_with_state(api_key, require_api_key))
        .layer(from_fn_with_state(metrics, count_requests))
        .layer(from_fn(request_id))
}
