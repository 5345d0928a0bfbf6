//! Chat templates: HF Jinja templates rendered with minijinja, configured like transformers'
//! `_compile_jinja_template` (trim_blocks, lstrip_blocks, loop controls, `raise_exception`,
//! `strftime_now`, `tojson` as Python `json.dumps(ensure_ascii=False)`, Python string/dict
//! methods through `minijinja_contrib::pycompat`).
//!
//! Invariants: the template sees `messages`, `add_generation_prompt`, `tools` (`none` when
//! absent), `documents` (`none`), `bos_token`, `eos_token`, plus any extra variables; message
//! fields that are `None` other than `content` are absent (so `is defined` tests work).

use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, Output, State, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::chat_json::{tojson_filter, write_py_repr};
use super::strftime::strftime_now;
use crate::EngineError;

const TEMPLATE_NAME: &str = "chat";

/// One part of a multi-part message content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
}

/// Message content: a string or a list of parts (passed to the template as it is).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// The text of all parts, joined with `\n`.
    pub fn joined_text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Parts(parts) => parts
                .iter()
                .map(|ContentPart::Text { text }| text.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// An OpenAI-style chat message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// `None` renders as `none` (e.g. an assistant message that only calls tools).
    #[serde(default)]
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// OpenAI tool calls, passed to the template as given (`{id, type, function: {name, arguments}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: Some(MessageContent::Text(content.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
        }
    }
}

/// Per-render options.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Append the assistant turn header so the model answers next.
    pub add_generation_prompt: bool,
    /// JSON tool schemas (`{"type": "function", "function": {...}}`).
    pub tools: Option<Vec<Json>>,
    /// Extra template variables (e.g. `enable_thinking`); they override the defaults above.
    pub extra: serde_json::Map<String, Json>,
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

fn template_err(e: Error) -> EngineError {
    // Include the cause chain: minijinja puts the interesting part in `source()`.
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        msg.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    EngineError::Template(msg)
}

/// Prints `None`, booleans, lists and dicts the way Jinja2 (Python `str`) does.
fn python_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Seq | ValueKind::Map => {
            let mut text = String::new();
            write_py_repr(&mut text, value)?;
            out.write_str(&text).map_err(Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token` / `eos_token` fill the template variables of those names.
    pub fn new(
        source: &str,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Result<Self, EngineError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_filter("tojson", tojson_filter);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(template_err)?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
        })
    }

    /// Renders the prompt for `messages`.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        opts: &RenderOptions,
    ) -> Result<String, EngineError> {
        let mut ctx = serde_json::Map::new();
        let messages = serde_json::to_value(messages)
            .map_err(|e| EngineError::Template(format!("messages: {e}")))?;
        ctx.insert("messages".into(), messages);
        ctx.insert(
            "add_generation_prompt".into(),
            Json::Bool(opts.add_generation_prompt),
        );
        ctx.insert(
            "tools".into(),
            opts.tools.clone().map(Json::Array).unwrap_or(Json::Null),
        );
        ctx.insert("documents".into(), Json::Null);
        ctx.insert(
            "bos_token".into(),
            self.bos_token.clone().map_or(Json::Null, Json::String),
        );
        ctx.insert(
            "eos_token".into(),
            self.eos_token.clone().map_or(Json::Null, Json::String),
        );
        for (key, value) in &opts.extra {
            ctx.insert(key.clone(), value.clone());
        }
        let template = self.env.get_template(TEMPLATE_NAME).map_err(template_err)?;
        template
            .render(Value::from_serialize(&ctx))
            .map_err(template_err)
    }
}
