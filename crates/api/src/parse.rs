//! Raw body -> validated request. Checks, in order: the body is a JSON object; every key is a
//! known field (unknown keys and known-but-unsupported OpenAI parameters are rejected with
//! `param` naming them); only text content parts; the typed shape (type errors name the
//! field's path); then ranges ([`crate::validate`]).
//!
//! Invariant: an unsupported OpenAI parameter is only accepted when its value is "empty"
//! (`null`, `false`, `""`, `[]`, `{}`), i.e. when honouring it would change nothing.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::chat::ChatCompletionRequest;
use crate::completions::CompletionRequest;
use crate::error::RequestError;
use crate::validate;

/// Fields of [`ChatCompletionRequest`] (kept equal to the struct by a unit test).
pub const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "seed",
    "stop",
    "stop_token_ids",
    "n",
    "logprobs",
    "top_logprobs",
    "stream",
    "stream_options",
    "ignore_eos",
    "user",
];

/// Fields of [`CompletionRequest`] (kept equal to the struct by a unit test).
pub const COMPLETION_FIELDS: &[&str] = &[
    "model",
    "prompt",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "seed",
    "stop",
    "stop_token_ids",
    "n",
    "logprobs",
    "echo",
    "stream",
    "stream_options",
    "ignore_eos",
    "user",
    "best_of",
    "suffix",
];

const TOOLS_LATER: &str = "tool calling is not implemented yet";
const NO_STRUCTURED: &str = "structured outputs are not implemented yet";

/// OpenAI chat parameters this server knows but does not implement.
pub const CHAT_UNSUPPORTED: &[(&str, &str)] = &[
    ("tools", TOOLS_LATER),
    ("tool_choice", TOOLS_LATER),
    ("parallel_tool_calls", TOOLS_LATER),
    ("functions", TOOLS_LATER),
    ("function_call", TOOLS_LATER),
    ("response_format", NO_STRUCTURED),
    ("logit_bias", "logit bias is not implemented"),
    ("audio", "audio output is not supported"),
    ("modalities", "only text output is supported"),
    ("prediction", "predicted outputs are not supported"),
    ("web_search_options", "web search is not supported"),
    ("store", "stored completions are not supported"),
    ("metadata", "stored completions are not supported"),
    ("reasoning_effort", "reasoning effort is not supported"),
    ("service_tier", "service tiers are not supported"),
    ("verbosity", "verbosity is not supported"),
    ("prompt_cache_key", "prefix caching is automatic"),
    ("safety_identifier", "safety identifiers are not supported"),
];

/// OpenAI completions parameters this server knows but does not implement.
pub const COMPLETION_UNSUPPORTED: &[(&str, &str)] = &[
    ("logit_bias", "logit bias is not implemented"),
    ("response_format", NO_STRUCTURED),
];

/// Parses and validates a `/v1/chat/completions` body.
pub fn parse_chat_request(body: &[u8]) -> Result<ChatCompletionRequest, RequestError> {
    let mut object = parse_object(body)?;
    check_keys(&mut object, CHAT_FIELDS, CHAT_UNSUPPORTED)?;
    check_content_parts(&object)?;
    let request: ChatCompletionRequest = from_object(object)?;
    validate::chat(&request)?;
    Ok(request)
}

/// Parses and validates a `/v1/completions` body.
pub fn parse_completion_request(body: &[u8]) -> Result<CompletionRequest, RequestError> {
    let mut object = parse_object(body)?;
    check_keys(&mut object, COMPLETION_FIELDS, COMPLETION_UNSUPPORTED)?;
    let request: CompletionRequest = from_object(object)?;
    validate::completion(&request)?;
    Ok(request)
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, RequestError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        RequestError::new(
            format!("We could not parse the JSON body of your request ({e}). The body must be a JSON object."),
            None,
        )
        .with_code("invalid_json")
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(
            RequestError::new("The request body must be a JSON object.", None)
                .with_code("invalid_json"),
        ),
    }
}

fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(true) | Value::Number(_) => false,
    }
}

/// Rejects unknown keys and non-empty unsupported ones; drops empty unsupported ones.
fn check_keys(
    object: &mut Map<String, Value>,
    known: &[&str],
    unsupported: &[(&str, &str)],
) -> Result<(), RequestError> {
    let mut dropped = Vec::new();
    for (key, value) in object.iter() {
        if known.contains(&key.as_str()) {
            continue;
        }
        match unsupported.iter().find(|(name, _)| *name == key) {
            Some((_, why)) if !is_empty_value(value) => {
                return Err(RequestError::unsupported_param(key, why))
            }
            Some(_) => dropped.push(key.clone()),
            None => return Err(RequestError::unknown_param(key)),
        }
    }
    for key in dropped {
        object.remove(&key);
    }
    Ok(())
}

/// Rejects image/audio/file content parts with `param` = `messages[i].content[j].type`.
fn check_content_parts(object: &Map<String, Value>) -> Result<(), RequestError> {
    let Some(Value::Array(messages)) = object.get("messages") else {
        return Ok(());
    };
    for (i, message) in messages.iter().enumerate() {
        let Some(Value::Array(parts)) = message.get("content") else {
            continue;
        };
        for (j, part) in parts.iter().enumerate() {
            let kind = part.get("type").and_then(Value::as_str);
            if let Some(kind) = kind.filter(|k| *k != "text") {
                let param = format!("messages[{i}].content[{j}].type");
                return Err(RequestError::unsupported_param(
                    &param,
                    &format!("content parts of type `{kind}` are not supported (only `text`)"),
                ));
            }
        }
    }
    Ok(())
}

/// Typed deserialization; the error names the path of the offending field.
fn from_object<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T, RequestError> {
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let param = if path == "." {
            missing_field_name(&inner).map(str::to_owned)
        } else if let Some(field) = missing_field_name(&inner) {
            Some(format!("{path}.{field}"))
        } else {
            Some(path)
        };
        let message = match &param {
            Some(p) => format!("Invalid value for `{p}`: {inner}"),
            None => format!("Invalid request body: {inner}"),
        };
        RequestError {
            message,
            param,
            code: Some("invalid_type".to_owned()),
        }
    })
}

/// `missing field \`model\`` -> `model`.
fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}
