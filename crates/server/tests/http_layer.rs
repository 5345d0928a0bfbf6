//! The HTTP layer without an engine: middleware (request id, auth, 404/405 shaping, request
//! counting), body reading (415/413/400) and the error bodies every failure returns.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use arle_engine::EngineError;
use arle_server::body::read_json_body;
use arle_server::metrics::Metrics;
use arle_server::middleware::{add_layers, is_valid_request_id};
use arle_server::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

const LIMIT_BYTES: usize = 1024;

/// A stand-in for the chat route: reads and parses the body like the real one.
async fn fake_chat(headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let bytes = read_json_body(&headers, body, LIMIT_BYTES).await?;
    let request = arle_api::parse_chat_request(&bytes)?;
    Ok(request.model.into_response())
}

fn app(api_key: Option<&str>) -> (Router, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let routes = Router::new()
        .route("/v1/chat/completions", post(fake_chat))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }));
    (
        add_layers(routes, api_key.map(Arc::from), metrics.clone()),
        metrics,
    )
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

fn json_post(body: &str) -> Request<Body> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// Asserts the OpenAI error shape and returns the `error` object.
fn error_object(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap();
    let e = v["error"].clone();
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    e
}

#[tokio::test]
async fn unknown_route_is_404_with_error_body_and_request_id() {
    let (app, _) = app(None);
    let (status, headers, body) = send(
        &app,
        Request::get("/v2/nothing").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_object(&body)["code"], "unknown_url");
    let id = headers["x-request-id"].to_str().unwrap();
    assert!(is_valid_request_id(id) && id.len() == 32, "{id}");
}

#[tokio::test]
async fn wrong_method_is_405_with_allow_and_error_body() {
    let (app, _) = app(None);
    let (status, headers, body) = send(
        &app,
        Request::get("/v1/chat/completions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "POST");
    assert_eq!(error_object(&body)["code"], "method_not_allowed");
    assert!(headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn client_request_id_is_kept_only_when_sane() {
    let (app, _) = app(None);
    let with_id = |id: &str| {
        Request::get("/healthz")
            .header("x-request-id", id)
            .body(Body::empty())
            .unwrap()
    };
    let (_, headers, _) = send(&app, with_id("abc-DEF_1.2")).await;
    assert_eq!(headers["x-request-id"], "abc-DEF_1.2");
    for bad in ["has space", "semi;colon", &"x".repeat(129)] {
        let (_, headers, _) = send(&app, with_id(bad)).await;
        let got = headers["x-request-id"].to_str().unwrap();
        assert_ne!(got, bad);
        assert!(is_valid_request_id(got));
    }
    let (_, headers, _) = send(&app, with_id(&"y".repeat(128))).await;
    assert_eq!(headers["x-request-id"].to_str().unwrap(), "y".repeat(128));
}

#[tokio::test]
async fn api_key_guards_everything_but_health() {
    let (app, _) = app(Some("sekret"));
    let (status, headers, body) = send(&app, json_post(r#"{"model":"m","messages":[]}"#)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(headers.contains_key("x-request-id"));
    let e = error_object(&body);
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("authentication_error"), Some("invalid_api_key"))
    );

    let mut wrong = json_post(r#"{"model":"m"}"#);
    wrong
        .headers_mut()
        .insert("authorization", "Bearer sekret2".parse().unwrap());
    assert_eq!(send(&app, wrong).await.0, StatusCode::UNAUTHORIZED);

    let mut right = json_post(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#);
    right
        .headers_mut()
        .insert("authorization", "Bearer sekret".parse().unwrap());
    let (status, _, body) = send(&app, right).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"m");

    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            send(&app, Request::get(path).body(Body::empty()).unwrap())
                .await
                .0,
            StatusCode::OK
        );
    }
    let (status, _, _) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let (app, _) = app(None);
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut builder = Request::post("/v1/chat/completions");
        if let Some(ct) = ct {
            builder = builder.header("content-type", ct);
        }
        let (status, _, body) = send(&app, builder.body(Body::from("{}")).unwrap()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(error_object(&body)["code"], "unsupported_media_type");
    }
    let ok = Request::post("/v1/chat/completions")
        .header("content-type", "application/json; charset=utf-8")
        .body(Body::from(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
        ))
        .unwrap();
    assert_eq!(send(&app, ok).await.0, StatusCode::OK);
}

#[tokio::test]
async fn body_over_the_limit_is_413_with_or_without_content_length() {
    let (app, _) = app(None);
    let big = format!(r#"{{"model":"{}"}}"#, "x".repeat(LIMIT_BYTES));
    let (status, _, body) = send(&app, json_post(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_object(&body)["code"], "payload_too_large");
    // Streamed body without Content-Length.
    let chunks: Vec<Result<String, std::io::Error>> =
        vec![Ok(big[..600].to_owned()), Ok(big[600..].to_owned())];
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    assert_eq!(send(&app, request).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn malformed_json_and_bad_params_are_400_naming_the_param() {
    let (app, _) = app(None);
    let (status, _, body) = send(&app, json_post(r#"{"model": "m", "#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let e = error_object(&body);
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("invalid_request_error"), Some("invalid_json"))
    );
    assert!(e["param"].is_null());

    let body = r#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#;
    let (status, _, body) = send(&app, json_post(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_object(&body)["param"], "response_format");
}

#[tokio::test]
async fn requests_are_counted_by_route_and_status() {
    let (app, metrics) = app(None);
    send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    send(&app, Request::get("/nope").body(Body::empty()).unwrap()).await;
    send(&app, json_post("{")).await;
    let text = metrics.render(&Default::default());
    assert!(
        text.contains(
            "arle_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text
        .contains("arle_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1"));
    assert!(text.contains(
        "arle_http_requests_total{route=\"/v1/chat/completions\",method=\"POST\",status=\"400\"} 1"
    ));
}

async fn render(error: ApiError) -> (StatusCode, HeaderMap, Value) {
    let response = error.into_response();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, error_object(&body))
}

#[tokio::test]
async fn engine_errors_map_to_statuses_and_headers() {
    let (status, headers, e) = render(EngineError::Overloaded(7).into()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(e["code"], "rate_limit_exceeded");

    let (status, headers, _) = render(EngineError::Shutdown.into()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));

    let (status, _, e) = render(EngineError::InvalidRequest("too long".into()).into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["message"], "too long");

    let (status, _, e) = render(EngineError::Template("roles must alternate".into()).into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "invalid_prompt");
}

#[tokio::test]
async fn model_and_context_errors_have_openai_codes() {
    let (status, _, e) = render(ApiError::model_not_found("gpt-9")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        (e["param"].as_str(), e["code"].as_str()),
        (Some("model"), Some("model_not_found"))
    );
    assert!(e["message"].as_str().unwrap().contains("gpt-9"));

    let (status, _, e) = render(ApiError::context_length("messages", 2048, 2000, 100)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "context_length_exceeded");
    assert_eq!(e["param"], "messages");
    assert!(e["message"].as_str().unwrap().contains("2048"));
}
