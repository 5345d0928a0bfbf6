//! GGUF tokenizer construction for every supported `tokenizer.ggml.pre` (byte-level BPE) and for
//! SentencePiece `llama` vocabularies (merges rebuilt from scores, byte fallback), against the ids
//! transformers' `convert_gguf_tokenizer` gives for the same small trained vocabularies.
#![allow(clippy::unwrap_used)]

mod tokenizer_common;

use std::collections::BTreeMap;

use arle_engine::tokenizer::tokenizer_from_gguf_metadata;
use arle_models::gguf::GgufValue;
use serde_json::Value;
use tokenizer_common::{gguf_metadata, load_json};

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn synthetic_gguf_vocabularies_match_transformers() {
    let fixture = load_json("synthetic_gguf.json");
    let entries = fixture.as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for expected in [
        "gpt2/default",
        "gpt2/smollm",
        "gpt2/llama-bpe",
        "gpt2/qwen2",
        "llama/spm",
    ] {
        assert!(
            names.contains(&expected),
            "fixture lacks {expected}: {names:?}"
        );
    }
    for entry in entries {
        let name = entry["name"].as_str().unwrap();
        let tok = tokenizer_from_gguf_metadata(&gguf_metadata(&entry["metadata"])).unwrap();
        for case in entry["cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let got = tok.encode(text, false).unwrap();
            assert_eq!(got, ids(&case["ids"]), "{name}: encode {text:?}");
            let with_special = tok.encode(text, true).unwrap();
            assert_eq!(
                with_special,
                ids(&case["ids_with_special"]),
                "{name}: +special {text:?}"
            );
            let decoded = tok.decode(&got, false).unwrap();
            assert_eq!(
                decoded,
                case["decoded"].as_str().unwrap(),
                "{name}: decode {text:?}"
            );
        }
    }
}

#[test]
fn unsupported_tokenizer_model_is_an_error() {
    let mut meta = BTreeMap::new();
    meta.insert(
        "tokenizer.ggml.model".to_owned(),
        GgufValue::String("bert".into()),
    );
    meta.insert("tokenizer.ggml.tokens".to_owned(), GgufValue::Array(vec![]));
    let err = tokenizer_from_gguf_metadata(&meta).unwrap_err();
    assert!(err.to_string().contains("bert"), "{err}");
}
