//! GGUF-metadata tokenizer (SmolLM2, gpt2 BPE with the `smollm` pre-tokenizer) against
//! transformers' `AutoTokenizer.from_pretrained(dir, gguf_file=...)` ids and chat renderings.
#![allow(clippy::unwrap_used)]

mod tokenizer_common;

use arle_engine::tokenizer::Tokenizer;
use arle_models::gguf::GgufFile;
use tokenizer_common::{assert_chat_parity, assert_encode_parity, smollm2_gguf};

fn gguf_tokenizer() -> Tokenizer {
    let file = GgufFile::open(&smollm2_gguf()).unwrap();
    Tokenizer::from_gguf(&file).unwrap()
}

#[test]
fn gguf_encode_decode_matches_transformers() {
    assert_encode_parity(&gguf_tokenizer());
}

#[test]
fn gguf_chat_template_matches_transformers() {
    assert_chat_parity(&gguf_tokenizer());
}
