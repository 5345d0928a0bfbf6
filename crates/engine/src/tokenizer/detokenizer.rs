//! Streaming detokenization: feed ids one at a time, get back only newly complete text.
//!
//! Works on a sliding window of ids (`prefix_offset..`): the text of the window minus the text
//! of its already-emitted part (`prefix_offset..read_offset`) is the new text. Text ending in
//! U+FFFD is held back, since it is usually an incomplete UTF-8 sequence (byte-level BPE or
//! byte-fallback pieces of one character); [`IncrementalDetokenizer::finish`] flushes it.
//!
//! Byte-fallback pieces (`<0xNN>`) are also held back until a non-byte piece follows: the
//! `ByteFallback` decoder decodes a whole run of them at once (skipped special tokens between
//! them do not end the run).
//!
//! Invariant: the window only advances past ids whose text ended on a complete character, so the
//! concatenation of everything returned (including `finish`) equals
//! `decode(context ++ ids) - decode(context)` — with no context, `decode(all ids)`.

use super::Tokenizer;
use crate::EngineError;

/// Whether `id` is a SentencePiece byte-fallback piece, spelled `<0xNN>`.
fn is_byte_piece(tokenizer: &Tokenizer, id: u32) -> bool {
    tokenizer.id_to_token(id).is_some_and(|piece| {
        let bytes = piece.as_bytes();
        bytes.len() == 6
            && piece.starts_with("<0x")
            && piece.ends_with('>')
            && bytes[3..5].iter().all(u8::is_ascii_hexdigit)
    })
}

/// Per-sequence streaming decoder state.
#[derive(Clone, Debug, Default)]
pub struct IncrementalDetokenizer {
    ids: Vec<u32>,
    /// Start of the decode window.
    prefix_offset: usize,
    /// End of the ids whose text was already returned.
    read_offset: usize,
    /// Text of `ids[prefix_offset..read_offset]`.
    prefix_text: String,
    skip_special_tokens: bool,
}

impl IncrementalDetokenizer {
    pub fn new(skip_special_tokens: bool) -> Self {
        Self {
            skip_special_tokens,
            ..Self::default()
        }
    }

    /// Starts after `context_ids` (e.g. the prompt's last few ids), so the first generated
    /// token is decoded in context (SentencePiece leading spaces). Context text is not returned.
    pub fn with_context(
        tokenizer: &Tokenizer,
        context_ids: &[u32],
        skip_special_tokens: bool,
    ) -> Result<Self, EngineError> {
        let prefix_text = tokenizer.decode(context_ids, skip_special_tokens)?;
        Ok(Self {
            ids: context_ids.to_vec(),
            prefix_offset: 0,
            read_offset: context_ids.len(),
            prefix_text,
            skip_special_tokens,
        })
    }

    /// Adds one id; returns the newly complete text (often empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String, EngineError> {
        self.ids.push(id);
        let skipped = self.skip_special_tokens && tokenizer.is_special(id);
        if skipped || is_byte_piece(tokenizer, id) {
            // A run of byte-fallback pieces decodes as a unit (one invalid byte turns the whole
            // run into U+FFFDs), so its text is only final once a non-byte piece follows; a
            // skipped special token adds no text and does not end such a run.
            return Ok(String::new());
        }
        let text = tokenizer.decode(&self.ids[self.prefix_offset..], self.skip_special_tokens)?;
        if text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        let Some(new_text) = text.strip_prefix(self.prefix_text.as_str()) else {
            // The window's earlier text changed (should not happen); wait for `finish`.
            return Ok(String::new());
        };
        let new_text = new_text.to_owned();
        // Slide the window: the newly read ids become the prefix for the next step.
        self.prefix_text =
            tokenizer.decode(&self.ids[self.read_offset..], self.skip_special_tokens)?;
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(new_text)
    }

    /// Returns whatever text is still held back (e.g. a trailing incomplete character as U+FFFD).
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<String, EngineError> {
        if self.read_offset == self.ids.len() {
            return Ok(String::new());
        }
        let text = tokenizer.decode(&self.ids[self.prefix_offset..], self.skip_special_tokens)?;
        let rest = match text.strip_prefix(self.prefix_text.as_str()) {
            Some(rest) => rest.to_owned(),
            None => text
                .chars()
                .skip(self.prefix_text.chars().count())
                .collect(),
        };
        self.prefix_text =
            tokenizer.decode(&self.ids[self.read_offset..], self.skip_special_tokens)?;
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(rest)
    }

    /// All ids fed so far (context included).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}
