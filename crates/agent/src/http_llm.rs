//! [`HttpLlm`]: any OpenAI-compatible chat-completions server as an [`Llm`] (`--server-url`).
//!
//! Streams with SSE (`data: {json}` lines, `data: [DONE]`), accumulating `delta.content` and
//! `delta.tool_calls` (arguments arrive as string fragments per call index). Cancellation is
//! checked between lines; dropping the response closes the connection, which aborts the
//! request on the server. Token ids are not available over HTTP (trace fields are null).
//!
//! Servers without tool support (HTTP 400 naming `tools`) get the tools the way a template
//! without tool support does: Hermes instructions in the system message, earlier calls as
//! `<tool_call>` text and results as `<tool_response>` user turns; the agent parses the text.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use arle_engine::tokenizer::ChatMessage;
use serde_json::{json, Value as Json};

use crate::engine_llm::with_tool_instructions;
use crate::llm::{CancelFlag, Llm, LlmFinish, LlmRequest, LlmResponse, LlmUsage};
use crate::tool_calls::ToolCall;
use crate::AgentError;

/// Sampling settings sent with every request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpSampling {
    pub max_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
}

/// Client of one server and model.
pub struct HttpLlm {
    base_url: String,
    api_key: Option<String>,
    model: String,
    sampling: HttpSampling,
    agent: ureq::Agent,
    /// `false` once the server rejected `tools`; then tools travel as text.
    server_tools: bool,
}

fn http_err(e: impl std::fmt::Display) -> AgentError {
    AgentError::Http(e.to_string())
}

impl HttpLlm {
    /// `base_url` is the server root (`http://host:port`; a trailing `/v1` is accepted).
    /// With `model = None`, asks `GET /v1/models` and takes the first id.
    pub fn connect(
        base_url: &str,
        api_key: Option<String>,
        model: Option<String>,
        sampling: HttpSampling,
    ) -> Result<Self, AgentError> {
        let base_url = base_url
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_string();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .build();
        let mut client = Self {
            base_url,
            api_key,
            model: model.unwrap_or_default(),
            sampling,
            agent,
            server_tools: true,
        };
        if client.model.is_empty() {
            client.model = client.first_model()?;
        }
        Ok(client)
    }

    fn authorized(&self, request: ureq::Request) -> ureq::Request {
        match &self.api_key {
            Some(key) => request.set("Authorization", &format!("Bearer {key}")),
            None => request,
        }
    }

    fn first_model(&self) -> Result<String, AgentError> {
        let url = format!("{}/v1/models", self.base_url);
        let body: Json = self
            .authorized(self.agent.get(&url))
            .call()
            .map_err(http_err)?
            .into_json()
            .map_err(http_err)?;
        body["data"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| AgentError::Http(format!("{url} lists no model")))
    }

    /// The JSON body of a streaming chat-completions request.
    pub fn request_body(&self, request: &LlmRequest<'_>) -> Json {
        let messages: Vec<Json> = match request.tools {
            Some(tools) if !self.server_tools => text_tool_messages(request.messages, tools)
                .iter()
                .map(wire_message)
                .collect(),
            _ => request.messages.iter().map(wire_message).collect(),
        };
        let tools = request.tools.filter(|_| self.server_tools);
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        let s = &self.sampling;
        let fields = [
            ("max_tokens", s.max_tokens.map(|v| json!(v))),
            ("temperature", s.temperature.map(|v| json!(v))),
            ("top_p", s.top_p.map(|v| json!(v))),
            ("seed", s.seed.map(|v| json!(v))),
            ("tools", tools.map(|t| json!(t))),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                body[key] = value;
            }
        }
        body
    }
}

/// The conversation for a server without tool support: instructions in the system message,
/// calls as Hermes text, results as `<tool_response>` user turns.
fn text_tool_messages(messages: &[ChatMessage], tools: &[Json]) -> Vec<ChatMessage> {
    with_tool_instructions(messages, tools)
        .into_iter()
        .map(|m| {
            if m.role == "tool" {
                let text = m
                    .content
                    .as_ref()
                    .map(|c| c.joined_text())
                    .unwrap_or_default();
                return ChatMessage::new(
                    "user",
                    format!("<tool_response>\n{text}\n</tool_response>"),
                );
            }
            let Some(calls) = &m.tool_calls else {
                return m;
            };
            let mut text = m
                .content
                .as_ref()
                .map(|c| c.joined_text())
                .unwrap_or_default();
            for call in calls {
                let f = &call["function"];
                let body = json!({"name": f["name"], "arguments": f["arguments"]});
                text.push_str(&format!("\n<tool_call>\n{body}\n</tool_call>"));
            }
            ChatMessage::new(m.role.as_str(), text.trim_start())
        })
        .collect()
}

