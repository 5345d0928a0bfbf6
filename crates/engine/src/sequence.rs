//! [`ActiveRequest`]: the engine thread's per-request state between scheduler steps: the
//! sampler, detokenizer and stop checks, and the event channel back to the submitter.
//!
//! Invariant: events go out in the order `Started`, `Token`*, then exactly one `Finished` or
//! `Error`; after that the request is removed from the engine.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use crate::device_sampling::DeviceSampling;
use crate::request::{FinishReason, GenerateEvent, SamplingParams, TokenLogprob, Usage};
use crate::sampling::{logprobs::token_logprob, Sampler};
use crate::stop::{StopChecker, TokenStopper};
use crate::tokenizer::{IncrementalDetokenizer, Tokenizer};
use crate::EngineError;

/// Per-model facts every request needs.
pub(crate) struct ModelContext {
    pub(crate) tokenizer: Arc<Tokenizer>,
    /// Ids that end generation unless `ignore_eos` (model config and tokenizer, merged).
    pub(crate) eos_token_ids: Vec<u32>,
    pub(crate) max_context_tokens: usize,
}

pub(crate) struct ActiveRequest {
    events: UnboundedSender<GenerateEvent>,
    pub(crate) params: SamplingParams,
    pub(crate) prompt_ids: Vec<u32>,
    pub(crate) output_ids: Vec<u32>,
    sampler: Sampler,
    tokenizer: Arc<Tokenizer>,
    detokenizer: IncrementalDetokenizer,
    stop_strings: StopChecker,
    stop_tokens: TokenStopper,
    /// Prompt logprobs collected over prefill chunks (index = prompt position).
    prompt_logprobs: Option<Vec<Option<TokenLogprob>>>,
    started: bool,
    pub(crate) cached_tokens: usize,
    /// Seed of the device sampler's random stream (`params.seed`, or drawn at admission).
    device_seed: u64,
}

/// What the engine should do with a request after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    Continue,
    Finished(FinishReason),
}

impl ActiveRequest {
    pub(crate) fn new(
        events: UnboundedSender<GenerateEvent>,
        prompt_ids: Vec<u32>,
        params: SamplingParams,
        model: &ModelContext,
    ) -> Result<Self, EngineError> {
        let sampler = Sampler::new(&params)?;
        let params_seed = params.seed.unwrap_or_else(rand::random);
        let stop_tokens = TokenStopper::new(
            &params,
            &model.eos_token_ids,
            prompt_ids.len(),
            model.max_context_tokens,
        );
        let prompt_logprobs = params.prompt_logprobs.map(|_| vec![None; prompt_ids.len()]);
        Ok(Self {
            events,
            stop_strings: StopChecker::new(&params.stop),
            detokenizer: IncrementalDetokenizer::new(true),
            tokenizer: model.tokenizer.clone(),
            params,
            prompt_ids,
            output_ids: Vec::new(),
            sampler,
            stop_tokens,
            prompt_logprobs,
            started: false,
            cached_tokens: 0,
            device_seed: params_seed,
        })
    }

    /// Most tokens this request may still generate.
    pub(crate) fn max_output_tokens(&self) -> usize {
        self.stop_tokens.max_output_tokens()
    }

    /// Whether the client is gone (its stream was dropped).
    pub(crate) fn is_disconnected(&self) -> bool {
        self.events.is_closed()
    }

    /// Records prompt logprobs from `rows` (`[n, vocab]`), the logits at prompt positions
    /// `first_position..first_position + n`. Row at position p scores prompt token p + 1.
    pub(crate) fn on_prompt_logits(
        &mut self,
        rows: &[f32],
        vocab: usize,
        first_position: usize,
    ) -> Result<(), EngineError> {
        let (Some(acc), Some(num_top)) =
            (self.prompt_logprobs.as_mut(), self.params.prompt_logprobs)
        else {
            return Ok(());
        };
        let mut scratch = Vec::new();
        for (i, row) in rows.chunks_exact(vocab).enumerate() {
            let target = first_position + i + 1;
            if let Some(&token) = self.prompt_ids.get(target) {
                acc[target] = Some(token_logprob(row, token, num_top, &mut scratch)?);
            }
        }
        Ok(())
    }

