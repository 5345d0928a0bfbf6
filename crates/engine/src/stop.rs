//! When a generation stops: stop strings that may be split across tokens ([`StopChecker`]),
//! and stop token ids, EOS and length limits ([`TokenStopper`]).
//!
//! [`StopChecker`] is fed the detokenized text deltas. Invariants:
//! - the emitted text never contains a stop string, and emitted text is never taken back;
//! - it holds back the longest suffix that is a proper prefix of some stop string (only
//!   that), so text that cannot start a stop string is emitted at once;
//! - the stop that wins is the one that *completes* first (earliest end in the text; at the
//!   same end, the longest), so the result does not depend on how the text was split into
//!   deltas; the output is truncated before the winning stop string;
//! - empty stop strings are ignored; after a stop every later push yields nothing;
//! - [`StopChecker::flush`] at the end releases the held text (it was not a stop).
//!
//! [`TokenStopper`] checks each sampled token: EOS (unless `ignore_eos`) and `stop_token_ids`
//! first, then the length limit, so a stop token that is also the last allowed token reports
//! `Stop`. The stop token's own text is not part of the output.

use crate::request::{FinishReason, SamplingParams};

/// Why a generation stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The request's stop string at `index` (in the request's `stop` list) matched.
    String { index: usize },
    /// A token from the request's `stop_token_ids`.
    TokenId(u32),
    /// The model's end-of-sequence token.
    Eos(u32),
    /// `max_tokens` or the context limit was reached.
    Length,
}

impl Stop {
    pub fn finish_reason(self) -> FinishReason {
        match self {
            Stop::String { .. } | Stop::TokenId(_) | Stop::Eos(_) => FinishReason::Stop,
            Stop::Length => FinishReason::Length,
        }
    }
}

/// Stop-string matcher over a stream of text deltas (see the module invariants).
#[derive(Clone, Debug, Default)]
pub struct StopChecker {
    /// (index in the request's list, stop string); empty strings removed.
    stop_strings: Vec<(usize, String)>,
    /// Longest stop string, in bytes.
    max_stop_bytes: usize,
    /// Text received but not yet emitted: a possible start of a stop string.
    held: String,
    stopped: bool,
}

impl StopChecker {
    pub fn new(stop_strings: &[String]) -> Self {
        let stop_strings: Vec<(usize, String)> = stop_strings
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(index, s)| (index, s.clone()))
            .collect();
        let max_stop_bytes = stop_strings.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
        Self {
            stop_strings,
            max_stop_bytes,
            held: String::new(),
            stopped: false,
        }
    }

    /// Feeds one text delta; returns the text that is safe to emit now and the stop, if one
    /// completed (the returned text then ends right before the stop string).
    pub fn push(&mut self, delta: &str) -> (String, Option<Stop>) {
        if self.stopped {
            return (String::new(), None);
        }
        self.held.push_str(delta);
        if let Some((start, index)) = self.first_completed_stop() {
            self.held.truncate(start);
            self.stopped = true;
            return (std::mem::take(&mut self.held), Some(Stop::String { index }));
        }
        let hold_bytes = self.longest_stop_prefix_suffix();
        let emit_bytes = self.held.len() - hold_bytes;
        (self.held.drain(..emit_bytes).collect(), None)
    }

    /// Releases the held text at the end of generation (empty after a stop).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Text received but not yet emitted.
    pub fn held_text(&self) -> &str {
        &self.held
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// (start byte, stop index) of the stop that ends first in `held`; at the same end, the
    /// longest one.
    fn first_completed_stop(&self) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize, usize)> = None; // (end, start, index)
        for (index, stop) in &self.stop_strings {
            if let Some(start) = self.held.find(stop.as_str()) {
                let end = start + stop.len();
                if best
                    .is_none_or(|(best_end, best_start, _)| (end, start) < (best_end, best_start))
                {
                    best = Some((end, start, *index));
                }
            }
        }
        best.map(|(_, start, index)| (start, index))
    }

    /// Bytes of the longest suffix of `held` that is a proper prefix of some stop string.
    fn longest_stop_prefix_suffix(&self) -> usize {
        let len = self.held.len();
        let max_hold = len.min(self.max_stop_bytes.saturating_sub(1));
        (1..=max_hold)
            .rev()
            .find(|&hold| {
                let start = len - hold;
                self.held.is_char_boundary(start)
                    && self
                        .stop_strings
                        .iter()
                        .any(|(_, stop)| stop.starts_with(&self.held[start..]))
            })
            .unwrap_or(0)
    }
}

/// Per-token stop conditions of one request: EOS, stop token ids, and the output length limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenStopper {
    /// Empty when the request sets `ignore_eos`.
    eos_token_ids: Vec<u32>,
    stop_token_ids: Vec<u32>,
    /// `min(max_tokens, max_context_tokens - num_prompt_tokens)`.
    max_output_tokens: usize,
}

impl TokenStopper {
    /// `eos_token_ids`: the model's end tokens (a model may have several, e.g. `<|im_end|>`
    /// and `<|endoftext|>`); `max_context_tokens`: the model's context limit.
    pub fn new(
        params: &SamplingParams,
        eos_token_ids: &[u32],
        num_prompt_tokens: usize,
        max_context_tokens: usize,
    ) -> Self {
        let context_room = max_context_tokens.saturating_sub(num_prompt_tokens);
        Self {
            eos_token_ids: if params.ignore_eos {
                Vec::new()
            } else {
                eos_token_ids.to_vec()
            },
            stop_token_ids: params.stop_token_ids.clone(),
            max_output_tokens: params
                .max_tokens
                .map_or(context_room, |m| m.min(context_room)),
        }
    }

    pub fn max_output_tokens(&self) -> usize {
        self.max_output_tokens
    }

    /// Checks the token just sampled; `num_output_tokens` counts it.
    pub fn check(&self, token_id: u32, num_output_tokens: usize) -> Option<Stop> {
        if self.eos_token_ids.contains(&token_id) {
            Some(Stop::Eos(token_id))
        } else if self.stop_token_ids.contains(&token_id) {
            Some(Stop::TokenId(token_id))
        } else if num_output_tokens >= self.max_output_tokens {
            Some(Stop::Length)
        } else {
            None
        }
    }
}
