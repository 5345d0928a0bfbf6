//! `/v1/completions`: tokenize each prompt (or take its token ids), submit `n` choices per
//! prompt, answer with one `text_completion` JSON or a stream of chunks of the same shape.
//!
//! `echo` puts the prompt text in front of the choice text; with `logprobs` it also returns
//! the prompt tokens' logprobs (the first prompt token's is `null`), which is what
//! loglikelihood scoring (lm-eval) reads.

use arle_api::{
    CompletionChoice, CompletionLogprobs, CompletionRequest, CompletionResponse, FinishReason,
    PromptInput, Usage,
};
use arle_engine::{GenerateEvent, TokenLogprob};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;

use super::generate::{
    collect_all, finish_reason, submit_all, ChoiceEvents, ChoiceOutput, Job, UsageTally,
};
use super::logprobs::CompletionLogprobsBuilder;
use super::params::{check_fits_context, check_token_ids, CommonParams};
use super::{check_model, new_response_id, sse};
use crate::error::ApiError;
use crate::state::{unix_now, AppState};

/// One prompt, tokenized.
struct PreparedPrompt {
    token_ids: Vec<u32>,
    /// The text echoed back (the prompt as sent, or the decoded ids).
    text: String,
}

struct CompletionContext {
    id: String,
    created: u64,
    model: String,
    prompts: Vec<PreparedPrompt>,
    n: u32,
    echo: bool,
    /// `Some(k)`: logprobs with `k` alternatives.
    logprobs: Option<usize>,
}

impl CompletionContext {
    fn prompt_of(&self, index: u32) -> Option<&PreparedPrompt> {
        self.prompts.get((index / self.n.max(1)) as usize)
    }
}

fn prepare(state: &AppState, input: PromptInput) -> Result<PreparedPrompt, ApiError> {
    let tokenizer = state.engine.tokenizer();
    match input {
        PromptInput::Text(text) => Ok(PreparedPrompt {
            token_ids: tokenizer.encode(&text, true)?,
            text,
        }),
        PromptInput::Tokens(token_ids) => {
            check_token_ids(&token_ids, state.engine.model().vocab_size, "prompt")?;
            let text = tokenizer.decode(&token_ids, false)?;
            Ok(PreparedPrompt { token_ids, text })
        }
    }
}

