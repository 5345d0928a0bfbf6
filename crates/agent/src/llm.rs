//! The [`Llm`] seam: one model call over a whole conversation, streamed as text.
//!
//! Implementations: [`crate::EngineLlm`] (in-process engine, keeps the conversation's KV hot
//! through the prefix cache) and [`crate::HttpLlm`] (any OpenAI-compatible server). Tests use
//! scripted doubles. Invariant: `complete` sends every piece of generated text to `on_text` in
//! order, and the concatenation equals [`LlmResponse::text`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arle_engine::tokenizer::ChatMessage;
use serde_json::Value as Json;

use crate::tool_calls::ToolCall;
use crate::AgentError;

/// Shared cancel switch: set by Ctrl-C, polled by model calls and tool processes.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Clears the switch (before the next generation).
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// The underlying flag, for signal handlers.
    pub fn as_atomic(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// One model call: the full conversation so far and the tool schemas (OpenAI
/// `{"type": "function", "function": {...}}` objects), if tools are on.
#[derive(Clone, Copy, Debug)]
pub struct LlmRequest<'a> {
    pub messages: &'a [ChatMessage],
    pub tools: Option<&'a [Json]>,
}

/// Why a model call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmFinish {
    /// The model ended its turn (EOS / stop).
    Stop,
    /// Token limit or context limit.
    Length,
    /// The cancel flag was set.
    Cancelled,
}

/// Token accounting of one model call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LlmUsage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens served from the prefix cache (KV kept hot across turns).
    pub cached_tokens: usize,
}

/// What one model call produced.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmResponse {
    /// The raw generated text (tool-call markup included).
    pub text: String,
    pub finish: LlmFinish,
    pub usage: LlmUsage,
    /// Prompt ids as the model saw them (in-process engine only).
    pub prompt_token_ids: Option<Vec<u32>>,
    /// Generated ids, stop token included (in-process engine only).
    pub response_token_ids: Option<Vec<u32>>,
    /// Calls a server already parsed out of the text (OpenAI `tool_calls`); the agent parses
    /// `text` itself when this is empty.
    pub native_tool_calls: Vec<ToolCall>,
}

/// A chat model the agent can talk to.
pub trait Llm: Send {
    /// The model's name (for `/model` and the JSON result).
    fn model_name(&self) -> String;

    /// Generates the assistant's next message for `request`, streaming text to `on_text`.
    /// When `cancel` is set, stops early and returns [`LlmFinish::Cancelled`].
    fn complete(
        &mut self,
        request: &LlmRequest<'_>,
        on_text: &mut dyn FnMut(&str),
        cancel: &CancelFlag,
    ) -> Result<LlmResponse, AgentError>;
}
