//! The agent loop: messages -> model -> parse tool calls -> run tools -> append results ->
//! repeat, until the model answers without a call, `max_turns` model calls were made, the
//! output hit its length limit, or the user cancelled.
//!
//! Invariants: the conversation only grows by whole exchanges (assistant message, then one
//! result per call); a malformed call is answered with an error message to the model, never an
//! error of the loop; every model call is counted in [`AgentStats`] and, with a trace, written as
//! one trace line.

use std::path::Path;

use arle_engine::tokenizer::{ChatMessage, MessageContent};
use serde_json::{json, Value as Json};

use crate::error::io_err;
use crate::llm::{CancelFlag, Llm, LlmFinish, LlmRequest, LlmResponse, LlmUsage};
use crate::tool_calls::{ParsedCall, ParsedMessage, ToolCall, ToolCallStream};
use crate::tools::{ToolRegistry, ToolResult};
use crate::trace::{TracePosition, TraceWriter};
use crate::AgentError;

/// Version of the `/save` file format.
pub const CONVERSATION_SCHEMA_VERSION: u32 = 1;

/// Loop settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Most model calls for one user message.
    pub max_turns: usize,
    pub system_prompt: Option<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            max_turns: 8,
            system_prompt: None,
        }
    }
}

/// Hooks for a front end (REPL printer, `arle run`, tests).
pub trait AgentObserver {
    /// Showable model text (tool-call markup removed), as it streams.
    fn on_text(&mut self, _text: &str) {}
    /// Asked before each tool call runs; `false` declines it.
    fn approve(&mut self, _call: &ToolCall) -> bool {
        true
    }
    fn on_tool_result(&mut self, _call: &ToolCall, _result: &ToolResult) {}
    /// A call the model wrote that could not be read.
    fn on_malformed_call(&mut self, _raw: &str, _error: &str) {}
}

/// An observer that shows nothing and approves everything.
#[derive(Debug, Default)]
pub struct SilentObserver;

impl AgentObserver for SilentObserver {}

/// Why [`Agent::send`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model answered without calling a tool.
    Answered,
    /// `max_turns` model calls were made and the model still wanted tools.
    MaxTurns,
    /// The model's output hit the token or context limit.
    Length,
    Cancelled,
}

/// One executed (or declined) tool call.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ToolCallRecord {
    pub call: ToolCall,
    pub result: ToolResult,
}

/// What one user message led to.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunOutcome {
    /// The last assistant text (call markup removed).
    pub final_text: String,
    pub stop: StopReason,
    pub model_calls: usize,
    pub tool_calls: Vec<ToolCallRecord>,
    pub malformed_calls: usize,
    /// Summed over the model calls of this message.
    pub usage: LlmUsage,
}

/// Session counters for `/stats`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct AgentStats {
    pub user_turns: usize,
    pub model_calls: usize,
    pub tool_calls: usize,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub cached_tokens: usize,
    /// The most recent model call.
    pub last_call: Option<LlmUsage>,
}

/// A conversation with a model and (optionally) tools.
pub struct Agent {
    llm: Box<dyn Llm>,
    tools: Option<ToolRegistry>,
    config: AgentConfig,
    messages: Vec<ChatMessage>,
    stats: AgentStats,
    trace: Option<TraceWriter>,
}

impl Agent {
    /// `tools = None` is plain chat.
    pub fn new(llm: Box<dyn Llm>, tools: Option<ToolRegistry>, config: AgentConfig) -> Self {
        let mut agent = Self {
            llm,
            tools,
            config,
            messages: Vec::new(),
            stats: AgentStats::default(),
            trace: None,
        };
        agent.reset();
        agent
    }

    /// Writes one line per model call to `trace` from now on.
    pub fn set_trace(&mut self, trace: TraceWriter) {
        self.trace = Some(trace);
    }

    /// Forgets the conversation (keeps the system prompt) and the counters.
    pub fn reset(&mut self) {
        self.messages.clear();
        if let Some(system) = &self.config.system_prompt {
            self.messages
                .push(ChatMessage::new("system", system.as_str()));
        }
        self.stats = AgentStats::default();
    }

    pub fn messages(&self) -> &[ChatMessage] {
        &self.messages
    }

