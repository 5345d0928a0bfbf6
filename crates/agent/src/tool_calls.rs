//! Tool-call parsing for the formats real models emit, whole-message and streaming.
//!
//! Formats: Hermes/Qwen `<tool_call>{"name": .., "arguments": {..}}</tool_call>` (any number per
//! message, text around them is content); Llama-3 JSON tool calls (the whole message is
//! `{"name": .., "parameters": {..}}`, optionally after `<|python_tag|>`, several separated by
//! `;`); Mistral `[TOOL_CALLS][{..}, ..]`. No dependency on the server, so it can reuse this.
//!
//! Invariants: parsing never fails — a call that cannot be read becomes
//! [`ParsedCall::Malformed`] with the raw text and the reason, so the agent can hand the error
//! back to the model. [`ToolCallStream`] yields, over any chunking of a message, the same final
//! [`ParsedMessage`] as [`parse_tool_calls`] on the whole text, and never shows call markup.

use serde_json::Value as Json;

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";
const MISTRAL_TAG: &str = "[TOOL_CALLS]";

/// One call of a named tool with a JSON object of arguments.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// Always a JSON object.
    pub arguments: Json,
}

/// A call as parsed: readable, or malformed with the reason.
#[derive(Clone, Debug, PartialEq)]
pub enum ParsedCall {
    Call(ToolCall),
    Malformed { raw: String, error: String },
}

/// A message split into its plain content and its tool calls (in order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedMessage {
    /// Text outside the call markup, trimmed.
    pub content: String,
    pub calls: Vec<ParsedCall>,
}

/// Parses every tool call in a complete assistant message.
pub fn parse_tool_calls(text: &str) -> ParsedMessage {
    if text.contains(HERMES_OPEN) {
        return parse_hermes(text);
    }
    let trimmed = text.trim_start();
    if let Some(rest) = trimmed.strip_prefix(PYTHON_TAG) {
        return parse_json_calls(rest, true);
    }
    if let Some(rest) = trimmed.strip_prefix(MISTRAL_TAG) {
        return parse_json_calls(rest, true);
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return parse_json_calls(trimmed, false);
    }
    ParsedMessage {
        content: text.trim().to_string(),
        calls: Vec::new(),
    }
}

fn parse_hermes(text: &str) -> ParsedMessage {
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(HERMES_OPEN) {
        content.push_str(&rest[..open]);
        let body_start = &rest[open + HERMES_OPEN.len()..];
        match body_start.find(HERMES_CLOSE) {
            Some(close) => {
                let body = body_start[..close].trim();
                calls.push(call_from_text(body, calls.len()));
                rest = &body_start[close + HERMES_CLOSE.len()..];
            }
            None => {
                calls.push(ParsedCall::Malformed {
                    raw: body_start.trim().to_string(),
                    error: format!("unterminated {HERMES_OPEN} (no {HERMES_CLOSE})"),
                });
                rest = "";
            }
        }
    }
    content.push_str(rest);
    ParsedMessage {
        content: content.trim().to_string(),
        calls,
    }
}

/// Llama-3 / Mistral JSON calls. `forced`: a tag said these are calls, so anything unreadable is
/// malformed; otherwise a message that is not call-shaped JSON is plain content.
fn parse_json_calls(text: &str, forced: bool) -> ParsedMessage {
    let mut calls = Vec::new();
    let mut rest = text.trim_start();
    let mut content = String::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';' || c == ',');
        if rest.is_empty() {
            break;
        }
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Json>();
        match values.next() {
            Some(Ok(value)) => {
                let consumed = values.byte_offset();
                let items = match value {
                    Json::Array(items) => items,
                    other => vec![other],
                };
                if !forced && calls.is_empty() && !items.iter().all(is_call_shaped) {
                    return plain(text);
                }
                for item in items {
                    calls.push(call_from_json(&item, calls.len()));
                }
                rest = &rest[consumed..];
            }
            Some(Err(e)) => {
                if calls.is_empty() && !forced && !rest.contains("\"name\"") {
                    return plain(text);
                }
                if calls.is_empty() {
                    calls.push(ParsedCall::Malformed {
                        raw: rest.trim().to_string(),
                        error: format!("invalid JSON: {e}"),
                    });
                } else {
                    content.push_str(rest);
                }
                break;
            }
            None => break,
        }
    }
    ParsedMessage {
        content: content.trim().to_string(),
        calls,
    }
}

fn plain(text: &str) -> ParsedMessage {
    ParsedMessage {
        content: text.trim().to_string(),
        calls: Vec::new(),
    }
}

fn is_call_shaped(value: &Json) -> bool {
    let Some(obj) = value.as_object() else {
        return false;
    };
    let has_name = obj.get("name").is_some_and(Json::is_string)
        || obj
            .get("function")
            .and_then(|f| f.get("name"))
            .is_some_and(Json::is_string);
    let has_args = obj.contains_key("arguments")
        || obj.contains_key("parameters")
        || obj
            .get("function")
            .is_some_and(|f| f.get("arguments").is_some());
    has_name && has_args
}

