//! `/v1/chat/completions`: render the chat template, submit `n` choices sharing the prompt,
//! answer with one JSON response or a stream of `chat.completion.chunk` events.
//!
//! Stream order per choice: a role chunk (`delta.role = "assistant"`), content chunks (with
//! `logprobs` when asked), a final chunk with `finish_reason`; after all choices the usage
//! chunk (`choices: []`, only with `stream_options.include_usage`), then `data: [DONE]`.

use arle_api::{
    ChatChoice, ChatChunkChoice, ChatCompletionChunk, ChatCompletionRequest,
    ChatCompletionResponse, ChatDelta, ChatLogprobs, ChatMessage, FinishReason, MessageContent,
    ResponseMessage, Usage,
};
use arle_engine::tokenizer::{
    ChatMessage as TemplateMessage, MessageContent as TemplateContent, RenderOptions,
};
use arle_engine::GenerateEvent;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;

use super::generate::{
    collect_all, finish_reason, submit_all, ChoiceEvents, ChoiceOutput, Job, UsageTally,
};
use super::logprobs::chat_entry;
use super::params::{check_fits_context, check_token_ids, CommonParams};
use super::{check_model, new_response_id, sse};
use crate::error::ApiError;
use crate::state::{unix_now, AppState};

/// Per-response constants.
struct ChatContext {
    id: String,
    created: u64,
    model: String,
    /// `Some(k)`: return logprobs with `k` alternatives.
    top_logprobs: Option<usize>,
    n: u32,
}

