//! HF-folder tokenizer (tokenizer.json + tokenizer_config.json + chat_template.jinja) against
//! transformers' ids and chat renderings for the same SmolLM2 tokenizer.
#![allow(clippy::unwrap_used)]

mod tokenizer_common;

use arle_engine::tokenizer::Tokenizer;
use tokenizer_common::{assert_chat_parity, assert_encode_parity, fixture_dir};

fn hf_tokenizer() -> Tokenizer {
    Tokenizer::from_hf_dir(&fixture_dir().join("smollm2_hf")).unwrap()
}

#[test]
fn hf_folder_encode_decode_matches_transformers() {
    assert_encode_parity(&hf_tokenizer());
}

#[test]
fn hf_folder_chat_templates_match_transformers() {
    assert_chat_parity(&hf_tokenizer());
}

#[test]
fn hf_folder_missing_tokenizer_json_is_an_error() {
    let err = Tokenizer::from_hf_dir(&fixture_dir().join("no_such_dir")).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}
