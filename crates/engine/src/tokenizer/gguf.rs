//! Builds a [`Tokenizer`] from GGUF metadata (`tokenizer.ggml.*`), the way HF transformers'
//! GGUF converter (`integrations/gguf/gguf_tokenizer_mapping.py`) does.
//!
//! Supported `tokenizer.ggml.model` values:
//! - `gpt2`: byte-level BPE. Tokens not spelled in the byte alphabet are re-spelled from their
//!   UTF-8 bytes; the pre-tokenizer is a `Split(regex, isolated)` + `ByteLevel(use_regex=false)`
//!   for the `tokenizer.ggml.pre` values transformers knows (llama3 family, qwen2 family, qwen35,
//!   tekken, gpt-4o family), and plain GPT-2 `ByteLevel(use_regex=true)` for every other value
//!   (`default`, `gpt2`, `smollm`, ...).
//! - `llama`: SentencePiece BPE with byte fallback; merges from the file or rebuilt from scores.
//!
//! Invariants: token ids equal GGUF vocabulary positions; control tokens (type 3) become special
//! added tokens, user-defined tokens (type 4) plain added tokens, so both are matched whole.

use std::collections::{BTreeMap, HashMap, HashSet};

use arle_models::gguf::GgufValue;
use serde_json::{json, Value as Json};

use super::pretokenize::{byte_alphabet, split_regex_for};
use super::{SpecialTokens, Tokenizer};
use crate::EngineError;

/// GGUF `token_type` values (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

type Metadata = BTreeMap<String, GgufValue>;

fn err(msg: impl Into<String>) -> EngineError {
    EngineError::Tokenizer(msg.into())
}

fn get_str<'m>(meta: &'m Metadata, key: &str) -> Option<&'m str> {
    match meta.get(key) {
        Some(GgufValue::String(s)) => Some(s),
        _ => None,
    }
}

fn as_i64(value: &GgufValue) -> Option<i64> {
    Some(match value {
        GgufValue::U8(v) => i64::from(*v),
        GgufValue::I8(v) => i64::from(*v),
        GgufValue::U16(v) => i64::from(*v),
        GgufValue::I16(v) => i64::from(*v),
        GgufValue::U32(v) => i64::from(*v),
        GgufValue::I32(v) => i64::from(*v),
        GgufValue::U64(v) => i64::try_from(*v).ok()?,
        GgufValue::I64(v) => *v,
        _ => return None,
    })
}

fn get_id(meta: &Metadata, key: &str) -> Option<u32> {
    meta.get(key)
        .and_then(as_i64)
        .and_then(|v| u32::try_from(v).ok())
}

fn get_bool(meta: &Metadata, key: &str) -> Option<bool> {
    match meta.get(key) {
        Some(GgufValue::Bool(b)) => Some(*b),
        _ => None,
    }
}

fn get_array<'m>(meta: &'m Metadata, key: &str) -> Option<&'m [GgufValue]> {
    match meta.get(key) {
        Some(GgufValue::Array(items)) => Some(items),
        _ => None,
    }
}

