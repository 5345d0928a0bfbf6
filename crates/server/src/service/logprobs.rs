//! The two OpenAI logprob shapes, built from engine [`TokenLogprob`]s:
//! chat `{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}` and the legacy
//! completions arrays `{tokens, token_logprobs, top_logprobs, text_offset}`.
//!
//! Invariant (completions): the four arrays stay parallel; `text_offset[i]` is the char offset
//! of token `i` in the choice text (counting from the start of the echoed prompt, if any).

use std::collections::BTreeMap;

use arle_api::{ChatTokenLogprob, CompletionLogprobs, TopLogprob};
use arle_engine::tokenizer::Tokenizer;
use arle_engine::TokenLogprob;

use super::tokens::{bytes_to_token_string, token_bytes};

fn token_string_and_bytes(tokenizer: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = token_bytes(tokenizer, id);
    (bytes_to_token_string(&bytes), bytes)
}

/// One chat logprob entry with at most `top_n` alternatives.
pub(crate) fn chat_entry(
    tokenizer: &Tokenizer,
    lp: &TokenLogprob,
    top_n: usize,
) -> ChatTokenLogprob {
    let (token, bytes) = token_string_and_bytes(tokenizer, lp.token_id);
    let top_logprobs = lp
        .top
        .iter()
        .take(top_n)
        .map(|(id, logprob)| {
            let (token, bytes) = token_string_and_bytes(tokenizer, *id);
            TopLogprob {
                token,
                logprob: *logprob,
                bytes: Some(bytes),
            }
        })
        .collect();
    ChatTokenLogprob {
        token,
        logprob: lp.logprob,
        bytes: Some(bytes),
        top_logprobs,
    }
}

/// Accumulates completions logprobs token by token.
#[derive(Debug, Default)]
pub(crate) struct CompletionLogprobsBuilder {
    offset_chars: usize,
    top_n: usize,
    logprobs: CompletionLogprobs,
}

impl CompletionLogprobsBuilder {
    pub fn new(top_n: usize) -> Self {
        Self {
            top_n,
            ..Self::default()
        }
    }

    /// Appends a token; `lp == None` gives `null` logprobs (the first prompt token).
    pub fn push(&mut self, tokenizer: &Tokenizer, token_id: u32, lp: Option<&TokenLogprob>) {
        let (token, _) = token_string_and_bytes(tokenizer, token_id);
        let out = &mut self.logprobs;
        out.text_offset.push(self.offset_chars);
        self.offset_chars += token.chars().count();
        out.token_logprobs.push(lp.map(|l| l.logprob));
        out.top_logprobs.push(lp.map(|l| {
            let mut top: BTreeMap<String, f32> = l
                .top
                .iter()
                .take(self.top_n)
                .map(|(id, logprob)| (token_string_and_bytes(tokenizer, *id).0, *logprob))
                .collect();
            top.entry(token.clone()).or_insert(l.logprob);
            top
        }));
        out.tokens.push(token);
    }

    /// Moves the offset past text that has no logprobs (e.g. an echoed prompt without them).
    pub fn skip_chars(&mut self, num_chars: usize) {
        self.offset_chars += num_chars;
    }

    /// The arrays so far; the builder keeps counting offsets (for streaming chunks).
    pub fn take(&mut self) -> CompletionLogprobs {
        std::mem::take(&mut self.logprobs)
    }
}