/// Text parts are joined with `\n` into one string (vLLM's "string" content format): most
/// templates concatenate `message.content` and cannot take a list.
fn to_template_message(m: &ChatMessage) -> TemplateMessage {
    let content = m.content.as_ref().map(|c| match c {
        MessageContent::Text(text) => TemplateContent::Text(text.clone()),
        MessageContent::Parts(parts) => TemplateContent::Text(
            parts
                .iter()
                .map(|arle_api::ContentPart::Text { text }| text.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    });
    let tool_calls = m.tool_calls.as_ref().map(|calls| {
        calls
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect()
    });
    TemplateMessage {
        role: m.role.template_name().to_owned(),
        content,
        name: m.name.clone(),
        tool_calls,
        tool_call_id: m.tool_call_id.clone(),
    }
}

/// The prompt token ids of `messages` (template output, no extra special tokens).
fn render_prompt(state: &AppState, messages: &[ChatMessage]) -> Result<Vec<u32>, ApiError> {
    let template = state.chat_template.as_ref().ok_or_else(|| {
        ApiError::invalid_param(
            "messages",
            "this model has no chat template; use /v1/completions",
        )
    })?;
    let messages: Vec<TemplateMessage> = messages.iter().map(to_template_message).collect();
    let options = RenderOptions {
        add_generation_prompt: true,
        ..RenderOptions::default()
    };
    let text = template.render(&messages, &options)?;
    Ok(state.engine.tokenizer().encode(&text, false)?)
}

pub async fn complete(
    state: AppState,
    request: ChatCompletionRequest,
) -> Result<Response, ApiError> {
    check_model(&state, &request.model)?;
    let prompt_ids = render_prompt(&state, &request.messages)?;
    let common = CommonParams::from_chat(&request);
    let model = state.engine.model();
    check_fits_context(
        prompt_ids.len(),
        common.max_tokens,
        model.max_context_tokens,
        "messages",
    )?;
    check_token_ids(&common.stop_token_ids, model.vocab_size, "stop_token_ids")?;
    let n = request.n.unwrap_or(1);
    let jobs = (0..n)
        .map(|i| Job {
            index: i,
            prompt_token_ids: prompt_ids.clone(),
            params: common.sampling_params(i),
        })
        .collect();
    let streams = submit_all(&state, jobs)?;
    let ctx = ChatContext {
        id: new_response_id("chatcmpl-"),
        created: unix_now(),
        model: state.model_id.clone(),
        top_logprobs: common.logprobs,
        n,
    };
    if request.stream == Some(true) {
        let include_usage = request
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        return Ok(stream(state, ctx, streams, include_usage));
    }
    let outputs = collect_all(streams).await?;
    Ok(Json(build_response(&state, &ctx, &outputs)).into_response())
}

fn build_response(
    state: &AppState,
    ctx: &ChatContext,
    outputs: &[ChoiceOutput],
) -> ChatCompletionResponse {
    let tokenizer = state.engine.tokenizer();
    let choices = outputs
        .iter()
        .map(|o| ChatChoice {
            index: o.index,
            message: ResponseMessage {
                role: "assistant".to_owned(),
                content: o.text.clone(),
            },
            logprobs: ctx.top_logprobs.map(|top_n| ChatLogprobs {
                content: o
                    .tokens
                    .iter()
                    .filter_map(|t| t.logprob.as_ref())
                    .map(|lp| chat_entry(tokenizer, lp, top_n))
                    .collect(),
            }),
            finish_reason: o.finish_reason,
        })
        .collect();
    ChatCompletionResponse {
        id: ctx.id.clone(),
        object: "chat.completion".to_owned(),
        created: ctx.created,
        model: ctx.model.clone(),
        choices,
        usage: UsageTally::from_outputs(outputs, ctx.n).usage(),
    }
}

impl ChatContext {
    fn chunk(&self, choices: Vec<ChatChunkChoice>, usage: Option<Usage>) -> Event {
        sse::json_event(&ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        })
    }

    fn choice_chunk(
        &self,
        index: u32,
        delta: ChatDelta,
        logprobs: Option<ChatLogprobs>,
        finish_reason: Option<FinishReason>,
    ) -> Event {
        self.chunk(
            vec![ChatChunkChoice {
                index,
                delta,
                logprobs,
                finish_reason,
            }],
            None,
        )
    }

    fn content_delta(text: String) -> ChatDelta {
        ChatDelta {
            role: None,
            content: Some(text),
        }
    }

    /// The events one engine event turns into.
    fn on_event(
        &self,
        state: &AppState,
        tally: &mut UsageTally,
        index: u32,
        event: GenerateEvent,
    ) -> Vec<Event> {
        match event {
            GenerateEvent::Started {
                prompt_tokens,
                cached_tokens,
                ..
            } => {
                tally.on_prompt(index, prompt_tokens, cached_tokens);
                let delta = ChatDelta {
                    role: Some("assistant".to_owned()),
                    content: Some(String::new()),
                };
                vec![self.choice_chunk(index, delta, None, None)]
            }
            GenerateEvent::Token { text, logprob, .. } => {
                let logprobs = match (self.top_logprobs, logprob) {
                    (Some(top_n), Some(lp)) => Some(ChatLogprobs {
                        content: vec![chat_entry(state.engine.tokenizer(), &lp, top_n)],
                    }),
                    _ => None,
                };
                if text.is_empty() && logprobs.is_none() {
                    return Vec::new();
                }
                vec![self.choice_chunk(index, Self::content_delta(text), logprobs, None)]
            }
            GenerateEvent::Finished {
                reason,
                text,
                usage,
            } => {
                tally.on_prompt(index, usage.prompt_tokens, usage.cached_tokens);
                tally.on_finished(usage.completion_tokens);
                let mut events = Vec::new();
                if !text.is_empty() {
                    events.push(self.choice_chunk(index, Self::content_delta(text), None, None));
                }
                events.push(self.choice_chunk(
                    index,
                    ChatDelta::default(),
                    None,
                    Some(finish_reason(reason)),
                ));
                events
            }
            GenerateEvent::Error(message) => vec![sse::error_event(&ApiError::internal(message))],
        }
    }
}

fn stream(
    state: AppState,
    ctx: ChatContext,
    streams: Vec<ChoiceEvents>,
    include_usage: bool,
) -> Response {
    let (tx, rx) = sse::channel();
    tokio::spawn(async move {
        let mut merged = futures::stream::select_all(streams);
        let mut tally = UsageTally::new(ctx.n);
        loop {
            let item = tokio::select! {
                _ = tx.closed() => return,
                item = merged.next() => item,
            };
            let Some((index, event)) = item else { break };
            for event in ctx.on_event(&state, &mut tally, index, event) {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
        if include_usage {
            let _ = tx.send(ctx.chunk(Vec::new(), Some(tally.usage()))).await;
        }
        let _ = tx.send(sse::done_event()).await;
    });
    sse::response(rx)
}
