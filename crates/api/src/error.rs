//! Error bodies (`{"error": {"message", "type", "param", "code"}}`) and [`RequestError`], the
//! validation failure of a request body.

use serde::{Deserialize, Serialize};

/// The JSON body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub message: String,
    /// e.g. `invalid_request_error`, `authentication_error`, `not_found_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// A machine-readable code, e.g. `context_length_exceeded`.
    pub code: Option<String>,
}

/// A request body that is malformed or out of range (always HTTP 400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub message: String,
    /// The field at fault (`temperature`, `messages[1].content[0].type`, ...).
    pub param: Option<String>,
    pub code: Option<String>,
}

impl RequestError {
    pub fn new(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            message: message.into(),
            param: param.map(str::to_owned),
            code: None,
        }
    }

    pub fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }

    /// The client sent a field this server does not know.
    pub fn unknown_param(name: &str) -> Self {
        Self::new(
            format!("Unrecognized request argument supplied: {name}"),
            Some(name),
        )
        .with_code("unknown_parameter")
    }

    /// The client sent a field OpenAI knows but this server does not implement.
    pub fn unsupported_param(name: &str, why: &str) -> Self {
        Self::new(
            format!("The parameter `{name}` is not supported by this server: {why}"),
            Some(name),
        )
        .with_code("unsupported_parameter")
    }

    /// A field outside its allowed range.
    pub fn invalid_value(name: &str, message: impl Into<String>) -> Self {
        Self::new(message, Some(name)).with_code("invalid_value")
    }

    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: self.message.clone(),
                kind: "invalid_request_error".to_owned(),
                param: self.param.clone(),
                code: self.code.clone(),
            },
        }
    }
}
