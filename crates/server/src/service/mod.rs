//! The service layer: API requests -> engine requests -> API responses.
//!
//! - [`params`]: request fields -> [`arle_engine::SamplingParams`], context and vocab checks;
//! - [`generate`]: submitting the choices of one request (n per prompt), timing them for
//!   `/metrics`, collecting or merging their event streams, usage accounting;
//! - [`tokens`] / [`logprobs`]: token text and bytes, the two OpenAI logprob shapes;
//! - [`sse`]: server-sent events (`data: {...}` ... `data: [DONE]`);
//! - [`chat`] / [`completions`]: one function per endpoint.
//!
//! Invariants: choice `i` of prompt `p` has index `p * n + i`; every submitted engine request
//! is owned by exactly one stream, so dropping the response (client disconnect) aborts them all.

pub mod chat;
pub mod completions;
pub(crate) mod generate;
pub(crate) mod logprobs;
pub(crate) mod params;
pub(crate) mod sse;
pub(crate) mod tokens;

use crate::error::ApiError;
use crate::state::AppState;

/// 404 unless `model` is the served model id.
pub(crate) fn check_model(state: &AppState, model: &str) -> Result<(), ApiError> {
    if model == state.model_id {
        Ok(())
    } else {
        Err(ApiError::model_not_found(model))
    }
}

/// A response id: `prefix` + 24 random hex digits.
pub(crate) fn new_response_id(prefix: &str) -> String {
    format!("{prefix}{:024x}", rand::random::<u128>() >> 32)
}
