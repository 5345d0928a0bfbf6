//! Starting the in-process engine for `--load-format` (benchmarks and `serve`), and the model
//! facts the benchmarks turn into FLOPs and bytes.
//!
//! `--load-format dummy`: the model comes from `config.json` alone with seeded random weights
//! (`arle_models::dummy`). Without a `tokenizer.json` beside the config, the engine gets a
//! synthetic word-level tokenizer whose token `i` is the word `"i"`: token-id prompts work as
//! usual, and a text prompt is read as space-separated ids (`"17 4 9"`), so nothing pretends to be
//! real text. Invariant: benchmark prompts are token ids, never text.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use arle_engine::{
    start_engine, start_engine_with_model, tokenizer::Tokenizer, EngineConfig, EngineHandle,
    EngineModel,
};
use arle_models::config::{LayerType, ModelConfig};
use arle_models::dummy::{load_dummy_model_on, DEFAULT_DUMMY_SEED};

use crate::args::ModelArgs;

/// How the weights are obtained.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadFormat {
    /// From the checkpoint (safetensors folder or GGUF).
    #[default]
    Auto,
    /// Random weights from config.json alone (benchmarks at real shapes).
    Dummy,
}

/// Parameter counts that FLOP and byte estimates need.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ParamCounts {
    pub total: usize,
    /// Embedding table (one row read per token).
    pub embedding: usize,
    /// The vocabulary projection (untied `lm_head`, or the tied embedding).
    pub lm_head: usize,
    /// The vocabulary projection is the embedding table (counted once in `total`).
    pub tied: bool,
}

impl ParamCounts {
    /// Parameters multiplied per token in the decoder layers (everything but the embedding table
    /// and the vocabulary projection).
    pub fn layer_params(&self) -> usize {
        let untied_head = if self.tied { 0 } else { self.lm_head };
        self.total.saturating_sub(self.embedding + untied_head)
    }

    /// bf16 bytes one decode step must stream: layer weights + the vocabulary projection.
    pub fn decode_weight_bytes(&self) -> usize {
        2 * (self.layer_params() + self.lm_head)
    }
}

/// A started engine and what is known of its model.
pub struct Started {
    pub handle: EngineHandle,
    pub config: Option<ModelConfig>,
    pub params: Option<ParamCounts>,
    /// Seconds spent loading weights and starting the engine.
    pub load_s: f64,
}

/// Starts the engine `config` describes, honouring `args.load_format`.
pub fn start(args: &ModelArgs, config: EngineConfig) -> anyhow::Result<Started> {
    let t0 = Instant::now();
    match args.load_format {
        LoadFormat::Auto => {
            let model_config = hf_config(&config.model_path);
            let params = model_config
                .as_ref()
                .and_then(|_| checkpoint_params(&config.model_path));
            let handle = start_engine(config).context("starting the engine")?;
            Ok(Started {
                handle,
                config: model_config,
                params,
                load_s: t0.elapsed().as_secs_f64(),
            })
        }
        LoadFormat::Dummy => {
            let (loaded, stats) =
                load_dummy_model_on(&config.model_path, config.device, DEFAULT_DUMMY_SEED)
                    .with_context(|| {
                        format!(
                            "building a dummy model from {}",
                            config.model_path.display()
                        )
                    })?;
            tracing::info!(
                "dummy weights: {} parameters in {:.1} s",
                stats.total_params,
                t0.elapsed().as_secs_f64()
            );
            let dir = match &loaded.format {
                arle_models::ModelFormat::HfFolder(dir) => dir.clone(),
                arle_models::ModelFormat::Gguf(_) => config.model_path.clone(),
            };
            let tokenizer = dummy_tokenizer(&dir, loaded.config.vocab_size)?;
            let model_config = loaded.config.clone();
            let tied = model_config.tie_word_embeddings;
            let parts = EngineModel {
                model: loaded.model,
                tokenizer,
                eos_token_ids: loaded.config.eos_token_ids.clone(),
            };
            let handle = start_engine_with_model(parts, config).context("starting the engine")?;
            Ok(Started {
                handle,
                config: Some(model_config),
                params: Some(ParamCounts {
                    total: stats.total_params,
                    embedding: stats.embedding_params,
                    lm_head: stats.lm_head_params,
                    tied,
                }),
                load_s: t0.elapsed().as_secs_f64(),
            })
        }
    }
}

