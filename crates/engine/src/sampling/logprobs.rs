//! Log-probabilities with OpenAI semantics: the chosen token's logprob plus the `n` most likely
//! alternatives (best first; the chosen token may be among them), and prompt logprobs for
//! `echo` / loglikelihood scoring.
//!
//! Choice (like vLLM's default `logprobs_mode = "raw_logprobs"`): logprobs are the log-softmax
//! of the *raw* model logits, before penalties, temperature and top-k/top-p/min-p. They
//! describe the model, not the sampler, so they are the same for every sampling setting and
//! a filtered-out alternative still shows its model probability.
//!
//! Invariants: NaN logits count as `-inf`; a row with no finite logit is an error; the top
//! list has `min(n, number of finite logits)` entries, ties ordered by lower token id.

use super::filters::{best_first, collect_candidates, Candidate};
use crate::request::TokenLogprob;
use crate::EngineError;

/// `log(sum(exp(row)))` over the finite entries, computed stably; `None` if none is finite.
pub fn log_normaliser(row: &[f32]) -> Option<f32> {
    let max_logit = row
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(None, |max: Option<f32>, l| {
            Some(max.map_or(l, |m| m.max(l)))
        })?;
    let sum_exp: f64 = row
        .iter()
        .filter(|l| l.is_finite())
        .map(|&l| f64::from((l - max_logit).exp()))
        .sum();
    Some(max_logit + sum_exp.ln() as f32)
}

/// The logprob of `token_id` under `row` and the `num_top` best alternatives. O(vocab) for
/// `num_top <= 64`. `scratch` is a reusable buffer (its contents are overwritten).
pub fn token_logprob(
    row: &[f32], // [vocab]
    token_id: u32,
    num_top: usize,
    scratch: &mut Vec<Candidate>,
) -> Result<TokenLogprob, EngineError> {
    let normaliser = log_normaliser(row)
        .ok_or_else(|| EngineError::Sampling("logits row has no finite value".into()))?;
    let raw_logit = row.get(token_id as usize).copied().ok_or_else(|| {
        EngineError::Sampling(format!("token {token_id} outside a vocab of {}", row.len()))
    })?;
    let logprob = if raw_logit.is_nan() {
        f32::NEG_INFINITY
    } else {
        raw_logit - normaliser
    };
    let top = best_logits(row, num_top, scratch)
        .into_iter()
        .map(|(id, logit)| (id, logit - normaliser))
        .collect();
    Ok(TokenLogprob {
        token_id,
        logprob,
        top,
    })
}

/// Up to this many alternatives are found by one streaming pass; more by partial selection.
const MAX_STREAMED_TOP: usize = 64;

/// The `num_top` best finite (token id, logit) pairs, best first, ties to the lower id.
fn best_logits(row: &[f32], num_top: usize, scratch: &mut Vec<Candidate>) -> Vec<(u32, f32)> {
    if num_top == 0 {
        return Vec::new();
    }
    if num_top > MAX_STREAMED_TOP {
        collect_candidates(row, scratch);
        let num_top = num_top.min(scratch.len());
        if num_top < scratch.len() {
            scratch.select_nth_unstable_by(num_top.saturating_sub(1), best_first);
        }
        scratch.truncate(num_top);
        scratch.sort_unstable_by(best_first);
        return scratch.iter().map(|c| (c.token_id, c.logit)).collect();
    }
    // Sorted best first; a new logit enters only if it beats the current last entry (an
    // equal logit has a higher id, so it loses).
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(num_top + 1);
    for (token_id, &logit) in (0u32..).zip(row) {
        let beats_last = best.len() < num_top || best.last().is_some_and(|&(_, l)| logit > l);
        if logit.is_finite() && beats_last {
            let position = best.partition_point(|&(_, l)| l >= logit);
            best.insert(position, (token_id, logit));
            best.truncate(num_top);
        }
    }
    best
}

/// Prompt logprobs: entry `i + 1` is the logprob of `prompt_ids[i + 1]` under row `i`; entry 0
/// is `None` (nothing predicts the first token). Needs at least `prompt_ids.len() - 1` rows;
/// a last row that predicts the first generated token is ignored.
pub fn prompt_logprobs(
    logits_rows: &[f32], // [n_rows, vocab_size]
    vocab_size: usize,
    prompt_ids: &[u32],
    num_top: usize,
) -> Result<Vec<Option<TokenLogprob>>, EngineError> {
    let num_rows = logits_rows.len().checked_div(vocab_size).unwrap_or(0);
    if vocab_size == 0 || num_rows * vocab_size != logits_rows.len() {
        return Err(EngineError::Sampling(format!(
            "{} logits do not make rows of {vocab_size}",
            logits_rows.len()
        )));
    }
    let num_needed = prompt_ids.len().saturating_sub(1);
    if num_rows < num_needed {
        return Err(EngineError::Sampling(format!(
            "prompt logprobs of {} tokens need {num_needed} rows, got {num_rows}",
            prompt_ids.len()
        )));
    }
    let mut scratch = Vec::new();
    let mut out = Vec::with_capacity(prompt_ids.len());
    if !prompt_ids.is_empty() {
        out.push(None);
    }
    for (row, &next_id) in logits_rows
        .chunks_exact(vocab_size)
        .zip(prompt_ids.iter().skip(1))
    {
        out.push(Some(token_logprob(row, next_id, num_top, &mut scratch)?));
    }
    Ok(out)
}