fn get_strings(meta: &Metadata, key: &str) -> Result<Option<Vec<String>>, EngineError> {
    let Some(items) = get_array(meta, key) else {
        return Ok(None);
    };
    items
        .iter()
        .map(|v| match v {
            GgufValue::String(s) => Ok(s.clone()),
            other => Err(err(format!("{key}: expected strings, found {other:?}"))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Builds the tokenizer a GGUF file's metadata describes.
pub fn tokenizer_from_gguf_metadata(meta: &Metadata) -> Result<Tokenizer, EngineError> {
    let model = get_str(meta, "tokenizer.ggml.model")
        .ok_or_else(|| err("GGUF has no tokenizer.ggml.model"))?;
    let tokens = get_strings(meta, "tokenizer.ggml.tokens")?
        .ok_or_else(|| err("GGUF has no tokenizer.ggml.tokens"))?;
    let token_types: Vec<i64> = get_array(meta, "tokenizer.ggml.token_type")
        .map(|items| items.iter().map(|v| as_i64(v).unwrap_or(0)).collect())
        .unwrap_or_default();
    let merges = get_strings(meta, "tokenizer.ggml.merges")?;
    let token_at = |key: &str| -> Option<(u32, String)> {
        let id = get_id(meta, key)?;
        tokens.get(id as usize).map(|t| (id, t.clone()))
    };
    let bos = token_at("tokenizer.ggml.bos_token_id");
    let eos = token_at("tokenizer.ggml.eos_token_id");
    let unk = token_at("tokenizer.ggml.unknown_token_id");
    // llama.cpp adds BOS to SentencePiece vocabularies unless the file says otherwise.
    let add_bos = get_bool(meta, "tokenizer.ggml.add_bos_token").unwrap_or(model == "llama");
    let add_eos = get_bool(meta, "tokenizer.ggml.add_eos_token").unwrap_or(false);

    let mut json = match model {
        "gpt2" => {
            let pre = get_str(meta, "tokenizer.ggml.pre").unwrap_or("default");
            byte_level_json(&tokens, merges.as_deref(), pre)?
        }
        "llama" => {
            let scores = get_array(meta, "tokenizer.ggml.scores");
            sentencepiece_json(&tokens, merges.as_deref(), scores, unk.as_ref())?
        }
        other => {
            return Err(err(format!(
                "GGUF tokenizer model {other:?} is not supported (supported: gpt2, llama)"
            )))
        }
    };
    json["added_tokens"] = added_tokens_json(&tokens, &token_types, model == "gpt2");
    let bos_added = if add_bos { bos.as_ref() } else { None };
    let eos_added = if add_eos { eos.as_ref() } else { None };
    json["post_processor"] = post_processor_json(bos_added, eos_added);
    let inner = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes())
        .map_err(|e| err(format!("building GGUF tokenizer: {e}")))?;

    let mut eos_ids: Vec<u32> = eos.iter().map(|(id, _)| *id).collect();
    for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        if let Some(id) = get_id(meta, key) {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
    }
    let specials = SpecialTokens {
        bos_token: bos.as_ref().map(|(_, t)| t.clone()),
        bos_id: bos.as_ref().map(|(id, _)| *id),
        eos_token: eos.as_ref().map(|(_, t)| t.clone()),
        eos_ids,
        pad_id: get_id(meta, "tokenizer.ggml.padding_token_id"),
    };
    let chat_template = get_str(meta, "tokenizer.chat_template").map(str::to_owned);
    Ok(Tokenizer::from_parts(inner, specials, chat_template))
}

/// GPT-2 style byte-level BPE (transformers `byte_level_tokenizer` + `set_split_regex`).
fn byte_level_json(
    tokens: &[String],
    merges: Option<&[String]>,
    pre: &str,
) -> Result<Json, EngineError> {
    let (byte_to_char, alphabet) = byte_alphabet();
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        let spelled = if token.chars().all(|c| alphabet.contains(&c)) {
            token.clone()
        } else {
            token.bytes().map(|b| byte_to_char[b as usize]).collect()
        };
        vocab.insert(spelled, json!(id));
    }
    let merges = merges.ok_or_else(|| err("byte-level GGUF vocabulary has no merges"))?;
    let merges: Vec<Json> = merges
        .iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').unwrap_or((m.as_str(), ""));
            json!([a, b])
        })
        .collect();
    let pre_tokenizer = match split_regex_for(pre) {
        Some(regex) => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
        ]}),
        None => {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
        }
    };
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": vocab, "merges": merges,
        },
    }))
}

/// SentencePiece BPE (transformers `sentencepiece_tokenizer` with `LlamaTokenizer`).
fn sentencepiece_json(
    tokens: &[String],
    merges: Option<&[String]>,
    scores: Option<&[GgufValue]>,
    unk: Option<&(u32, String)>,
) -> Result<Json, EngineError> {
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        vocab.insert(token.clone(), json!(id));
    }
    let merges: Vec<(String, String)> = match merges {
        Some(merges) => merges
            .iter()
            .map(|m| {
                let (a, b) = m.split_once(' ').unwrap_or((m.as_str(), ""));
                (a.to_owned(), b.to_owned())
            })
            .collect(),
        None => {
            let scores =
                scores.ok_or_else(|| err("SentencePiece GGUF has neither merges nor scores"))?;
            let scores: Vec<f64> = scores
                .iter()
                .map(|v| match v {
                    GgufValue::F32(s) => f64::from(*s),
                    GgufValue::F64(s) => *s,
                    _ => 0.0,
                })
                .collect();
            merges_from_scores(tokens, &scores)
        }
    };
    let merges: Vec<Json> = merges.into_iter().map(|(a, b)| json!([a, b])).collect();
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "normalizer": null,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": unk.map(|(_, t)| t.clone()),
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true,
            "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": merges,
        },
    }))
}

