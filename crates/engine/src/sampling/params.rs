//! [`SamplerConfig`]: the sampling knobs of one request, validated once when the request
//! arrives so that the per-step code never re-checks them.
//!
//! Invariants after [`SamplerConfig::from_params`]: `temperature` is finite and `>= 0`;
//! `top_p` is in `(0, 1]`; `top_k` is `None` or `>= 1`; `min_p` is in `[0, 1]`;
//! `repetition_penalty` is finite and `> 0`; presence/frequency penalties are in `[-2, 2]`
//! (the OpenAI / vLLM range).

use crate::request::SamplingParams;
use crate::EngineError;

/// Temperatures below this are treated as greedy (vLLM's `_SAMPLING_EPS`): dividing logits by
/// a tiny temperature overflows to infinities, and the result is argmax anyway.
pub const GREEDY_TEMPERATURE_EPS: f32 = 1e-5;

/// Validated sampling knobs of one request (see the module invariants).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    pub temperature: f32,
    pub top_p: f32,
    /// `None` disables (the API's `0` also disables).
    pub top_k: Option<usize>,
    pub min_p: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub repetition_penalty: f32,
    pub seed: Option<u64>,
    /// `Some(n)`: report the sampled token's logprob and the `n` best alternatives.
    pub num_top_logprobs: Option<usize>,
}

impl SamplerConfig {
    /// Checks the ranges and normalises the "disabled" spellings (`top_k == 0`).
    pub fn from_params(params: &SamplingParams) -> Result<Self, EngineError> {
        let invalid = |what: String| Err(EngineError::InvalidRequest(what));
        if !params.temperature.is_finite() || params.temperature < 0.0 {
            return invalid(format!(
                "temperature must be >= 0, got {}",
                params.temperature
            ));
        }
        if !(params.top_p > 0.0 && params.top_p <= 1.0) {
            return invalid(format!("top_p must be in (0, 1], got {}", params.top_p));
        }
        if !(0.0..=1.0).contains(&params.min_p) {
            return invalid(format!("min_p must be in [0, 1], got {}", params.min_p));
        }
        if !params.repetition_penalty.is_finite() || params.repetition_penalty <= 0.0 {
            return invalid(format!(
                "repetition_penalty must be > 0, got {}",
                params.repetition_penalty
            ));
        }
        for (name, value) in [
            ("presence_penalty", params.presence_penalty),
            ("frequency_penalty", params.frequency_penalty),
        ] {
            if !(-2.0..=2.0).contains(&value) {
                return invalid(format!("{name} must be in [-2, 2], got {value}"));
            }
        }
        Ok(Self {
            temperature: params.temperature,
            top_p: params.top_p,
            top_k: params.top_k.filter(|&k| k > 0),
            min_p: params.min_p,
            presence_penalty: params.presence_penalty,
            frequency_penalty: params.frequency_penalty,
            repetition_penalty: params.repetition_penalty,
            seed: params.seed,
            num_top_logprobs: params.logprobs,
        })
    }

    /// Greedy decoding: argmax after penalties, no randomness.
    pub fn is_greedy(&self) -> bool {
        self.temperature < GREEDY_TEMPERATURE_EPS
    }

    pub fn has_repetition_penalty(&self) -> bool {
        self.repetition_penalty != 1.0
    }

    pub fn has_output_penalties(&self) -> bool {
        self.presence_penalty != 0.0 || self.frequency_penalty != 0.0
    }
}