fn call_from_text(body: &str, index: usize) -> ParsedCall {
    match serde_json::from_str::<Json>(body) {
        Ok(value) => call_from_json(&value, index),
        Err(e) => ParsedCall::Malformed {
            raw: body.to_string(),
            error: format!("invalid JSON: {e}"),
        },
    }
}

/// Reads `{"name", "arguments"|"parameters"}` or OpenAI `{"function": {"name", "arguments"}}`;
/// string arguments are parsed as JSON.
fn call_from_json(value: &Json, index: usize) -> ParsedCall {
    let malformed = |error: &str| ParsedCall::Malformed {
        raw: value.to_string(),
        error: error.to_string(),
    };
    let inner = value.get("function").unwrap_or(value);
    let Some(name) = inner.get("name").and_then(Json::as_str) else {
        return malformed("missing string field \"name\"");
    };
    let raw_args = inner
        .get("arguments")
        .or_else(|| inner.get("parameters"))
        .cloned()
        .unwrap_or_else(|| Json::Object(Default::default()));
    let arguments = match raw_args {
        Json::String(s) if s.trim().is_empty() => Json::Object(Default::default()),
        Json::String(s) => match serde_json::from_str::<Json>(&s) {
            Ok(v) => v,
            Err(e) => return malformed(&format!("arguments are not valid JSON: {e}")),
        },
        other => other,
    };
    if !arguments.is_object() {
        return malformed("\"arguments\" must be a JSON object");
    }
    let id = value
        .get("id")
        .and_then(Json::as_str)
        .map_or_else(|| format!("call_{index}"), str::to_string);
    ParsedCall::Call(ToolCall {
        id,
        name: name.to_string(),
        arguments,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamMode {
    /// Only whitespace or a possible tag prefix so far.
    Undecided,
    /// Plain text with possible Hermes calls inside.
    Text,
    /// The message is a JSON call (Llama-3 / Mistral): show nothing until the end.
    Json,
}

/// Incremental parser: feed chunks, get the text that is safe to show (outside call markup).
#[derive(Clone, Debug)]
pub struct ToolCallStream {
    buffer: String,
    /// Bytes of `buffer` already shown or consumed as markup.
    shown: usize,
    in_call: bool,
    mode: StreamMode,
}

impl Default for ToolCallStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ToolCallStream {
    pub fn new() -> Self {
        Self {
            buffer: String::new(),
            shown: 0,
            in_call: false,
            mode: StreamMode::Undecided,
        }
    }

    /// Adds a chunk; returns the newly showable text.
    pub fn push(&mut self, chunk: &str) -> String {
        self.buffer.push_str(chunk);
        if self.mode == StreamMode::Undecided {
            self.mode = self.decide();
        }
        match self.mode {
            StreamMode::Text => self.advance_text(),
            StreamMode::Undecided | StreamMode::Json => String::new(),
        }
    }

    /// Ends the message: the rest of the showable text and the parsed message.
    pub fn finish(self) -> (String, ParsedMessage) {
        let parsed = parse_tool_calls(&self.buffer);
        let rest = match self.mode {
            StreamMode::Json | StreamMode::Undecided if parsed.calls.is_empty() => {
                parsed.content.clone()
            }
            StreamMode::Json | StreamMode::Undecided => String::new(),
            StreamMode::Text if self.in_call => String::new(),
            StreamMode::Text => self.buffer[self.shown..].to_string(),
        };
        (rest, parsed)
    }

    fn decide(&self) -> StreamMode {
        let head = self.buffer.trim_start();
        if head.is_empty() {
            return StreamMode::Undecided;
        }
        // `[` opens a JSON array of calls unless it is (the start of) `[TOOL_CALLS]`.
        let json_array = head.starts_with('[')
            && !MISTRAL_TAG.starts_with(head)
            && !head.starts_with(MISTRAL_TAG);
        if head.starts_with('{') || json_array {
            return StreamMode::Json;
        }
        for tag in [PYTHON_TAG, MISTRAL_TAG] {
            if head.starts_with(tag) {
                return StreamMode::Json;
            }
            if tag.starts_with(head) {
                return StreamMode::Undecided;
            }
        }
        StreamMode::Text
    }

    fn advance_text(&mut self) -> String {
        let mut out = String::new();
        loop {
            let rest = &self.buffer[self.shown..];
            if self.in_call {
                match rest.find(HERMES_CLOSE) {
                    Some(pos) => {
                        self.shown += pos + HERMES_CLOSE.len();
                        self.in_call = false;
                    }
                    None => return out,
                }
            } else if let Some(pos) = rest.find(HERMES_OPEN) {
                out.push_str(&rest[..pos]);
                self.shown += pos + HERMES_OPEN.len();
                self.in_call = true;
            } else {
                let held = longest_tag_prefix_suffix(rest, HERMES_OPEN);
                let safe = rest.len() - held;
                out.push_str(&rest[..safe]);
                self.shown += safe;
                return out;
            }
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`.
fn longest_tag_prefix_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&k| {
            text.is_char_boundary(text.len() - k) && tag.starts_with(&text[text.len() - k..])
        })
        .unwrap_or(0)
}
