//! `arle-agent`: the local agent behind `arle` (REPL) and `arle run`.
//!
//! - [`agent`]: the loop (model -> tool calls -> tool results -> model ...), stats, save/load.
//! - [`llm`]: the [`Llm`] seam; [`EngineLlm`] (in-process, KV kept hot across turns through the
//!   prefix cache) and [`HttpLlm`] (OpenAI-compatible server).
//! - [`tool_calls`]: parsing of Hermes/Qwen, Llama-3 and Mistral tool calls (reusable by the
//!   server: no server dependency).
//! - [`tools`]: `shell` and `python` tools, process limits, and the sandbox (bubblewrap or
//!   Landlock).
//! - [`trace`]: JSONL trajectory export.

pub mod agent;
mod engine_llm;
pub mod error;
mod http_llm;
pub mod llm;
pub mod tool_calls;
pub mod tools;
pub mod trace;

pub use agent::{
    Agent, AgentConfig, AgentObserver, AgentStats, RunOutcome, SilentObserver, StopReason,
    ToolCallRecord,
};
pub use engine_llm::{tool_instructions, EngineLlm};
pub use error::AgentError;
pub use http_llm::{HttpLlm, HttpSampling, SseAccumulator};
pub use llm::{CancelFlag, Llm, LlmFinish, LlmRequest, LlmResponse, LlmUsage};
pub use tool_calls::{parse_tool_calls, ParsedCall, ParsedMessage, ToolCall, ToolCallStream};
pub use tools::sandbox::{NetworkPolicy, Sandbox, SandboxBackend, SandboxReport};
pub use tools::{ToolConfig, ToolKind, ToolRegistry, ToolResult};
pub use trace::TraceWriter;
