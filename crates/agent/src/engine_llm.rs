//! [`EngineLlm`]: the in-process engine as an [`Llm`].
//!
//! Every call renders the whole conversation with the model's chat template and submits it, so
//! turn n+1's prompt starts with turn n's prompt + output and the engine's prefix cache serves
//! that part from KV already computed (reported as `cached_tokens`).
//!
//! Tools go through the template's own `tools=` variable. When a template ignores it (renders
//! the same with and without tools, e.g. SmolLM2), a Hermes-style tool description is added to
//! the system message instead, so the model still learns the call format we parse.

use arle_engine::tokenizer::{ChatMessage, MessageContent, RenderOptions};
use arle_engine::{EngineHandle, FinishReason, GenerateEvent, GenerateRequest, SamplingParams};
use serde_json::Value as Json;

use crate::llm::{CancelFlag, Llm, LlmFinish, LlmRequest, LlmResponse, LlmUsage};
use crate::AgentError;

/// The in-process engine behind the agent.
pub struct EngineLlm {
    handle: EngineHandle,
    params: SamplingParams,
    /// Whether the template renders `tools` (decided on first use).
    template_uses_tools: Option<bool>,
}

impl EngineLlm {
    pub fn new(handle: EngineHandle, params: SamplingParams) -> Self {
        Self {
            handle,
            params,
            template_uses_tools: None,
        }
    }

    pub fn handle(&self) -> &EngineHandle {
        &self.handle
    }

    /// The prompt text for `request`.
    pub fn render(&mut self, request: &LlmRequest<'_>) -> Result<String, AgentError> {
        let opts = |tools: Option<&[Json]>| RenderOptions {
            add_generation_prompt: true,
            tools: tools.map(<[Json]>::to_vec),
            ..Default::default()
        };
        let Some(tools) = request.tools else {
            return Ok(self.handle.render_chat(request.messages, &opts(None))?);
        };
        let uses_tools = match self.template_uses_tools {
            Some(known) => known,
            None => {
                let probe = [ChatMessage::new("user", "hi")];
                let with = self.handle.render_chat(&probe, &opts(Some(tools)))?;
                let without = self.handle.render_chat(&probe, &opts(None))?;
                let known = with != without;
                self.template_uses_tools = Some(known);
                known
            }
        };
        if uses_tools {
            return Ok(self
                .handle
                .render_chat(request.messages, &opts(Some(tools)))?);
        }
        let messages = with_tool_instructions(request.messages, tools);
        Ok(self.handle.render_chat(&messages, &opts(None))?)
    }
}

/// The Hermes tool-use instructions for templates without tool support.
pub fn tool_instructions(tools: &[Json]) -> String {
    let mut text = String::from(
        "You can call tools. To call one, reply with\n<tool_call>\n{\"name\": <tool name>, \"arguments\": <JSON object>}\n</tool_call>\nand wait for the result. Available tools:\n<tools>\n",
    );
    for tool in tools {
        text.push_str(&tool.to_string());
        text.push('\n');
    }
    text.push_str("</tools>");
    text
}

/// `messages` with the tool instructions appended to the first system message (or a new one).
pub(crate) fn with_tool_instructions(messages: &[ChatMessage], tools: &[Json]) -> Vec<ChatMessage> {
    let instructions = tool_instructions(tools);
    let mut out = messages.to_vec();
    match out.first_mut() {
        Some(first) if first.role == "system" => {
            let old = first
                .content
                .as_ref()
                .map(MessageContent::joined_text)
                .unwrap_or_default();
            first.content = Some(MessageContent::Text(format!("{old}\n\n{instructions}")));
        }
        _ => out.insert(0, ChatMessage::new("system", instructions)),
    }
    out
}

impl Llm for EngineLlm {
    fn model_name(&self) -> String {
        self.handle.model().id.clone()
    }

    fn complete(
        &mut self,
        request: &LlmRequest<'_>,
        on_text: &mut dyn FnMut(&str),
        cancel: &CancelFlag,
    ) -> Result<LlmResponse, AgentError> {
        let prompt = self.render(request)?;
        let prompt_token_ids = self.handle.tokenizer().encode(&prompt, false)?;
        let mut stream = self.handle.submit(GenerateRequest {
            prompt_token_ids: prompt_token_ids.clone(),
            params: self.params.clone(),
        })?;
        let mut text = String::new();
        let mut response_token_ids = Vec::new();
        let mut usage = LlmUsage {
            prompt_tokens: prompt_token_ids.len(),
            ..LlmUsage::default()
        };
        let mut finish = LlmFinish::Cancelled;
        while !cancel.is_cancelled() {
            let Some(event) = stream.blocking_next() else {
                return Err(AgentError::Engine(arle_engine::EngineError::Shutdown));
            };
            match event {
                GenerateEvent::Started { cached_tokens, .. } => usage.cached_tokens = cached_tokens,
                GenerateEvent::Token {
                    token_id,
                    text: piece,
                    ..
                } => {
                    response_token_ids.push(token_id);
                    text.push_str(&piece);
                    on_text(&piece);
                }
                GenerateEvent::Finished {
                    reason,
                    text: tail,
                    usage: engine_usage,
                } => {
                    text.push_str(&tail);
                    on_text(&tail);
                    usage.cached_tokens = engine_usage.cached_tokens;
                    finish = match reason {
                        FinishReason::Stop => LlmFinish::Stop,
                        FinishReason::Length => LlmFinish::Length,
                        FinishReason::Abort => LlmFinish::Cancelled,
                    };
                    break;
                }
                GenerateEvent::Error(e) => {
                    return Err(AgentError::Engine(arle_engine::EngineError::Internal(e)))
                }
            }
        }
        // Dropping an unfinished stream aborts the request in the engine.
        drop(stream);
        usage.completion_tokens = response_token_ids.len();
        Ok(LlmResponse {
            text,
            finish,
            usage,
            prompt_token_ids: Some(prompt_token_ids),
            response_token_ids: Some(response_token_ids),
            native_tool_calls: Vec::new(),
        })
    }
}