/// `arle serve` / `run`: the engine with `--load-format` honoured.
pub fn start_handle(args: &ModelArgs, config: EngineConfig) -> anyhow::Result<EngineHandle> {
    start(args, config).map(|s| s.handle)
}

/// The folder's own tokenizer when it has one, else the synthetic id-word tokenizer.
fn dummy_tokenizer(dir: &Path, vocab_size: usize) -> anyhow::Result<Tokenizer> {
    if dir.join("tokenizer.json").is_file() {
        return Tokenizer::from_hf_dir(dir).context("reading the model's tokenizer");
    }
    // A directory of its own per call: engines started concurrently in one process must not
    // read each other's half-written file.
    let tmp = tempfile::Builder::new()
        .prefix("arle-dummy-tokenizer-")
        .tempdir()
        .context("creating a temporary directory for the synthetic tokenizer")?;
    let path = tmp.path().join("tokenizer.json");
    std::fs::write(&path, id_word_tokenizer_json(vocab_size).to_string())
        .with_context(|| format!("writing {}", path.display()))?;
    Tokenizer::from_hf_dir(tmp.path()).context("building the synthetic tokenizer")
}

/// A `tokenizers` word-level tokenizer: word `"i"` ↔ id `i`, whitespace-split, joined by spaces.
fn id_word_tokenizer_json(vocab_size: usize) -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..vocab_size)
        .map(|i| (i.to_string(), serde_json::Value::from(i)))
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "0"}
    })
}

/// config.json of an HF folder (`None` for GGUF or unreadable configs).
fn hf_config(path: &Path) -> Option<ModelConfig> {
    let file: PathBuf = if path.is_dir() {
        path.join("config.json")
    } else {
        return None;
    };
    ModelConfig::from_hf_json(&file).ok()
}

/// Parameter counts of an HF safetensors folder from its tensor directory (no data read).
fn checkpoint_params(dir: &Path) -> Option<ParamCounts> {
    let entries = arle_models::safetensors::read_folder(dir).ok()?;
    let mut counts = ParamCounts::default();
    let mut has_head = false;
    for e in &entries {
        let n = e.weight.elements();
        counts.total += n;
        if e.name.ends_with("embed_tokens.weight") {
            counts.embedding += n;
        }
        if e.name == "lm_head.weight" {
            counts.lm_head += n;
            has_head = true;
        }
    }
    if !has_head {
        counts.lm_head = counts.embedding;
        counts.tied = true;
    }
    Some(counts)
}

/// Full-attention layers and the query width `num_heads · head_dim` (for the `P²` FLOP term).
pub fn attention_shape(config: &ModelConfig) -> (usize, usize) {
    let layers = match &config.hybrid {
        Some(h) => h
            .layer_types
            .iter()
            .filter(|t| **t == LayerType::FullAttention)
            .count(),
        None => config.num_hidden_layers,
    };
    (layers, config.num_attention_heads * config.head_dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_word_tokenizer_round_trips_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tok = dummy_tokenizer(dir.path(), 300).expect("tokenizer");
        assert_eq!(
            tok.encode("17 4 299", false).expect("encode"),
            vec![17, 4, 299]
        );
        assert_eq!(tok.decode(&[5, 6], false).expect("decode"), "5 6");
    }

    #[test]
    fn decode_bytes_count_the_head_once_when_tied() {
        let tied = ParamCounts {
            total: 1000,
            embedding: 100,
            lm_head: 100,
            tied: true,
        };
        assert_eq!(tied.layer_params(), 900);
        assert_eq!(tied.decode_weight_bytes(), 2 * 1000);
        let untied = ParamCounts {
            total: 1100,
            embedding: 100,
            lm_head: 100,
            tied: false,
        };
        assert_eq!(untied.layer_params(), 900);
        assert_eq!(untied.decode_weight_bytes(), 2 * 1000);
    }
}
