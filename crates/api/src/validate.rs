//! Range checks of parsed requests. Each failure names the offending field.
//!
//! Limits: temperature [0, 2]; top_p (0, 1]; top_k >= -1 (-1 and 0 disable); min_p [0, 1];
//! presence/frequency penalty [-2, 2]; repetition_penalty (0, 10]; n 1..=16; max tokens >= 1;
//! at most 16 non-empty stop strings; logprobs/top_logprobs 0..=20; `stream_options` only with
//! `stream: true`.

use crate::chat::{ChatCompletionRequest, ChatRole, MessageContent};
use crate::common::{StopSequences, StreamOptions};
use crate::completions::{CompletionRequest, Prompt};
use crate::error::RequestError;

pub const MAX_N: u32 = 16;
pub const MAX_LOGPROBS: u32 = 20;
pub const MAX_STOP_SEQUENCES: usize = 16;
/// Upper bound on prompts x n of one completions request.
pub const MAX_CHOICES: usize = 128;

/// The sampling fields both request kinds share.
struct Sampling<'a> {
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i64>,
    min_p: Option<f32>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    repetition_penalty: Option<f32>,
    n: Option<u32>,
    stop: Option<&'a StopSequences>,
    stream: Option<bool>,
    stream_options: Option<&'a StreamOptions>,
}

fn in_range(name: &str, value: Option<f32>, lo: f32, hi: f32) -> Result<(), RequestError> {
    match value {
        Some(v) if !(v.is_finite() && (lo..=hi).contains(&v)) => Err(RequestError::invalid_value(
            name,
            format!("`{name}` must be between {lo} and {hi}, got {v}"),
        )),
        _ => Ok(()),
    }
}

fn check_sampling(s: &Sampling<'_>) -> Result<(), RequestError> {
    in_range("temperature", s.temperature, 0.0, 2.0)?;
    in_range("top_p", s.top_p, 0.0, 1.0)?;
    if s.top_p == Some(0.0) {
        return Err(RequestError::invalid_value(
            "top_p",
            "`top_p` must be greater than 0",
        ));
    }
    if let Some(k) = s.top_k.filter(|k| *k < -1) {
        return Err(RequestError::invalid_value(
            "top_k",
            format!("`top_k` must be -1 (disabled), 0 (disabled) or positive, got {k}"),
        ));
    }
    in_range("min_p", s.min_p, 0.0, 1.0)?;
    in_range("presence_penalty", s.presence_penalty, -2.0, 2.0)?;
    in_range("frequency_penalty", s.frequency_penalty, -2.0, 2.0)?;
    in_range("repetition_penalty", s.repetition_penalty, 0.0, 10.0)?;
    if s.repetition_penalty == Some(0.0) {
        return Err(RequestError::invalid_value(
            "repetition_penalty",
            "`repetition_penalty` must be greater than 0",
        ));
    }
    if let Some(n) = s.n.filter(|n| !(1..=MAX_N).contains(n)) {
        return Err(RequestError::invalid_value(
            "n",
            format!("`n` must be between 1 and {MAX_N}, got {n}"),
        ));
    }
    if let Some(stop) = s.stop {
        let stops = stop.to_vec();
        if stops.len() > MAX_STOP_SEQUENCES {
            return Err(RequestError::invalid_value(
                "stop",
                format!(
                    "at most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {}",
                    stops.len()
                ),
            ));
        }
        if stops.iter().any(String::is_empty) {
            return Err(RequestError::invalid_value(
                "stop",
                "stop sequences must not be empty",
            ));
        }
    }
    if s.stream_options.is_some() && s.stream != Some(true) {
        return Err(RequestError::invalid_value(
            "stream_options",
            "`stream_options` is only allowed when `stream` is true",
        ));
    }
    Ok(())
}

