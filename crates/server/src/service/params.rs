//! Request fields -> engine [`SamplingParams`], plus the checks only the server can do
//! (prompt + completion budget within the context, token ids within the vocabulary).

use arle_api::{ChatCompletionRequest, CompletionRequest};
use arle_engine::SamplingParams;

use crate::error::ApiError;

/// The fields chat and text completions share, already in engine units.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CommonParams {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i64>,
    pub min_p: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub seed: Option<i64>,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub stop_token_ids: Vec<u32>,
    pub ignore_eos: bool,
    /// `Some(k)`: sampled-token logprobs with `k` alternatives.
    pub logprobs: Option<usize>,
    /// `Some(k)`: prompt-token logprobs with `k` alternatives.
    pub prompt_logprobs: Option<usize>,
}

impl CommonParams {
    pub fn from_chat(r: &ChatCompletionRequest) -> Self {
        Self {
            temperature: r.temperature,
            top_p: r.top_p,
            top_k: r.top_k,
            min_p: r.min_p,
            presence_penalty: r.presence_penalty,
            frequency_penalty: r.frequency_penalty,
            repetition_penalty: r.repetition_penalty,
            seed: r.seed,
            max_tokens: r.max_completion_tokens(),
            stop: r.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
            stop_token_ids: r.stop_token_ids.clone().unwrap_or_default(),
            ignore_eos: r.ignore_eos.unwrap_or(false),
            logprobs: (r.logprobs == Some(true)).then(|| r.top_logprobs.unwrap_or(0) as usize),
            prompt_logprobs: None,
        }
    }

    pub fn from_completion(r: &CompletionRequest) -> Self {
        let logprobs = r.logprobs.map(|k| k as usize);
        Self {
            temperature: r.temperature,
            top_p: r.top_p,
            top_k: r.top_k,
            min_p: r.min_p,
            presence_penalty: r.presence_penalty,
            frequency_penalty: r.frequency_penalty,
            repetition_penalty: r.repetition_penalty,
            seed: r.seed,
            max_tokens: r.max_tokens,
            stop: r.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
            stop_token_ids: r.stop_token_ids.clone().unwrap_or_default(),
            ignore_eos: r.ignore_eos.unwrap_or(false),
            logprobs,
            prompt_logprobs: if r.echo == Some(true) { logprobs } else { None },
        }
    }

    /// Engine parameters of choice `choice_index` of a prompt: with a seed, choice `i` uses
    /// `seed + i` so `n` seeded choices differ from each other but are reproducible.
    pub fn sampling_params(&self, choice_index: u32) -> SamplingParams {
        let defaults = SamplingParams::default();
        SamplingParams {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            top_k: self
                .top_k
                .filter(|k| *k > 0)
                .and_then(|k| usize::try_from(k).ok()),
            min_p: self.min_p.unwrap_or(defaults.min_p),
            presence_penalty: self.presence_penalty.unwrap_or(defaults.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(defaults.frequency_penalty),
            repetition_penalty: self
                .repetition_penalty
                .unwrap_or(defaults.repetition_penalty),
            seed: self
                .seed
                .map(|s| (s as u64).wrapping_add(u64::from(choice_index))),
            max_tokens: self
                .max_tokens
                .map(|m| usize::try_from(m).unwrap_or(usize::MAX)),
            stop: self.stop.clone(),
            stop_token_ids: self.stop_token_ids.clone(),
            ignore_eos: self.ignore_eos,
            logprobs: self.logprobs,
            prompt_logprobs: self.prompt_logprobs,
        }
    }
}

/// 400 `context_length_exceeded` when `prompt_tokens + max_tokens` (or `+ 1` without a
/// budget) exceeds `max_context_tokens`.
pub(crate) fn check_fits_context(
    prompt_tokens: usize,
    max_tokens: Option<u64>,
    max_context_tokens: usize,
    param: &str,
) -> Result<(), ApiError> {
    let completion = max_tokens.map_or(1, |m| usize::try_from(m).unwrap_or(usize::MAX));
    if prompt_tokens.saturating_add(completion) > max_context_tokens {
        return Err(ApiError::context_length(
            param,
            max_context_tokens,
            prompt_tokens,
            completion,
        ));
    }
    Ok(())
}

/// 400 naming `param` when an id is outside the vocabulary.
pub(crate) fn check_token_ids(ids: &[u32], vocab_size: usize, param: &str) -> Result<(), ApiError> {
    match ids.iter().find(|id| **id as usize >= vocab_size) {
        Some(id) => Err(ApiError::invalid_param(
            param,
            format!("token id {id} is out of range (vocabulary size {vocab_size})"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_map_to_engine_defaults() {
        assert_eq!(
            CommonParams::default().sampling_params(0),
            SamplingParams::default()
        );
    }

    #[test]
    fn seeds_differ_per_choice_and_top_k_zero_disables() {
        let p = CommonParams {
            seed: Some(-1),
            top_k: Some(0),
            ..CommonParams::default()
        };
        assert_eq!(p.sampling_params(0).seed, Some(u64::MAX));
        assert_eq!(p.sampling_params(1).seed, Some(0));
        assert_eq!(p.sampling_params(0).top_k, None);
        let p = CommonParams {
            top_k: Some(40),
            ..CommonParams::default()
        };
        assert_eq!(p.sampling_params(3).top_k, Some(40));
    }

    #[test]
    fn echo_with_logprobs_asks_for_prompt_logprobs() {
        let body = br#"{"model":"m","prompt":"x","echo":true,"logprobs":2}"#;
        let r = arle_api::parse_completion_request(body).unwrap();
        let p = CommonParams::from_completion(&r);
        assert_eq!((p.logprobs, p.prompt_logprobs), (Some(2), Some(2)));
        let body = br#"{"model":"m","prompt":"x","logprobs":2}"#;
        let p = CommonParams::from_completion(&arle_api::parse_completion_request(body).unwrap());
        assert_eq!(p.prompt_logprobs, None);
    }

    #[test]
    fn chat_logprobs_flag_and_count() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":3,"max_completion_tokens":9}"#;
        let p = CommonParams::from_chat(&arle_api::parse_chat_request(body).unwrap());
        assert_eq!(p.logprobs, Some(3));
        assert_eq!(p.max_tokens, Some(9));
        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":false}"#;
        let p = CommonParams::from_chat(&arle_api::parse_chat_request(body).unwrap());
        assert_eq!(p.logprobs, None);
    }

    #[test]
    fn context_check_counts_prompt_plus_budget() {
        assert!(check_fits_context(10, Some(22), 32, "prompt").is_ok());
        let e = check_fits_context(10, Some(23), 32, "prompt").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(e.param.as_deref(), Some("prompt"));
        assert!(check_fits_context(32, None, 32, "messages").is_err());
        assert!(check_fits_context(31, None, 32, "messages").is_ok());
    }

    #[test]
    fn token_ids_must_be_in_vocab() {
        assert!(check_token_ids(&[0, 99], 100, "prompt").is_ok());
        let e = check_token_ids(&[0, 100], 100, "stop_token_ids").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("stop_token_ids"));
    }
}
