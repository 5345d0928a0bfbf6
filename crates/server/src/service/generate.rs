//! Submitting the engine requests of one API request, timing their events for `/metrics`,
//! collecting them (non-streaming) and usage accounting.
//!
//! Invariants: a [`ChoiceEvents`] stream ends right after its `Finished` or `Error` item (an
//! engine that goes away mid-request shows up as `Error`); dropping it aborts the request.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arle_api::{FinishReason, Usage};
use arle_engine::handle::RequestStream;
use arle_engine::{
    FinishReason as EngineFinish, GenerateEvent, GenerateRequest, SamplingParams, TokenLogprob,
};
use futures::Stream;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;

/// One engine request: choice `index` of an API request.
pub(crate) struct Job {
    pub index: u32,
    pub prompt_token_ids: Vec<u32>,
    pub params: SamplingParams,
}

/// The events of one choice, tagged with its index.
pub(crate) type ChoiceEvents = Pin<Box<dyn Stream<Item = (u32, GenerateEvent)> + Send>>;

/// Submits every job; on the first failure the already-submitted ones are dropped (aborted).
pub(crate) fn submit_all(state: &AppState, jobs: Vec<Job>) -> Result<Vec<ChoiceEvents>, ApiError> {
    let mut streams = Vec::with_capacity(jobs.len());
    for job in jobs {
        let request = GenerateRequest {
            prompt_token_ids: job.prompt_token_ids,
            params: job.params,
        };
        let stream = state.engine.submit(request)?;
        streams.push(timed(job.index, stream, state.metrics.clone()));
    }
    Ok(streams)
}

struct Timed {
    stream: RequestStream,
    metrics: Arc<Metrics>,
    submitted: Instant,
    last_token: Option<Instant>,
    done: bool,
}

/// Wraps a request stream: records TTFT, ITL and E2E latency, and turns a silent end into an
/// `Error` event.
fn timed(index: u32, stream: RequestStream, metrics: Arc<Metrics>) -> ChoiceEvents {
    let state = Timed {
        stream,
        metrics,
        submitted: Instant::now(),
        last_token: None,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, move |mut s| async move {
        if s.done {
            return None;
        }
        let event = s.stream.next().await.unwrap_or_else(|| {
            GenerateEvent::Error("the engine stopped before the request finished".to_owned())
        });
        let now = Instant::now();
        match &event {
            GenerateEvent::Token { .. } => {
                match s.last_token {
                    None => s.metrics.time_to_first_token.observe(now - s.submitted),
                    Some(last) => s.metrics.inter_token_latency.observe(now - last),
                }
                s.last_token = Some(now);
            }
            GenerateEvent::Finished { .. } => {
                s.metrics.e2e_request_latency.observe(now - s.submitted);
                s.done = true;
            }
            GenerateEvent::Error(_) => s.done = true,
            GenerateEvent::Started { .. } => {}
        }
        Some(((index, event), s))
    }))
}

pub(crate) fn finish_reason(reason: EngineFinish) -> FinishReason {
    match reason {
        EngineFinish::Stop => FinishReason::Stop,
        EngineFinish::Length => FinishReason::Length,
        EngineFinish::Abort => FinishReason::Abort,
    }
}

/// One generated token with its logprob (when asked for).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GeneratedToken {
    pub token_id: u32,
    pub logprob: Option<TokenLogprob>,
}

/// Everything one choice produced.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChoiceOutput {
    pub index: u32,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub prompt_logprobs: Option<Vec<Option<TokenLogprob>>>,
    pub text: String,
    pub tokens: Vec<GeneratedToken>,
    pub completion_tokens: usize,
    pub finish_reason: FinishReason,
}

async fn collect_one(mut events: ChoiceEvents) -> Result<ChoiceOutput, ApiError> {
    use futures::StreamExt;
    let mut out = ChoiceOutput {
        index: 0,
        prompt_tokens: 0,
        cached_tokens: 0,
        prompt_logprobs: None,
        text: String::new(),
        tokens: Vec::new(),
        completion_tokens: 0,
        finish_reason: FinishReason::Abort,
    };
    while let Some((index, event)) = events.next().await {
        out.index = index;
        match event {
            GenerateEvent::Started {
                prompt_tokens,
                cached_tokens,
                prompt_logprobs,
            } => {
                out.prompt_tokens = prompt_tokens;
                out.cached_tokens = cached_tokens;
                out.prompt_logprobs = prompt_logprobs;
            }
            GenerateEvent::Token {
                token_id,
                text,
                logprob,
            } => {
                out.text.push_str(&text);
                out.tokens.push(GeneratedToken { token_id, logprob });
            }
            GenerateEvent::Finished {
                reason,
                text,
                usage,
            } => {
                out.text.push_str(&text);
                out.finish_reason = finish_reason(reason);
                out.completion_tokens = usage.completion_tokens;
                out.prompt_tokens = usage.prompt_tokens;
                out.cached_tokens = usage.cached_tokens;
                return Ok(out);
            }
            GenerateEvent::Error(message) => return Err(ApiError::internal(message)),
        }
    }
    Err(ApiError::internal(
        "the engine stopped before the request finished",
    ))
}

/// Runs every choice to the end (concurrently), sorted by index.
pub(crate) async fn collect_all(streams: Vec<ChoiceEvents>) -> Result<Vec<ChoiceOutput>, ApiError> {
    let results = futures::future::join_all(streams.into_iter().map(collect_one)).await;
    let mut outputs = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    outputs.sort_by_key(|o| o.index);
    Ok(outputs)
}

/// Usage of a request with `n` choices per prompt: each prompt's tokens count once (taken from
/// its first reporting choice); completion tokens add up over all choices.
#[derive(Debug)]
pub(crate) struct UsageTally {
    choices_per_prompt: u32,
    /// prompt index -> (prompt tokens, cached tokens)
    prompts: BTreeMap<u32, (usize, usize)>,
    completion_tokens: usize,
}

impl UsageTally {
    pub fn new(choices_per_prompt: u32) -> Self {
        Self {
            choices_per_prompt: choices_per_prompt.max(1),
            prompts: BTreeMap::new(),
            completion_tokens: 0,
        }
    }

    pub fn on_prompt(&mut self, choice_index: u32, prompt_tokens: usize, cached_tokens: usize) {
        self.prompts
            .entry(choice_index / self.choices_per_prompt)
            .or_insert((prompt_tokens, cached_tokens));
    }

    pub fn on_finished(&mut self, completion_tokens: usize) {
        self.completion_tokens += completion_tokens;
    }

    pub fn usage(&self) -> Usage {
        let prompt = self.prompts.values().map(|p| p.0).sum();
        let cached = self.prompts.values().map(|p| p.1).sum();
        Usage::new(prompt, self.completion_tokens, cached)
    }

    pub fn from_outputs(outputs: &[ChoiceOutput], choices_per_prompt: u32) -> Self {
        let mut tally = Self::new(choices_per_prompt);
        for o in outputs {
            tally.on_prompt(o.index, o.prompt_tokens, o.cached_tokens);
            tally.on_finished(o.completion_tokens);
        }
        tally
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_each_prompt_once_and_sums_completions() {
        let mut t = UsageTally::new(2);
        t.on_prompt(0, 10, 4);
        t.on_prompt(1, 10, 10); // same prompt, second choice: ignored
        t.on_prompt(2, 7, 0);
        t.on_finished(3);
        t.on_finished(5);
        t.on_finished(1);
        let u = t.usage();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (17, 9, 26)
        );
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 4);
    }
}