    pub fn stats(&self) -> &AgentStats {
        &self.stats
    }

    pub fn tools(&self) -> Option<&ToolRegistry> {
        self.tools.as_ref()
    }

    pub fn model_name(&self) -> String {
        self.llm.model_name()
    }

    /// Writes the conversation as JSON.
    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        let doc = json!({
            "schema_version": CONVERSATION_SCHEMA_VERSION,
            "model": self.llm.model_name(),
            "messages": self.messages,
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|source| AgentError::Json {
            context: "serialising the conversation".into(),
            source,
        })?;
        std::fs::write(path, text).map_err(io_err(format!("writing {}", path.display())))
    }

    /// Replaces the conversation with one written by [`Agent::save`].
    pub fn load(&mut self, path: &Path) -> Result<(), AgentError> {
        let text =
            std::fs::read_to_string(path).map_err(io_err(format!("reading {}", path.display())))?;
        let json_err = |source| AgentError::Json {
            context: format!("reading {}", path.display()),
            source,
        };
        let mut doc: Json = serde_json::from_str(&text).map_err(json_err)?;
        self.messages = serde_json::from_value(doc["messages"].take()).map_err(json_err)?;
        Ok(())
    }

    /// Sends a user message and runs the loop until it stops.
    pub fn send(
        &mut self,
        user_text: &str,
        observer: &mut dyn AgentObserver,
        cancel: &CancelFlag,
    ) -> Result<RunOutcome, AgentError> {
        let user_turn = self.stats.user_turns;
        self.stats.user_turns += 1;
        self.messages.push(ChatMessage::new("user", user_text));
        let mut outcome = RunOutcome {
            final_text: String::new(),
            stop: StopReason::MaxTurns,
            model_calls: 0,
            tool_calls: Vec::new(),
            malformed_calls: 0,
            usage: LlmUsage::default(),
        };
        for _ in 0..self.config.max_turns.max(1) {
            let (response, parsed) = self.call_model(observer, cancel)?;
            outcome.model_calls += 1;
            add_usage(&mut outcome.usage, &response.usage);
            let position = TracePosition {
                user_turn,
                model_call: self.stats.model_calls - 1,
            };
            let calls = if !response.native_tool_calls.is_empty() {
                response
                    .native_tool_calls
                    .iter()
                    .cloned()
                    .map(ParsedCall::Call)
                    .collect()
            } else if self.tools.is_some() {
                parsed.calls.clone()
            } else {
                Vec::new()
            };
            outcome.final_text = parsed.content.clone();
            let stop = match response.finish {
                LlmFinish::Cancelled => Some(StopReason::Cancelled),
                _ if calls.is_empty() && response.finish == LlmFinish::Length => {
                    Some(StopReason::Length)
                }
                _ if calls.is_empty() => Some(StopReason::Answered),
                _ => None,
            };
            if let Some(stop) = stop {
                self.messages
                    .push(assistant(Some(response.text.clone()), None));
                self.write_trace(position, &response, &[], &[])?;
                outcome.stop = stop;
                return Ok(outcome);
            }
            let results = self.run_calls(&response, &parsed, calls, observer, cancel, &mut outcome);
            self.write_trace(position, &response, &results.0, &results.1)?;
            if cancel.is_cancelled() {
                outcome.stop = StopReason::Cancelled;
                return Ok(outcome);
            }
        }
        outcome.stop = StopReason::MaxTurns;
        Ok(outcome)
    }