pub async fn complete(state: AppState, request: CompletionRequest) -> Result<Response, ApiError> {
    check_model(&state, &request.model)?;
    let common = CommonParams::from_completion(&request);
    let model = state.engine.model();
    check_token_ids(&common.stop_token_ids, model.vocab_size, "stop_token_ids")?;
    let prompts = request
        .prompt
        .inputs()
        .into_iter()
        .map(|input| prepare(&state, input))
        .collect::<Result<Vec<_>, _>>()?;
    for p in &prompts {
        check_fits_context(
            p.token_ids.len(),
            common.max_tokens,
            model.max_context_tokens,
            "prompt",
        )?;
    }
    let n = request.n.unwrap_or(1);
    let mut jobs = Vec::new();
    for (p, prompt) in prompts.iter().enumerate() {
        for i in 0..n {
            jobs.push(Job {
                index: p as u32 * n + i,
                prompt_token_ids: prompt.token_ids.clone(),
                params: common.sampling_params(i),
            });
        }
    }
    let streams = submit_all(&state, jobs)?;
    let ctx = CompletionContext {
        id: new_response_id("cmpl-"),
        created: unix_now(),
        model: state.model_id.clone(),
        prompts,
        n,
        echo: request.echo == Some(true),
        logprobs: common.logprobs,
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

/// Pushes the prompt tokens (with their logprobs when the engine returned them).
fn push_prompt(
    state: &AppState,
    builder: &mut CompletionLogprobsBuilder,
    prompt: &PreparedPrompt,
    prompt_logprobs: Option<&Vec<Option<TokenLogprob>>>,
) {
    let tokenizer = state.engine.tokenizer();
    match prompt_logprobs {
        Some(lps) => {
            for (i, id) in prompt.token_ids.iter().enumerate() {
                builder.push(tokenizer, *id, lps.get(i).and_then(Option::as_ref));
            }
        }
        None => builder.skip_chars(prompt.text.chars().count()),
    }
}

fn build_response(
    state: &AppState,
    ctx: &CompletionContext,
    outputs: &[ChoiceOutput],
) -> CompletionResponse {
    let tokenizer = state.engine.tokenizer();
    let choices = outputs
        .iter()
        .map(|o| {
            let prompt = ctx.prompt_of(o.index);
            let echoed = prompt.filter(|_| ctx.echo);
            let logprobs = ctx.logprobs.map(|top_n| {
                let mut builder = CompletionLogprobsBuilder::new(top_n);
                if let Some(prompt) = echoed {
                    push_prompt(state, &mut builder, prompt, o.prompt_logprobs.as_ref());
                }
                for t in &o.tokens {
                    builder.push(tokenizer, t.token_id, t.logprob.as_ref());
                }
                builder.take()
            });
            let text = match echoed {
                Some(p) => format!("{}{}", p.text, o.text),
                None => o.text.clone(),
            };
            CompletionChoice {
                index: o.index,
                text,
                logprobs,
                finish_reason: Some(o.finish_reason),
            }
        })
        .collect();
    CompletionResponse {
        id: ctx.id.clone(),
        object: "text_completion".to_owned(),
        created: ctx.created,
        model: ctx.model.clone(),
        choices,
        usage: Some(UsageTally::from_outputs(outputs, ctx.n).usage()),
    }
}

impl CompletionContext {
    fn chunk(&self, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> Event {
        sse::json_event(&CompletionResponse {
            id: self.id.clone(),
            object: "text_completion".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        })
    }

    fn choice_chunk(
        &self,
        index: u32,
        text: String,
        logprobs: Option<CompletionLogprobs>,
        finish_reason: Option<FinishReason>,
    ) -> Event {
        self.chunk(
            vec![CompletionChoice {
                index,
                text,
                logprobs,
                finish_reason,
            }],
            None,
        )
    }

    fn on_event(
        &self,
        state: &AppState,
        tally: &mut UsageTally,
        builders: &mut [CompletionLogprobsBuilder],
        index: u32,
        event: GenerateEvent,
    ) -> Vec<Event> {
        let Some(builder) = builders.get_mut(index as usize) else {
            return Vec::new();
        };
        match event {
            GenerateEvent::Started {
                prompt_tokens,
                cached_tokens,
                prompt_logprobs,
            } => {
                tally.on_prompt(index, prompt_tokens, cached_tokens);
                match self.prompt_of(index).filter(|_| self.echo) {
                    Some(prompt) => {
                        let logprobs = self.logprobs.map(|_| {
                            push_prompt(state, builder, prompt, prompt_logprobs.as_ref());
                            builder.take()
                        });
                        vec![self.choice_chunk(index, prompt.text.clone(), logprobs, None)]
                    }
                    None => Vec::new(),
                }
            }
            GenerateEvent::Token {
                token_id,
                text,
                logprob,
            } => {
                let logprobs = self.logprobs.map(|_| {
                    builder.push(state.engine.tokenizer(), token_id, logprob.as_ref());
                    builder.take()
                });
                if text.is_empty() && logprobs.is_none() {
                    return Vec::new();
                }
                vec![self.choice_chunk(index, text, logprobs, None)]
            }
            GenerateEvent::Finished {
                reason,
                text,
                usage,
            } => {
                tally.on_prompt(index, usage.prompt_tokens, usage.cached_tokens);
                tally.on_finished(usage.completion_tokens);
                vec![self.choice_chunk(index, text, None, Some(finish_reason(reason)))]
            }
            GenerateEvent::Error(message) => vec![sse::error_event(&ApiError::internal(message))],
        }
    }
}

fn stream(
    state: AppState,
    ctx: CompletionContext,
    streams: Vec<ChoiceEvents>,
    include_usage: bool,
) -> Response {
    let (tx, rx) = sse::channel();
    let top_n = ctx.logprobs.unwrap_or(0);
    let mut builders: Vec<CompletionLogprobsBuilder> = (0..streams.len())
        .map(|_| CompletionLogprobsBuilder::new(top_n))
        .collect();
    tokio::spawn(async move {
        let mut merged = futures::stream::select_all(streams);
        let mut tally = UsageTally::new(ctx.n);
        loop {
            let item = tokio::select! {
                _ = tx.closed() => return,
                item = merged.next() => item,
            };
            let Some((index, event)) = item else { break };
            for event in ctx.on_event(&state, &mut tally, &mut builders, index, event) {
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
