//! Tokenizer: text <-> token ids, special tokens, the chat template, and streaming detokenization.
//!
//! [`Tokenizer`] wraps `tokenizers::Tokenizer` and is built from an HF model folder
//! ([`Tokenizer::from_hf_dir`]) or from GGUF metadata ([`Tokenizer::from_gguf`]). Both paths
//! produce the same behaviour HF transformers gives for the same files: identical ids, identical
//! decoded text, identical chat-template renderings.
//!
//! Invariants: ids are `u32` positions in the model vocabulary; `eos_ids` holds every id that ends
//! generation (the tokenizer's EOS plus `generation_config.json` / GGUF EOT ids), without repeats.

mod chat_json;
pub mod chat_template;
pub mod detokenizer;
mod gguf;
mod hf;
mod pretokenize;
mod strftime;

use std::path::Path;

use arle_models::gguf::GgufFile;

pub use chat_template::{ChatMessage, ChatTemplate, ContentPart, MessageContent, RenderOptions};
pub use detokenizer::IncrementalDetokenizer;
pub use gguf::tokenizer_from_gguf_metadata;

use crate::EngineError;

/// Special tokens a model declares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos_token: Option<String>,
    pub bos_id: Option<u32>,
    pub eos_token: Option<String>,
    /// Every id that ends generation, the tokenizer's EOS first.
    pub eos_ids: Vec<u32>,
    pub pad_id: Option<u32>,
}

/// A model's tokenizer with its special tokens and chat template.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    specials: SpecialTokens,
    chat_template: Option<String>,
}

fn tok_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Tokenizer(e.to_string())
}

impl Tokenizer {
    pub(crate) fn from_parts(
        inner: tokenizers::Tokenizer,
        specials: SpecialTokens,
        chat_template: Option<String>,
    ) -> Self {
        Self {
            inner,
            specials,
            chat_template,
        }
    }

    /// Loads `tokenizer.json`, `tokenizer_config.json`, and if present `chat_template.jinja`
    /// and `generation_config.json` from an HF model folder.
    pub fn from_hf_dir(dir: &Path) -> Result<Self, EngineError> {
        hf::load_hf_dir(dir)
    }

    /// Builds the tokenizer described by a GGUF file's `tokenizer.*` metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, EngineError> {
        tokenizer_from_gguf_metadata(&file.metadata)
    }

    /// Token ids of `text`; `add_special_tokens` adds BOS/EOS where the model asks for them.
    /// Special tokens written in the text (e.g. `<|im_start|>`) are always matched whole.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, EngineError> {
        let encoding = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(tok_err)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`; invalid UTF-8 (a split multi-byte character) decodes to U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, EngineError> {
        self.inner.decode(ids, skip_special_tokens).map_err(tok_err)
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The vocabulary spelling of one id (e.g. `Ġworld`), `None` when out of range.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Whether `id` is a special added token (dropped by `decode(.., skip_special_tokens=true)`).
    pub fn is_special(&self, id: u32) -> bool {
        self.inner
            .id_to_token(id)
            .is_some_and(|t| self.inner.get_added_vocabulary().is_special_token(&t))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn specials(&self) -> &SpecialTokens {
        &self.specials
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.specials.bos_id
    }

    /// The tokenizer's own EOS id (first of [`Self::eos_ids`]).
    pub fn eos_id(&self) -> Option<u32> {
        self.specials.eos_ids.first().copied()
    }

    pub fn eos_ids(&self) -> &[u32] {
        &self.specials.eos_ids
    }

    /// The raw Jinja chat template source, if the model ships one.
    pub fn chat_template_source(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The compiled chat template with this tokenizer's `bos_token` / `eos_token`, if any.
    pub fn chat_template(&self) -> Result<Option<ChatTemplate>, EngineError> {
        self.chat_template
            .as_deref()
            .map(|source| {
                ChatTemplate::new(
                    source,
                    self.specials.bos_token.clone(),
                    self.specials.eos_token.clone(),
                )
            })
            .transpose()
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