    /// One model call with streaming through the tool-call filter.
    fn call_model(
        &mut self,
        observer: &mut dyn AgentObserver,
        cancel: &CancelFlag,
    ) -> Result<(LlmResponse, ParsedMessage), AgentError> {
        let schemas = self.tools.as_ref().map(ToolRegistry::schemas);
        let request = LlmRequest {
            messages: &self.messages,
            tools: schemas.as_deref(),
        };
        let filter = schemas.is_some();
        let mut stream = ToolCallStream::new();
        let mut on_text = |chunk: &str| {
            if filter {
                let shown = stream.push(chunk);
                if !shown.is_empty() {
                    observer.on_text(&shown);
                }
            } else if !chunk.is_empty() {
                observer.on_text(chunk);
            }
        };
        let response = self.llm.complete(&request, &mut on_text, cancel)?;
        let parsed = if filter {
            let (rest, parsed) = stream.finish();
            if !rest.is_empty() {
                observer.on_text(&rest);
            }
            parsed
        } else {
            ParsedMessage {
                content: response.text.trim().to_string(),
                calls: Vec::new(),
            }
        };
        self.stats.model_calls += 1;
        self.stats.prompt_tokens += response.usage.prompt_tokens;
        self.stats.completion_tokens += response.usage.completion_tokens;
        self.stats.cached_tokens += response.usage.cached_tokens;
        self.stats.last_call = Some(response.usage);
        Ok((response, parsed))
    }

    /// Appends the assistant message and one result per call; returns (call JSON, results)
    /// for the trace.
    fn run_calls(
        &mut self,
        response: &LlmResponse,
        parsed: &ParsedMessage,
        calls: Vec<ParsedCall>,
        observer: &mut dyn AgentObserver,
        cancel: &CancelFlag,
        outcome: &mut RunOutcome,
    ) -> (Vec<Json>, Vec<ToolResult>) {
        let call_base = self.stats.model_calls;
        let mut valid = Vec::new();
        let mut errors = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            match call {
                ParsedCall::Call(mut call) => {
                    call.id = format!("call_{call_base}_{i}");
                    valid.push(call);
                }
                ParsedCall::Malformed { raw, error } => {
                    observer.on_malformed_call(&raw, &error);
                    errors.push(format!("- `{raw}`: {error}"));
                }
            }
        }
        outcome.malformed_calls += errors.len();
        let wire_calls: Vec<Json> = valid.iter().map(wire_call).collect();
        let content = if valid.is_empty() {
            Some(response.text.clone())
        } else {
            Some(parsed.content.clone()).filter(|c| !c.is_empty())
        };
        let tool_calls = Some(wire_calls.clone()).filter(|c| !c.is_empty());
        self.messages.push(assistant(content, tool_calls));
        let mut results = Vec::new();
        for call in valid {
            let result = match &self.tools {
                _ if cancel.is_cancelled() => ToolRegistry::declined(&call),
                Some(tools) if observer.approve(&call) => tools.run(&call, cancel),
                _ => ToolRegistry::declined(&call),
            };
            observer.on_tool_result(&call, &result);
            self.stats.tool_calls += 1;
            self.messages.push(ChatMessage {
                role: "tool".into(),
                content: Some(MessageContent::Text(result.content.clone())),
                name: Some(call.name.clone()),
                tool_calls: None,
                tool_call_id: Some(call.id.clone()),
            });
            results.push(result.clone());
            outcome.tool_calls.push(ToolCallRecord { call, result });
        }
        if !errors.is_empty() {
            self.messages.push(ChatMessage::new(
                "user",
                format!(
                    "[tool-call error] These tool calls could not be read:\n{}\nWrite each call as <tool_call>{{\"name\": \"<tool>\", \"arguments\": {{...}}}}</tool_call> with valid JSON.",
                    errors.join("\n")
                ),
            ));
        }
        (wire_calls, results)
    }

    fn write_trace(
        &mut self,
        position: TracePosition,
        response: &LlmResponse,
        calls: &[Json],
        results: &[ToolResult],
    ) -> Result<(), AgentError> {
        match &mut self.trace {
            Some(trace) => trace.write_call(position, response, calls, results),
            None => Ok(()),
        }
    }
}

fn add_usage(total: &mut LlmUsage, call: &LlmUsage) {
    total.prompt_tokens += call.prompt_tokens;
    total.completion_tokens += call.completion_tokens;
    total.cached_tokens += call.cached_tokens;
}

fn assistant(content: Option<String>, tool_calls: Option<Vec<Json>>) -> ChatMessage {
    ChatMessage {
        role: "assistant".into(),
        content: content.map(MessageContent::Text),
        name: None,
        tool_calls,
        tool_call_id: None,
    }
}

/// The OpenAI shape templates expect (arguments as an object; HTTP stringifies them).
fn wire_call(call: &ToolCall) -> Json {
    json!({
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    })
}
