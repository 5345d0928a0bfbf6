//! Candidate filters of random sampling (top-k, top-p, min-p), the categorical draw, and
//! greedy argmax.
//!
//! Work happens on a reusable buffer of [`Candidate`]s (token id + temperature-scaled logit)
//! holding only finite logits; the logits row itself is not masked. Ordering is by logit
//! descending, ties to the lower token id, so every filter is deterministic.
//!
//! Invariants: every filter keeps at least one candidate when given at least one, and always
//! keeps the most likely candidate, so `max_logit` computed before filtering stays the max.
//! Probabilities are `exp(logit - max_logit)` normalised over the surviving candidates; exps
//! are f32, sums f64.

use std::cmp::Ordering;

/// One token still eligible for sampling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub token_id: u32,
    /// Logit after penalties and temperature.
    pub logit: f32,
}

/// Best first: larger logit, then lower token id.
pub fn best_first(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit
        .total_cmp(&a.logit)
        .then(a.token_id.cmp(&b.token_id))
}

/// Refills `out` with every finite logit of the row; returns the max logit (`None` if none).
pub fn collect_candidates(
    logits: &[f32], // [vocab]
    out: &mut Vec<Candidate>,
) -> Option<f32> {
    out.clear();
    let mut max_logit = f32::NEG_INFINITY;
    for (token_id, &logit) in (0u32..).zip(logits) {
        if logit.is_finite() {
            max_logit = max_logit.max(logit);
            out.push(Candidate { token_id, logit });
        }
    }
    (!out.is_empty()).then_some(max_logit)
}

/// Index of the largest finite logit, ties to the lowest id; `None` when no logit is finite.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(u32, f32)> = None;
    for (token_id, &logit) in (0u32..).zip(logits) {
        if logit.is_finite() && best.is_none_or(|(_, best_logit)| logit > best_logit) {
            best = Some((token_id, logit));
        }
    }
    best.map(|(token_id, _)| token_id)
}

/// Puts the `len` best candidates, sorted best first, at the front (partial selection).
pub(crate) fn sort_best_prefix(candidates: &mut [Candidate], len: usize) {
    let len = len.min(candidates.len());
    if len == 0 {
        return;
    }
    if len < candidates.len() {
        candidates.select_nth_unstable_by(len - 1, best_first);
    }
    candidates[..len].sort_unstable_by(best_first);
}

/// Keeps the `top_k` best candidates (exactly k; ties at the boundary go to lower ids).
pub fn keep_top_k(candidates: &mut Vec<Candidate>, top_k: usize) {
    let top_k = top_k.max(1);
    if top_k < candidates.len() {
        candidates.select_nth_unstable_by(top_k - 1, best_first);
        candidates.truncate(top_k);
    }
}

/// Keeps the smallest best-first prefix whose probability mass is `>= top_p` (at least one).
/// Leaves the survivors sorted best first. Sorts only as long a prefix as needed: first the
/// best 64, then 8x more, until the mass is reached.
pub fn keep_top_p(candidates: &mut Vec<Candidate>, top_p: f32, max_logit: f32) {
    if top_p >= 1.0 || candidates.len() <= 1 {
        return;
    }
    let total_weight: f64 = candidates.iter().map(|c| weight(c.logit, max_logit)).sum();
    let target_weight = f64::from(top_p) * total_weight;
    let mut sorted_len = candidates.len().min(64);
    loop {
        sort_best_prefix(candidates, sorted_len);
        let mut cumulative = 0.0f64;
        for (index, candidate) in candidates[..sorted_len].iter().enumerate() {
            cumulative += weight(candidate.logit, max_logit);
            if cumulative >= target_weight {
                candidates.truncate(index + 1);
                return;
            }
        }
        if sorted_len == candidates.len() {
            return; // rounding left the full mass a hair below the target: keep all
        }
        sorted_len = candidates.len().min(sorted_len * 8);
    }
}

/// Drops candidates whose probability is below `min_p` times the top probability, i.e.
/// `exp(logit - max_logit) < min_p` (independent of normalisation). Keeps order.
pub fn keep_min_p(candidates: &mut Vec<Candidate>, min_p: f32, max_logit: f32) {
    if min_p <= 0.0 {
        return;
    }
    let min_p = f64::from(min_p);
    candidates.retain(|c| weight(c.logit, max_logit) >= min_p);
}

/// Draws one candidate with probability proportional to `exp(logit - max_logit)`, using
/// `uniform` in `[0, 1)`. `None` only when `candidates` is empty.
pub fn draw(candidates: &[Candidate], max_logit: f32, uniform: f64) -> Option<u32> {
    let total_weight: f64 = candidates.iter().map(|c| weight(c.logit, max_logit)).sum();
    let threshold = uniform * total_weight;
    let mut cumulative = 0.0f64;
    let mut last_positive = None;
    for candidate in candidates {
        let w = weight(candidate.logit, max_logit);
        if w > 0.0 {
            cumulative += w;
            last_positive = Some(candidate.token_id);
            if cumulative > threshold {
                return last_positive;
            }
        }
    }
    // Rounding put the threshold at the very end: the last token with mass wins.
    last_positive.or(candidates.first().map(|c| c.token_id))
}

/// Unnormalised probability of a logit relative to the max logit.
fn weight(logit: f32, max_logit: f32) -> f64 {
    f64::from((logit - max_logit).exp())
}