fn check_max_tokens(name: &str, value: Option<u64>) -> Result<(), RequestError> {
    match value {
        Some(0) => Err(RequestError::invalid_value(
            name,
            format!("`{name}` must be at least 1"),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn chat(r: &ChatCompletionRequest) -> Result<(), RequestError> {
    check_sampling(&Sampling {
        temperature: r.temperature,
        top_p: r.top_p,
        top_k: r.top_k,
        min_p: r.min_p,
        presence_penalty: r.presence_penalty,
        frequency_penalty: r.frequency_penalty,
        repetition_penalty: r.repetition_penalty,
        n: r.n,
        stop: r.stop.as_ref(),
        stream: r.stream,
        stream_options: r.stream_options.as_ref(),
    })?;
    check_max_tokens("max_tokens", r.max_tokens)?;
    check_max_tokens("max_completion_tokens", r.max_completion_tokens)?;
    if let Some(k) = r.top_logprobs {
        if k > MAX_LOGPROBS {
            return Err(RequestError::invalid_value(
                "top_logprobs",
                format!("`top_logprobs` must be between 0 and {MAX_LOGPROBS}, got {k}"),
            ));
        }
        if r.logprobs != Some(true) {
            return Err(RequestError::invalid_value(
                "top_logprobs",
                "`top_logprobs` requires `logprobs` to be true",
            ));
        }
    }
    if r.messages.is_empty() {
        return Err(RequestError::invalid_value(
            "messages",
            "`messages` must not be empty",
        ));
    }
    for (i, m) in r.messages.iter().enumerate() {
        let has_tool_calls = m.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
        let needs_content = !(m.role == ChatRole::Assistant && has_tool_calls);
        if needs_content && m.content.is_none() {
            return Err(RequestError::invalid_value(
                &format!("messages[{i}].content"),
                format!("messages[{i}] needs `content`"),
            ));
        }
        if let Some(MessageContent::Parts(parts)) = &m.content {
            if parts.is_empty() {
                return Err(RequestError::invalid_value(
                    &format!("messages[{i}].content"),
                    "a content part list must not be empty",
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn completion(r: &CompletionRequest) -> Result<(), RequestError> {
    check_sampling(&Sampling {
        temperature: r.temperature,
        top_p: r.top_p,
        top_k: r.top_k,
        min_p: r.min_p,
        presence_penalty: r.presence_penalty,
        frequency_penalty: r.frequency_penalty,
        repetition_penalty: r.repetition_penalty,
        n: r.n,
        stop: r.stop.as_ref(),
        stream: r.stream,
        stream_options: r.stream_options.as_ref(),
    })?;
    check_max_tokens("max_tokens", r.max_tokens)?;
    if let Some(k) = r.logprobs.filter(|k| *k > MAX_LOGPROBS) {
        return Err(RequestError::invalid_value(
            "logprobs",
            format!("`logprobs` must be between 0 and {MAX_LOGPROBS}, got {k}"),
        ));
    }
    if let Some(b) = r.best_of.filter(|b| *b != 1) {
        return Err(RequestError::unsupported_param(
            "best_of",
            &format!("only best_of = 1 is supported, got {b}; use `n` for several choices"),
        ));
    }
    if r.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(RequestError::unsupported_param(
            "suffix",
            "insertion is not supported",
        ));
    }
    let num_prompts = match &r.prompt {
        Prompt::Text(s) => usize::from(!s.is_empty()),
        Prompt::Tokens(t) => usize::from(!t.is_empty()),
        Prompt::Texts(v) if v.iter().all(|s| !s.is_empty()) => v.len(),
        Prompt::TokenLists(v) if v.iter().all(|t| !t.is_empty()) => v.len(),
        Prompt::Texts(_) | Prompt::TokenLists(_) => 0,
    };
    if num_prompts == 0 {
        return Err(RequestError::invalid_value(
            "prompt",
            "`prompt` must not be empty",
        ));
    }
    let num_choices = num_prompts * r.n.unwrap_or(1) as usize;
    if num_choices > MAX_CHOICES {
        return Err(RequestError::invalid_value(
            "prompt",
            format!("at most {MAX_CHOICES} prompts x n per request, got {num_choices}"),
        ));
    }
    Ok(())
}
