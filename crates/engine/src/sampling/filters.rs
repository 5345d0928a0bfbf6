//! Candidate filters of random sampling (top-k, top-p, min-p), the categorical draw, and
//! greedy argmax.
//!
//! Work happens on a reusable buffer of [`Candidate`]s holding only the finite logits; the
//! logits row itself is not masked. The order "best" is: larger logit, ties to the lower
//! token id, so every filter is deterministic and the kept sets equal those of a full sort.
//!
//! Invariants: every filter keeps at least one candidate when given at least one, and keeps
//! the most likely candidate, so the `max_logit` the weights are relative to stays the max;
//! a candidate's probability is its `weight` over the sum of the surviving weights (sums in
//! f64). Every filter is O(n) expected: top-k and top-p use partial selection, never a sort;
//! survivors are left in no particular order.

use std::cmp::Ordering;

/// One token still eligible for sampling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub token_id: u32,
    /// Logit after penalties and temperature.
    pub logit: f32,
    /// `exp(logit - max_logit)`: unnormalised probability, in `(0, 1]` up to underflow.
    pub weight: f32,
}

/// Best first: larger logit, then lower token id.
pub fn best_first(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit
        .total_cmp(&a.logit)
        .then(a.token_id.cmp(&b.token_id))
}

/// Refills `out` with every finite logit of the row and its weight; returns the max logit
/// (`None` when no logit is finite).
pub fn collect_candidates(
    logits: &[f32], // [vocab]
    out: &mut Vec<Candidate>,
) -> Option<f32> {
    out.clear();
    let max_logit = logits
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(None, |max: Option<f32>, l| {
            Some(max.map_or(l, |m| m.max(l)))
        })?;
    for (token_id, &logit) in (0u32..).zip(logits) {
        if logit.is_finite() {
            out.push(Candidate {
                token_id,
                logit,
                weight: (logit - max_logit).exp(),
            });
        }
    }
    Some(max_logit)
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

/// Keeps the `top_k` best candidates (exactly k; ties at the boundary go to lower ids).
pub fn keep_top_k(candidates: &mut Vec<Candidate>, top_k: usize) {
    let top_k = top_k.max(1);
    if top_k < candidates.len() {
        candidates.select_nth_unstable_by(top_k - 1, best_first);
        candidates.truncate(top_k);
    }
}

/// Keeps the smallest set of best candidates whose probability mass is `>= top_p` (at least
/// one). Finds its size by quickselect on mass: partition the undecided range at its middle,
/// and keep the upper half if its mass (plus the mass already kept) reaches the target, else
/// take it and continue below. O(n) expected, no sort.
pub fn keep_top_p(candidates: &mut Vec<Candidate>, top_p: f32) {
    if top_p >= 1.0 || candidates.len() <= 1 {
        return;
    }
    let target_mass = f64::from(top_p) * total_weight(candidates);
    // Invariant: candidates[..lo] are the lo best, with mass `mass_below_lo < target_mass`;
    // the answer k is in (lo, hi] and candidates[lo..hi] are the next hi - lo best.
    let (mut lo, mut hi, mut mass_below_lo) = (0, candidates.len(), 0.0f64);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        candidates[lo..hi].select_nth_unstable_by(mid - lo, best_first);
        let upper_mass = total_weight(&candidates[lo..mid]);
        if mass_below_lo + upper_mass >= target_mass {
            hi = mid;
        } else {
            mass_below_lo += upper_mass;
            lo = mid;
        }
    }
    candidates.truncate(hi);
}

/// Drops candidates whose probability is below `min_p` times the top probability, i.e.
/// `weight < min_p` (independent of normalisation).
pub fn keep_min_p(candidates: &mut Vec<Candidate>, min_p: f32) {
    if min_p > 0.0 {
        candidates.retain(|c| c.weight >= min_p);
    }
}

/// Draws one candidate with probability proportional to its weight, using `uniform` in
/// `[0, 1)`. `None` only when `candidates` is empty.
pub fn draw(candidates: &[Candidate], uniform: f64) -> Option<u32> {
    let threshold = uniform * total_weight(candidates);
    let mut cumulative = 0.0f64;
    let mut last_positive = None;
    for candidate in candidates.iter().filter(|c| c.weight > 0.0) {
        cumulative += f64::from(candidate.weight);
        last_positive = Some(candidate.token_id);
        if cumulative > threshold {
            return last_positive;
        }
    }
    // Rounding put the threshold at the very end: the last token with mass wins.
    last_positive.or(candidates.first().map(|c| c.token_id))
}

fn total_weight(candidates: &[Candidate]) -> f64 {
    candidates.iter().map(|c| f64::from(c.weight)).sum()
}