    /// Sends `Started` once (after the first scheduled step, when the cache hit is known).
    pub(crate) fn ensure_started(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let _ = self.events.send(GenerateEvent::Started {
            prompt_tokens: self.prompt_ids.len(),
            cached_tokens: self.cached_tokens,
            prompt_logprobs: self.prompt_logprobs.take(),
        });
    }

    /// Whether this request's tokens may be sampled on the device (it asks for no logprobs,
    /// which only the host sampler computes).
    pub(crate) fn samples_on_device(&self) -> bool {
        self.params.logprobs.is_none() && self.params.prompt_logprobs.is_none()
    }

    /// This step's device-sampling parameters.
    pub(crate) fn device_sampling(&self) -> DeviceSampling<'_> {
        DeviceSampling::new(
            self.sampler.config(),
            self.device_seed,
            &self.prompt_ids,
            &self.output_ids,
        )
    }

    /// Samples the next token from `logits` (`[vocab]`), streams its text, and checks stops.
    /// Returns the token and whether the request continues.
    pub(crate) fn on_logits(&mut self, logits: &mut [f32]) -> Result<(u32, Progress), EngineError> {
        let sampled = self
            .sampler
            .sample(logits, &self.prompt_ids, &self.output_ids)?;
        self.on_token(sampled.token_id, sampled.logprob)
    }

    /// Takes `token` (sampled on the host or on the device), streams its text, checks stops.
    pub(crate) fn on_token(
        &mut self,
        token: u32,
        logprob: Option<TokenLogprob>,
    ) -> Result<(u32, Progress), EngineError> {
        self.ensure_started();
        let sampled = crate::sampling::SampledToken {
            token_id: token,
            logprob,
        };
        self.output_ids.push(token);
        if let Some(stop) = self.stop_tokens.check(token, self.output_ids.len()) {
            let reason = stop.finish_reason();
            let counts_text = matches!(stop, crate::stop::Stop::Length);
            // A stop token's own text is not part of the output; a length stop's is.
            let delta = if counts_text {
                self.detokenizer.push(&self.tokenizer, token)?
            } else {
                String::new()
            };
            let (text, string_stop) = self.stop_strings.push(&delta);
            self.emit_token(token, text, sampled.logprob);
            let reason = string_stop.map_or(reason, |s| s.finish_reason());
            return Ok((token, Progress::Finished(reason)));
        }
        let delta = self.detokenizer.push(&self.tokenizer, token)?;
        let (text, string_stop) = self.stop_strings.push(&delta);
        self.emit_token(token, text, sampled.logprob);
        match string_stop {
            Some(stop) => Ok((token, Progress::Finished(stop.finish_reason()))),
            None => Ok((token, Progress::Continue)),
        }
    }

    fn emit_token(&mut self, token_id: u32, text: String, logprob: Option<TokenLogprob>) {
        let _ = self.events.send(GenerateEvent::Token {
            token_id,
            text,
            logprob,
        });
    }

    /// Sends `Finished` with any held-back text that turned out not to be a stop.
    pub(crate) fn finish(mut self, reason: FinishReason) {
        self.ensure_started();
        let text = if self.stop_strings.is_stopped() {
            String::new()
        } else {
            let tail = self.detokenizer.finish(&self.tokenizer).unwrap_or_default();
            let (mut text, _) = self.stop_strings.push(&tail);
            text.push_str(&self.stop_strings.flush());
            text
        };
        let usage = Usage {
            prompt_tokens: self.prompt_ids.len(),
            completion_tokens: self.output_ids.len(),
            cached_tokens: self.cached_tokens,
        };
        let _ = self.events.send(GenerateEvent::Finished {
            reason,
            text,
            usage,
        });
    }

    /// Reports a failure and ends the request.
    pub(crate) fn fail(self, error: &EngineError) {
        let _ = self.events.send(GenerateEvent::Error(error.to_string()));
    }
}
