//! Trajectory export (`--trace FILE`): one JSON line per model call, with the prompt and
//! response token ids and a mask of model-generated tokens — the bridge to RL training data.
//!
//! Invariants: `token_ids = prompt_token_ids ++ response_token_ids` and `generated_mask` has the
//! same length, 0 over the prompt and 1 over the response. Token fields are `null` when the
//! backend does not expose ids (HTTP servers). Each line is flushed when written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::{json, Value as Json};

use crate::error::io_err;
use crate::llm::LlmResponse;
use crate::tools::ToolResult;
use crate::AgentError;

/// Version of the line format.
pub const TRACE_SCHEMA_VERSION: u32 = 1;

/// Appends trace lines to a file.
#[derive(Debug)]
pub struct TraceWriter {
    out: BufWriter<File>,
}

/// Where a model call sits in the session.
#[derive(Clone, Copy, Debug)]
pub struct TracePosition {
    /// Index of the user turn (0-based) in this session.
    pub user_turn: usize,
    /// Index of the model call (0-based) over the whole session.
    pub model_call: usize,
}

impl TraceWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, AgentError> {
        let file = File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
        Ok(Self {
            out: BufWriter::new(file),
        })
    }

    /// Writes one model call with the tool results it led to.
    pub fn write_call(
        &mut self,
        position: TracePosition,
        response: &LlmResponse,
        tool_calls: &[Json],
        tool_results: &[ToolResult],
    ) -> Result<(), AgentError> {
        let line = trace_line(position, response, tool_calls, tool_results);
        serde_json::to_writer(&mut self.out, &line).map_err(|source| AgentError::Json {
            context: "writing the trace".into(),
            source,
        })?;
        self.out
            .write_all(b"\n")
            .and_then(|()| self.out.flush())
            .map_err(io_err("writing the trace"))
    }
}

/// The JSON object of one line.
pub fn trace_line(
    position: TracePosition,
    response: &LlmResponse,
    tool_calls: &[Json],
    tool_results: &[ToolResult],
) -> Json {
    let (token_ids, mask) = match (&response.prompt_token_ids, &response.response_token_ids) {
        (Some(prompt), Some(output)) => {
            let ids: Vec<u32> = prompt.iter().chain(output).copied().collect();
            let mask: Vec<u8> = std::iter::repeat_n(0u8, prompt.len())
                .chain(std::iter::repeat_n(1u8, output.len()))
                .collect();
            (json!(ids), json!(mask))
        }
        _ => (Json::Null, Json::Null),
    };
    json!({
        "schema_version": TRACE_SCHEMA_VERSION,
        "user_turn": position.user_turn,
        "model_call": position.model_call,
        "prompt_token_ids": response.prompt_token_ids,
        "response_token_ids": response.response_token_ids,
        "token_ids": token_ids,
        "generated_mask": mask,
        "response_text": response.text,
        "finish": response.finish,
        "usage": response.usage,
        "tool_calls": tool_calls,
        "tool_results": tool_results,
    })
}
