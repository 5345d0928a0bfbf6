//! Repetition, frequency and presence penalties, applied in place to one logits row.
//!
//! Formulas (vLLM's, which follow HF and OpenAI):
//! - repetition (HF, multiplicative), over every distinct token seen in prompt + output:
//!   `logit > 0 ? logit / p : logit * p`; `p == 1` disables.
//! - frequency / presence (OpenAI, additive), over output tokens only:
//!   `logit -= count * frequency_penalty + (count > 0) * presence_penalty`.
//!
//! [`PenaltyState`] keeps the distinct prompt tokens and the output token counts of one
//! request, updated incrementally. Invariant: between calls the output ids only grow by
//! appending; a shorter or rewritten output (detected by length and last token) is recounted
//! from scratch, as is a prompt of a different length. Token ids outside the row are ignored.

use std::collections::{HashMap, HashSet};

use super::params::SamplerConfig;

/// The HF repetition penalty of one logit.
pub fn repetition_penalised(logit: f32, penalty: f32) -> f32 {
    if logit > 0.0 {
        logit / penalty
    } else {
        logit * penalty
    }
}

/// Applies the repetition penalty once to each id in `distinct_ids` (ids must not repeat).
pub fn apply_repetition_penalty(
    logits: &mut [f32], // [vocab]
    distinct_ids: impl IntoIterator<Item = u32>,
    penalty: f32,
) {
    for id in distinct_ids {
        if let Some(logit) = logits.get_mut(id as usize) {
            *logit = repetition_penalised(*logit, penalty);
        }
    }
}

/// Applies the OpenAI frequency and presence penalties from `(token id, output count)` pairs.
pub fn apply_frequency_presence_penalties(
    logits: &mut [f32], // [vocab]
    output_counts: impl IntoIterator<Item = (u32, u32)>,
    frequency_penalty: f32,
    presence_penalty: f32,
) {
    for (id, count) in output_counts {
        if count == 0 {
            continue;
        }
        if let Some(logit) = logits.get_mut(id as usize) {
            *logit -= count as f32 * frequency_penalty + presence_penalty;
        }
    }
}

/// Token statistics of one request, kept across steps for the penalties.
#[derive(Clone, Debug, Default)]
pub struct PenaltyState {
    prompt_distinct_ids: HashSet<u32>,
    /// Prompt length the set was built from; `None` before the first build.
    prompt_len_counted: Option<usize>,
    output_counts: HashMap<u32, u32>,
    output_len_counted: usize,
    last_output_counted: Option<u32>,
}

impl PenaltyState {
    /// Applies the penalties `config` enables to `logits` (no-op when none is enabled).
    pub fn apply(
        &mut self,
        config: &SamplerConfig,
        logits: &mut [f32], // [vocab]
        prompt_ids: &[u32],
        output_ids: &[u32],
    ) {
        let repetition = config.has_repetition_penalty();
        let output_penalties = config.has_output_penalties();
        if !repetition && !output_penalties {
            return;
        }
        if repetition {
            self.sync_prompt(prompt_ids);
        }
        self.sync_output(output_ids);
        if repetition {
            let prompt_ids = self.prompt_distinct_ids.iter().copied();
            let output_only = self
                .output_counts
                .keys()
                .copied()
                .filter(|id| !self.prompt_distinct_ids.contains(id));
            apply_repetition_penalty(
                logits,
                prompt_ids.chain(output_only),
                config.repetition_penalty,
            );
        }
        if output_penalties {
            apply_frequency_presence_penalties(
                logits,
                self.output_counts.iter().map(|(&id, &count)| (id, count)),
                config.frequency_penalty,
                config.presence_penalty,
            );
        }
    }

    fn sync_prompt(&mut self, prompt_ids: &[u32]) {
        if self.prompt_len_counted == Some(prompt_ids.len()) {
            return;
        }
        self.prompt_distinct_ids.clear();
        self.prompt_distinct_ids.extend(prompt_ids.iter().copied());
        self.prompt_len_counted = Some(prompt_ids.len());
    }

    fn sync_output(&mut self, output_ids: &[u32]) {
        let counted = self.output_len_counted;
        let rewritten = output_ids.len() < counted
            || (counted > 0 && output_ids.get(counted - 1).copied() != self.last_output_counted);
        if rewritten {
            self.output_counts.clear();
            self.output_len_counted = 0;
        }
        let new_ids = output_ids.get(self.output_len_counted..).unwrap_or(&[]);
        for &id in new_ids {
            *self.output_counts.entry(id).or_insert(0) += 1;
        }
        self.output_len_counted = output_ids.len();
        self.last_output_counted = output_ids.last().copied();
    }
}