/// transformers `generate_merges(vocab, vocab_scores)`: every split of every token into two
/// vocabulary pieces, ordered by the merged token's score (best first), then by piece lengths.
fn merges_from_scores(tokens: &[String], scores: &[f64]) -> Vec<(String, String)> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        index.insert(token, id);
    }
    let mut seen: HashSet<&str> = HashSet::with_capacity(tokens.len());
    let mut scored: Vec<(String, String, f64, usize, usize)> = Vec::new();
    for (token, score) in tokens.iter().zip(scores) {
        if !seen.insert(token.as_str()) {
            continue;
        }
        // A duplicated token keeps its first position but its last score (Python dict semantics).
        let score = index
            .get(token.as_str())
            .and_then(|&i| scores.get(i))
            .copied()
            .unwrap_or(*score);
        let mut local = Vec::new();
        for (split, _) in token.char_indices().skip(1) {
            let (left, right) = token.split_at(split);
            if let (Some(&li), Some(&ri)) = (index.get(left), index.get(right)) {
                local.push((li, ri, left, right));
            }
        }
        local.sort_by_key(|&(li, ri, _, _)| (li, ri));
        for (_, _, left, right) in local {
            let lens = (left.chars().count(), right.chars().count());
            scored.push((left.to_owned(), right.to_owned(), score, lens.0, lens.1));
        }
    }
    // Python's sort(reverse=True) is stable: equal keys keep their order.
    scored.sort_by(|a, b| {
        (b.2.total_cmp(&a.2))
            .then(b.3.cmp(&a.3))
            .then(b.4.cmp(&a.4))
    });
    scored.into_iter().map(|(l, r, ..)| (l, r)).collect()
}

/// Control tokens as special added tokens; user-defined ones as plain added tokens.
fn added_tokens_json(tokens: &[String], token_types: &[i64], byte_level: bool) -> Json {
    let (_, alphabet) = byte_alphabet();
    let mut added = Vec::new();
    for (id, (token, &kind)) in tokens.iter().zip(token_types).enumerate() {
        let special = match kind {
            // A control token outside the byte alphabet is a llama.cpp mislabel in byte-level vocabularies.
            TOKEN_TYPE_CONTROL if !byte_level || token.chars().all(|c| alphabet.contains(&c)) => {
                true
            }
            TOKEN_TYPE_USER_DEFINED => false,
            _ => continue,
        };
        added.push(json!({
            "id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": special,
        }));
    }
    Json::Array(added)
}

/// `TemplateProcessing` adding BOS / EOS when the file asks for them.
fn post_processor_json(bos: Option<&(u32, String)>, eos: Option<&(u32, String)>) -> Json {
    let mut single = Vec::new();
    let mut special_tokens = serde_json::Map::new();
    if let Some((id, token)) = bos {
        single.push(json!({"SpecialToken": {"id": token, "type_id": 0}}));
        special_tokens.insert(
            token.clone(),
            json!({"id": token, "ids": [id], "tokens": [token]}),
        );
    }
    single.push(json!({"Sequence": {"id": "A", "type_id": 0}}));
    if let Some((id, token)) = eos {
        single.push(json!({"SpecialToken": {"id": token, "type_id": 0}}));
        special_tokens.insert(
            token.clone(),
            json!({"id": token, "ids": [id], "tokens": [token]}),
        );
    }
    let mut pair = single.clone();
    pair.extend(single.iter().map(|piece| match piece.get("Sequence") {
        Some(_) => json!({"Sequence": {"id": "B", "type_id": 1}}),
        None => piece.clone(),
    }));
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special_tokens})
}
