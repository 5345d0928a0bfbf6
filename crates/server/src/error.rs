//! [`ApiError`]: every HTTP error this server returns, rendered as OpenAI's
//! `{"error": {"message", "type", "param", "code"}}` with the right status and headers;
//! [`ServerError`]: failures of [`crate::serve`] itself.
//!
//! Invariant: every non-2xx response of the server has this JSON body (routes return
//! `ApiError`; framework-made 404/405 responses are rewritten by [`crate::middleware`]).

use arle_api::{ErrorBody, ErrorObject, RequestError};
use arle_engine::EngineError;
use axum::http::header::{HeaderName, HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Seconds a client is told to wait after a 429/503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<String>,
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
            headers: Vec::new(),
        }
    }

    fn param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    fn code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }

    fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 400 from request parsing/validation.
    pub fn bad_request(e: RequestError) -> Self {
        Self {
            param: e.param,
            code: e.code,
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", e.message)
        }
    }

    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            .param(param)
            .code("invalid_value")
    }

    /// 400 `context_length_exceeded`: prompt + completion budget over the model's context.
    pub fn context_length(
        param: &str,
        max_context: usize,
        prompt: usize,
        completion: usize,
    ) -> Self {
        let message = format!(
            "This model's maximum context length is {max_context} tokens. However, you requested \
             {} tokens ({prompt} in the {param}, {completion} in the completion). Please reduce the \
             length of the {param} or completion.",
            prompt + completion
        );
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            .param(param)
            .code("context_length_exceeded")
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .param("model")
        .code("model_not_found")
    }

    pub fn route_not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unknown route: {method} {path}"),
        )
        .code("unknown_url")
    }

    /// 405 with the `Allow` header listing the route's methods. An empty `allow` leaves the
    /// header to axum's method router, which adds it after route middleware has run.
    pub fn method_not_allowed(method: &str, path: &str, allow: &str) -> Self {
        let error = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("Method {method} is not allowed on {path}."),
        )
        .code("method_not_allowed");
        if allow.is_empty() {
            error
        } else {
            error.header(ALLOW, allow)
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "Incorrect or missing API key. Send it as `Authorization: Bearer <key>`.",
        )
        .code("invalid_api_key")
        .header(WWW_AUTHENTICATE, "Bearer")
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            format!("Unsupported Content-Type `{content_type}`; send `application/json`."),
        )
        .code("unsupported_media_type")
    }

    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("The request body is larger than the limit of {limit_bytes} bytes."),
        )
        .code("payload_too_large")
    }

    pub fn overloaded(waiting: usize) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!("The server is overloaded ({waiting} requests waiting). Retry later."),
        )
        .code("rate_limit_exceeded")
        .header(RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())
    }

    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The server is shutting down.",
        )
        .code("server_shutting_down")
        .header(RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message).code("internal_error")
    }

    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: self.message.clone(),
                kind: self.kind.to_owned(),
                param: self.param.clone(),
                code: self.code.clone(),
            },
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        Self::bad_request(e)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::InvalidRequest(m) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", m)
                    .code("invalid_request")
            }
            EngineError::Tokenizer(m) | EngineError::Template(m) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", m)
                    .code("invalid_prompt")
            }
            EngineError::Overloaded(waiting) => Self::overloaded(waiting),
            EngineError::Shutdown => Self::shutting_down(),
            other => Self::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.to_body())).into_response();
        for (name, value) in &self.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                response.headers_mut().insert(name.clone(), value);
            }
        }
        response
    }
}

/// Why [`crate::serve`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
}
