//! Shared helpers for the tokenizer tests: fixture loading and the parity checks against the
//! HF transformers outputs in `tests/fixtures/tokenizer/` (made by scripts/make_tokenizer_fixtures.py).
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use arle_engine::tokenizer::{ChatMessage, ChatTemplate, RenderOptions, Tokenizer};
use arle_models::gguf::GgufValue;
use serde_json::Value;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

pub fn load_json(name: &str) -> Value {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The SmolLM2 GGUF: `ARLE_SMOLLM2_GGUF`, else `<repo>/.cache/models/...`; panics when absent.
pub fn smollm2_gguf() -> PathBuf {
    let path = std::env::var_os("ARLE_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.exists(),
        "SmolLM2 GGUF not found at {}: run scripts/fetch-test-assets.sh (or set ARLE_SMOLLM2_GGUF)",
        path.display()
    );
    path
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// Every corpus string encodes to transformers' ids and decodes to transformers' text.
pub fn assert_encode_parity(tok: &Tokenizer) {
    let fixture = load_json("smollm2_encode.json");
    let meta = &fixture["meta"];
    assert_eq!(
        tok.vocab_size() as u64,
        meta["vocab_size"].as_u64().unwrap()
    );
    assert_eq!(tok.bos_id().map(u64::from), meta["bos_token_id"].as_u64());
    assert_eq!(tok.eos_id().map(u64::from), meta["eos_token_id"].as_u64());
    assert_eq!(
        tok.specials().bos_token.as_deref(),
        meta["bos_token"].as_str()
    );
    assert_eq!(
        tok.specials().eos_token.as_deref(),
        meta["eos_token"].as_str()
    );
    for (id, text) in meta["token_texts"].as_object().unwrap() {
        assert_eq!(
            tok.id_to_token(id.parse().unwrap()).as_deref(),
            text.as_str(),
            "id {id}"
        );
    }
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() > 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let plain = tok.encode(text, false).unwrap();
        assert_eq!(plain, ids(&case["ids"]), "encode {text:?}");
        assert_eq!(
            tok.encode(text, true).unwrap(),
            ids(&case["ids_with_special"]),
            "encode+special {text:?}"
        );
        assert_eq!(
            tok.decode(&plain, false).unwrap(),
            case["decoded"].as_str().unwrap(),
            "decode {text:?}"
        );
        assert_eq!(
            tok.decode(&plain, true).unwrap(),
            case["decoded_skip_special"].as_str().unwrap(),
            "decode skip special {text:?}"
        );
    }
}

/// Every template x conversation x options renders exactly as transformers did (or fails as it did).
pub fn assert_chat_parity(tok: &Tokenizer) {
    let fixture = load_json("smollm2_chat.json");
    assert_eq!(
        tok.chat_template_source(),
        fixture["templates"]["gguf"].as_str()
    );
    let tools: Vec<Value> = fixture["tools"].as_array().unwrap().clone();
    let mut rendered_ok = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let template_name = case["template"].as_str().unwrap();
        let template = if template_name == "gguf" {
            tok.chat_template().unwrap().unwrap()
        } else {
            ChatTemplate::new(
                fixture["templates"][template_name].as_str().unwrap(),
                tok.specials().bos_token.clone(),
                tok.specials().eos_token.clone(),
            )
            .unwrap()
        };
        let conversation = case["conversation"].as_str().unwrap();
        let messages: Vec<ChatMessage> =
            serde_json::from_value(fixture["conversations"][conversation].clone()).unwrap();
        let opts = RenderOptions {
            add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap(),
            tools: case["tools"].as_bool().unwrap().then(|| tools.clone()),
            ..RenderOptions::default()
        };
        let got = template.render(&messages, &opts);
        let label = format!("{template_name}/{conversation}/{opts:?}");
        match case["rendered"].as_str() {
            Some(expected) => {
                assert_eq!(got.unwrap(), expected, "{label}");
                rendered_ok += 1;
            }
            None => assert!(
                got.is_err(),
                "{label}: transformers failed ({}), we rendered {got:?}",
                case["error"]
            ),
        }
    }
    assert!(rendered_ok >= 50, "only {rendered_ok} renderings compared");
}

/// JSON metadata -> GGUF values with the types llama.cpp writes for these keys.
pub fn gguf_metadata(json: &Value) -> BTreeMap<String, GgufValue> {
    let mut meta = BTreeMap::new();
    for (key, value) in json.as_object().unwrap() {
        let converted = match (key.as_str(), value) {
            (_, Value::String(s)) => GgufValue::String(s.clone()),
            (_, Value::Number(n)) => GgufValue::U32(n.as_u64().unwrap() as u32),
            (_, Value::Bool(b)) => GgufValue::Bool(*b),
            ("tokenizer.ggml.token_type", Value::Array(items)) => GgufValue::Array(
                items
                    .iter()
                    .map(|v| GgufValue::I32(v.as_i64().unwrap() as i32))
                    .collect(),
            ),
            ("tokenizer.ggml.scores", Value::Array(items)) => GgufValue::Array(
                items
                    .iter()
                    .map(|v| GgufValue::F32(v.as_f64().unwrap() as f32))
                    .collect(),
            ),
            (_, Value::Array(items)) => GgufValue::Array(
                items
                    .iter()
                    .map(|v| GgufValue::String(v.as_str().unwrap().to_owned()))
                    .collect(),
            ),
            other => panic!("unexpected metadata {other:?}"),
        };
        meta.insert(key.clone(), converted);
    }
    meta
}
