//! Loads a [`Tokenizer`] from an HF model folder.
//!
//! Reads `tokenizer.json` (required), `tokenizer_config.json` (special tokens, chat template),
//! `chat_template.jinja` (wins over the config's template, as in transformers), and
//! `generation_config.json` (extra EOS ids). Special tokens in the config may be plain strings or
//! `AddedToken` objects (`{"content": ...}`).

use std::path::Path;

use serde_json::Value as Json;

use super::{tok_err, SpecialTokens, Tokenizer};
use crate::EngineError;

fn read_json(path: &Path) -> Result<Option<Json>, EngineError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", path.display())))
}

/// A special token in `tokenizer_config.json`: a string or `{"content": "..."}`.
fn token_text(config: &Json, key: &str) -> Option<String> {
    match config.get(key)? {
        Json::String(s) => Some(s.clone()),
        Json::Object(obj) => obj.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// `chat_template` is a string, or a list of `{"name", "template"}` (the `default` one is used).
fn config_template(config: &Json) -> Option<String> {
    match config.get("chat_template")? {
        Json::String(s) => Some(s.clone()),
        Json::Array(items) => items
            .iter()
            .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
            .and_then(|t| t.get("template")?.as_str().map(str::to_owned)),
        _ => None,
    }
}

pub(super) fn load_hf_dir(dir: &Path) -> Result<Tokenizer, EngineError> {
    let tokenizer_path = dir.join("tokenizer.json");
    let inner = tokenizers::Tokenizer::from_file(&tokenizer_path)
        .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", tokenizer_path.display())))?;
    let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
    let generation = read_json(&dir.join("generation_config.json"))?.unwrap_or(Json::Null);

    let bos_token = token_text(&config, "bos_token");
    let eos_token = token_text(&config, "eos_token");
    let id_of = |token: &Option<String>| token.as_deref().and_then(|t| inner.token_to_id(t));
    let mut eos_ids: Vec<u32> = id_of(&eos_token).into_iter().collect();
    let generation_eos: Vec<u32> = match generation.get("eos_token_id") {
        Some(Json::Number(n)) => n.as_u64().into_iter().collect::<Vec<_>>(),
        Some(Json::Array(ids)) => ids.iter().filter_map(Json::as_u64).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter_map(|id| u32::try_from(id).ok())
    .collect();
    for id in generation_eos {
        if !eos_ids.contains(&id) {
            eos_ids.push(id);
        }
    }
    let specials = SpecialTokens {
        bos_id: id_of(&bos_token),
        pad_id: id_of(&token_text(&config, "pad_token")),
        bos_token,
        eos_token,
        eos_ids,
    };
    let jinja_path = dir.join("chat_template.jinja");
    let chat_template = if jinja_path.exists() {
        Some(std::fs::read_to_string(&jinja_path).map_err(tok_err)?)
    } else {
        config_template(&config)
    };
    Ok(Tokenizer::from_parts(inner, specials, chat_template))
}
