//! Per-request token sampling on one logits row (`&mut [f32]`, `[vocab]`), pure CPU.
//!
//! Pipeline of [`Sampler::sample`] (vLLM's order):
//! 1. logprobs, when asked, from the raw row (see [`logprobs`] for why raw);
//! 2. repetition penalty (prompt + output), then frequency / presence penalties (output);
//! 3. greedy (`temperature < 1e-5`): argmax, ties to the lowest id; otherwise
//! 4. divide by temperature, top-k, top-p, min-p (this order, like vLLM v0; vLLM v1 applies
//!    min-p before top-k/top-p, which differs only when top-p and min-p are both set), and
//! 5. draw from the renormalised survivors with the request's seeded ChaCha20.
//!
//! Invariants: one `Sampler` per request (it owns the RNG stream and the penalty counts);
//! `output_ids` only grows between calls; the same seed, params and logits give the same
//! tokens; the row is scratch: after `sample` it holds the penalised, temperature-scaled
//! logits; NaN and infinite logits are never sampled. Cost per step is O(vocab) expected
//! (top-k and top-p use partial selection, no sort); buffers are reused across steps.

pub mod filters;
pub mod logprobs;
pub mod params;
pub mod penalties;
pub mod rng;

pub use logprobs::{prompt_logprobs, token_logprob};
pub use params::SamplerConfig;

use filters::Candidate;
use penalties::PenaltyState;
use rng::SamplerRng;

use crate::request::{SamplingParams, TokenLogprob};
use crate::EngineError;

/// The token chosen at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledToken {
    pub token_id: u32,
    /// `Some` when the request asked for logprobs.
    pub logprob: Option<TokenLogprob>,
}

/// Sampling state of one request.
#[derive(Clone, Debug)]
pub struct Sampler {
    config: SamplerConfig,
    rng: SamplerRng,
    penalties: PenaltyState,
    /// Reused: tokens still eligible during one step.
    candidates: Vec<Candidate>,
    /// Reused: copy of the raw row, kept only when logprobs are asked.
    raw_logits: Vec<f32>,
}

impl Sampler {
    /// Validates `params` and seeds the RNG (`seed`, or OS entropy).
    pub fn new(params: &SamplingParams) -> Result<Self, EngineError> {
        Self::from_config(SamplerConfig::from_params(params)?)
    }

    pub fn from_config(config: SamplerConfig) -> Result<Self, EngineError> {
        Ok(Self {
            rng: SamplerRng::new(config.seed)?,
            config,
            penalties: PenaltyState::default(),
            candidates: Vec::new(),
            raw_logits: Vec::new(),
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Chooses the next token from `logits` given the request's tokens so far. Errors when the
    /// row is empty or has no finite logit.
    pub fn sample(
        &mut self,
        logits: &mut [f32], // [vocab]
        prompt_ids: &[u32],
        output_ids: &[u32],
    ) -> Result<SampledToken, EngineError> {
        if self.config.num_top_logprobs.is_some() {
            self.raw_logits.clear();
            self.raw_logits.extend_from_slice(logits);
        }
        self.penalties
            .apply(&self.config, logits, prompt_ids, output_ids);
        let token_id = if self.config.is_greedy() {
            filters::argmax(logits)
        } else {
            self.sample_random(logits)
        }
        .ok_or_else(|| EngineError::Sampling("logits row has no finite value".into()))?;
        let logprob = match self.config.num_top_logprobs {
            Some(num_top) => Some(token_logprob(
                &self.raw_logits,
                token_id,
                num_top,
                &mut self.candidates,
            )?),
            None => None,
        };
        Ok(SampledToken { token_id, logprob })
    }

    fn sample_random(&mut self, logits: &mut [f32]) -> Option<u32> {
        let temperature = self.config.temperature;
        if temperature != 1.0 {
            logits.iter_mut().for_each(|logit| *logit /= temperature);
        }
        filters::collect_candidates(logits, &mut self.candidates)?;
        if let Some(top_k) = self.config.top_k {
            filters::keep_top_k(&mut self.candidates, top_k);
        }
        filters::keep_top_p(&mut self.candidates, self.config.top_p);
        filters::keep_min_p(&mut self.candidates, self.config.min_p);
        filters::draw(&self.candidates, self.rng.uniform_f64())
    }
}
