//! Hugging Face hub downloads through `hf-hub` into the standard HF cache.
//! Honours `HF_HOME` (cache location), `HF_ENDPOINT` (mirror / test server) and `HF_TOKEN`.

use std::path::PathBuf;

use hf_hub::api::sync::ApiBuilder;

use crate::{HubConfig, HubError};

/// Files of an HF model folder that we download when present.
const FOLDER_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "model.safetensors.index.json",
];

/// `owner/name` or `owner/name/file.gguf`, made of hub-legal characters.
pub(crate) fn looks_like_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    let legal = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match parts.as_slice() {
        [owner, name] => legal(owner) && legal(name),
        [owner, name, file] => {
            legal(owner) && legal(name) && legal(file) && file.ends_with(".gguf")
        }
        _ => false,
    }
}

/// Downloads (or finds in the HF cache) the model `spec` and returns its local path.
pub(crate) fn fetch(spec: &str, config: &HubConfig) -> Result<PathBuf, HubError> {
    let hub_err = |e: hf_hub::api::sync::ApiError| HubError::Hub(format!("{spec}: {e}"));
    let mut builder = ApiBuilder::from_env().with_progress(config.progress);
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    let api = builder.build().map_err(hub_err)?;
    let mut parts = spec.splitn(3, '/');
    let (owner, name) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let repo = api.model(format!("{owner}/{name}"));
    if let Some(file) = parts.next() {
        return repo.get(file).map_err(hub_err);
    }
    let info = repo.info().map_err(hub_err)?;
    let listed: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    if !listed.contains(&"config.json") {
        return Err(HubError::Hub(format!(
            "{spec}: no config.json in the repository; for GGUF repos pass owner/name/file.gguf"
        )));
    }
    let mut config_path = None;
    for file in listed
        .iter()
        .filter(|f| FOLDER_FILES.contains(f) || f.ends_with(".safetensors"))
    {
        let local = repo.get(file).map_err(hub_err)?;
        if *file == "config.json" {
            config_path = Some(local);
        }
    }
    config_path
        .and_then(|p| p.parent().map(PathBuf::from))
        .ok_or_else(|| HubError::Hub(format!("{spec}: config.json did not download")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_id_shapes() {
        assert!(looks_like_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct"));
        assert!(looks_like_hub_id("org/repo/model-Q4_K_M.gguf"));
        assert!(!looks_like_hub_id("org/repo/config.json"));
        assert!(!looks_like_hub_id("./org/repo"));
        assert!(!looks_like_hub_id("single"));
        assert!(!looks_like_hub_id("a/b c"));
    }
}