/// A message as OpenAI expects it: tool-call arguments as a JSON string.
fn wire_message(message: &ChatMessage) -> Json {
    let mut value = serde_json::to_value(message).unwrap_or(Json::Null);
    if let Some(calls) = value.get_mut("tool_calls").and_then(Json::as_array_mut) {
        for call in calls {
            if let Some(args) = call.pointer_mut("/function/arguments") {
                if !args.is_string() {
                    *args = Json::String(args.to_string());
                }
            }
        }
    }
    value
}

/// Accumulates a streamed chat completion.
#[derive(Debug, Default)]
pub struct SseAccumulator {
    pub text: String,
    pub finish: Option<LlmFinish>,
    pub usage: LlmUsage,
    /// (id, name, argument fragments) per call index.
    calls: Vec<(String, String, String)>,
}

impl SseAccumulator {
    /// Feeds one line; returns the new content text and whether the stream ended.
    pub fn push_line(&mut self, line: &str) -> Result<(String, bool), AgentError> {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            return Ok((String::new(), false));
        };
        if data == "[DONE]" {
            return Ok((String::new(), true));
        }
        let chunk: Json = serde_json::from_str(data)
            .map_err(|e| AgentError::Http(format!("bad SSE chunk `{data}`: {e}")))?;
        if let Some(error) = chunk.get("error") {
            return Err(AgentError::Http(format!("server error: {error}")));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let n = |v: &Json| v.as_u64().unwrap_or(0) as usize;
            self.usage.prompt_tokens = n(&usage["prompt_tokens"]);
            self.usage.completion_tokens = n(&usage["completion_tokens"]);
            self.usage.cached_tokens = n(&usage["prompt_tokens_details"]["cached_tokens"]);
        }
        let mut piece = String::new();
        let Some(choice) = chunk["choices"].get(0) else {
            return Ok((piece, false));
        };
        if let Some(content) = choice["delta"]["content"].as_str() {
            piece.push_str(content);
            self.text.push_str(content);
        }
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap_or(0) as usize;
            if self.calls.len() <= index {
                self.calls.resize(index + 1, Default::default());
            }
            let slot = &mut self.calls[index];
            if let Some(id) = call["id"].as_str() {
                slot.0 = id.to_string();
            }
            if let Some(name) = call["function"]["name"].as_str() {
                slot.1.push_str(name);
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                slot.2.push_str(args);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish = Some(if reason == "length" {
                LlmFinish::Length
            } else {
                LlmFinish::Stop
            });
        }
        Ok((piece, false))
    }

    /// Calls the server parsed; arguments that are not JSON objects are kept as `{"_raw": ..}`
    /// so the tool reports a missing argument rather than the agent failing.
    pub fn tool_calls(&self) -> Vec<ToolCall> {
        self.calls
            .iter()
            .enumerate()
            .map(|(i, (id, name, args))| ToolCall {
                id: if id.is_empty() {
                    format!("call_{i}")
                } else {
                    id.clone()
                },
                name: name.clone(),
                arguments: serde_json::from_str::<Json>(args)
                    .ok()
                    .filter(Json::is_object)
                    .unwrap_or_else(|| json!({ "_raw": args })),
            })
            .collect()
    }
}

impl Llm for HttpLlm {
    fn model_name(&self) -> String {
        self.model.clone()
    }

    fn complete(
        &mut self,
        request: &LlmRequest<'_>,
        on_text: &mut dyn FnMut(&str),
        cancel: &CancelFlag,
    ) -> Result<LlmResponse, AgentError> {
        let url = format!("{}/v1/chat/completions", self.base_url);
        let response = loop {
            let body = self.request_body(request);
            match self.authorized(self.agent.post(&url)).send_json(body) {
                Ok(response) => break response,
                Err(ureq::Error::Status(400, response))
                    if self.server_tools && request.tools.is_some() =>
                {
                    let text = response.into_string().unwrap_or_default();
                    if !text.contains("tools") {
                        return Err(AgentError::Http(format!("{url}: HTTP 400: {text}")));
                    }
                    tracing::info!("the server does not take `tools`; sending them as text");
                    self.server_tools = false;
                }
                Err(ureq::Error::Status(code, response)) => {
                    let text = response.into_string().unwrap_or_default();
                    return Err(AgentError::Http(format!("{url}: HTTP {code}: {text}")));
                }
                Err(e) => return Err(http_err(e)),
            }
        };
        let reader = BufReader::new(response.into_reader());
        let mut acc = SseAccumulator::default();
        let mut cancelled = false;
        for line in reader.lines() {
            if cancel.is_cancelled() {
                cancelled = true;
                break;
            }
            let line = line.map_err(http_err)?;
            let (piece, done) = acc.push_line(&line)?;
            if !piece.is_empty() {
                on_text(&piece);
            }
            if done {
                break;
            }
        }
        let finish = if cancelled {
            LlmFinish::Cancelled
        } else {
            acc.finish.unwrap_or(LlmFinish::Stop)
        };
        Ok(LlmResponse {
            native_tool_calls: acc.tool_calls(),
            text: acc.text,
            finish,
            usage: acc.usage,
            prompt_token_ids: None,
            response_token_ids: None,
        })
    }
}
