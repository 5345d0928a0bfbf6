//! Validated model configuration, built from an HF `config.json` or from GGUF metadata.
//!
//! Defaults follow the HF config classes (MODEL-SPECS §2.1 llama, §3.1 qwen3). RoPE accepts the
//! v5 `rope_parameters` object and the legacy top-level `rope_theta` / `rope_scaling` (with the
//! old `type` alias for `rope_type`). Invariants of a returned [`ModelConfig`]: every size is
//! positive, `num_key_value_heads` divides `num_attention_heads`, the rotary dim is even and
//! positive, eps and theta are finite and positive. Problems are `ModelError::Config` naming the
//! file.
//!
//! The hybrid Qwen3.5 family (`qwen3_5`, `qwen3_5_moe`, also their `*_text` and VL forms with a
//! nested `text_config`) carries its extra hyper-parameters in [`ModelConfig::hybrid`]
//! (see [`hybrid`]); its partial_rotary_factor defaults to 0.25.

mod hybrid;

pub use hybrid::{HybridConfig, LayerType, LinearAttentionConfig, MoeConfig};

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::gguf::GgufFile;
use crate::rope::{RopeConfig, RopeScaling};
use crate::{ModelError, Result};

/// Supported architectures (HF `model_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen3,
    /// Dense hybrid (Gated DeltaNet + gated attention), MODEL-SPECS §4.
    Qwen3_5,
    /// Hybrid with a sparse MoE MLP in every layer, MODEL-SPECS §5.
    Qwen3_5Moe,
}

impl Architecture {
    /// From HF `model_type` / GGUF `general.architecture` (the same strings for these two).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Architecture::Llama),
            "qwen3" => Some(Architecture::Qwen3),
            "qwen3_5" | "qwen3_5_text" => Some(Architecture::Qwen3_5),
            "qwen3_5_moe" | "qwen3_5_moe_text" => Some(Architecture::Qwen3_5Moe),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen3 => "qwen3",
            Architecture::Qwen3_5 => "qwen3_5",
            Architecture::Qwen3_5Moe => "qwen3_5_moe",
        }
    }

    /// Whether the architecture mixes linear-attention and attention layers.
    pub fn is_hybrid(self) -> bool {
        matches!(self, Architecture::Qwen3_5 | Architecture::Qwen3_5Moe)
    }
}

/// Hyper-parameters of a decoder-only model, validated (heads divide, dims positive).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope: RopeConfig,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub max_position_embeddings: usize,
    pub bos_token_id: Option<u32>,
    /// Every id that ends generation (config may give one or a list).
    pub eos_token_ids: Vec<u32>,
    /// Layer types, Gated DeltaNet and MoE sizes of the Qwen3.5 family; `None` otherwise.
    /// (For `qwen3_5_moe`, which has no dense MLP, `intermediate_size` holds
    /// `moe_intermediate_size`.)
    pub hybrid: Option<HybridConfig>,
}

/// `config.json` as written; `None` = absent or null.
#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    hidden_act: Option<String>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<Map<String, Value>>,
    rope_parameters: Option<Map<String, Value>>,
    partial_rotary_factor: Option<f64>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    use_sliding_window: Option<bool>,
    max_position_embeddings: Option<usize>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<Value>,
    #[serde(flatten)]
    hybrid: hybrid::RawHybrid,
}

/// Class defaults that differ between the architectures.
struct ArchDefaults {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    partial_rotary_factor: f64,
    intermediate_size: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    max_position_embeddings: usize,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
}

fn arch_defaults(arch: Architecture) -> ArchDefaults {
    match arch {
        Architecture::Llama => ArchDefaults {
            vocab_size: 32000,
            hidden_size: 4096,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            partial_rotary_factor: 1.0,
            intermediate_size: 11008,
            num_key_value_heads: None,
            head_dim: None,
            max_position_embeddings: 2048,
            bos_token_id: Some(1),
            eos_token_id: Some(2),
        },
        Architecture::Qwen3 => ArchDefaults {
            vocab_size: 151936,
            hidden_size: 4096,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            partial_rotary_factor: 1.0,
            intermediate_size: 22016,
            num_key_value_heads: Some(32),
            head_dim: Some(128),
            max_position_embeddings: 32768,
            bos_token_id: None,
            eos_token_id: None,
        },
        Architecture::Qwen3_5 => ArchDefaults {
            vocab_size: 248320,
            hidden_size: 4096,
            num_hidden_layers: 32,
            num_attention_heads: 16,
            partial_rotary_factor: 0.25,
            intermediate_size: 12288,
            num_key_value_heads: Some(4),
            head_dim: Some(256),
            max_position_embeddings: 32768,
            bos_token_id: None,
            eos_token_id: None,
        },
        Architecture::Qwen3_5Moe => ArchDefaults {
            vocab_size: 248320,
            hidden_size: 2048,
            num_hidden_layers: 40,
            num_attention_heads: 16,
            partial_rotary_factor: 0.25,
            intermediate_size: 0, // replaced by moe_intermediate_size
            num_key_value_heads: Some(2),
            head_dim: Some(256),
            max_position_embeddings: 32768,
            bos_token_id: None,
            eos_token_id: None,
        },
    }
}

impl ModelConfig {
    /// Parses and validates `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_hf_json_str(&text).map_err(|detail| ModelError::Config {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// Parses and validates the text of a `config.json`; errors are the detail message.
    pub fn from_hf_json_str(text: &str) -> std::result::Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let raw: RawConfig = serde_json::from_value(hybrid::flatten_text_config(value))
            .map_err(|e| e.to_string())?;
        let model_type = raw.model_type.as_deref().ok_or("missing `model_type`")?;
        let architecture = Architecture::from_name(model_type).ok_or_else(|| {
            format!(
                "unsupported model_type `{model_type}` (supported: llama, qwen3, qwen3_5, \
                 qwen3_5_moe)"
            )
        })?;
        if let Some(act) = raw.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(format!("hidden_act `{act}` is not supported (only silu)"));
        }
        if raw.use_sliding_window == Some(true) {
            return Err("use_sliding_window = true is not supported".into());
        }
        let d = arch_defaults(architecture);
        let hidden_size = raw.hidden_size.unwrap_or(d.hidden_size);
        let num_attention_heads = raw.num_attention_heads.unwrap_or(d.num_attention_heads);
        let num_hidden_layers = raw.num_hidden_layers.unwrap_or(d.num_hidden_layers);
        let hybrid = match architecture {
            Architecture::Qwen3_5 => Some(raw.hybrid.parse(num_hidden_layers, false)?),
            Architecture::Qwen3_5Moe => Some(raw.hybrid.parse(num_hidden_layers, true)?),
            Architecture::Llama | Architecture::Qwen3 => None,
        };
        let intermediate_size = match hybrid.as_ref().and_then(|h| h.moe) {
            Some(moe) => moe.moe_intermediate_size,
            None => raw.intermediate_size.unwrap_or(d.intermediate_size),
        };
        let max_position_embeddings = raw
            .max_position_embeddings
            .unwrap_or(d.max_position_embeddings);
        let head_dim = raw
            .head_dim
            .or(d.head_dim)
            .unwrap_or(hidden_size / num_attention_heads.max(1));
        let eos_token_ids = match &raw.eos_token_id {
            None | Some(Value::Null) => d.eos_token_id.into_iter().collect(),
            Some(v) => parse_token_ids(v)?,
        };
        let config = Self {
            architecture,
            vocab_size: raw.vocab_size.unwrap_or(d.vocab_size),
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads: raw
                .num_key_value_heads
                .or(d.num_key_value_heads)
                .unwrap_or(num_attention_heads),
            head_dim,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6) as f32,
            rope: parse_rope(&raw, max_position_embeddings, d.partial_rotary_factor)?,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            attention_bias: raw.attention_bias.unwrap_or(false),
            mlp_bias: raw.mlp_bias.unwrap_or(false),
            max_position_embeddings,
            bos_token_id: raw.bos_token_id.or(d.bos_token_id),
            eos_token_ids,
            hybrid,
        };
        config.validate()?;
        Ok(config)
    }

    /// Builds the config from GGUF metadata (arch `llama` or `qwen3`).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let config_err = |detail: String| ModelError::Config {
            path: gguf.path.clone(),
            detail,
        };
        let arch_name = gguf.architecture()?;
        let architecture = Architecture::from_name(arch_name)
            .filter(|a| !a.is_hybrid())
            .ok_or_else(|| {
                config_err(format!(
                    "unsupported GGUF architecture `{arch_name}` (supported: llama, qwen3)"
                ))
            })?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let required = |k: &str| -> Result<usize> {
            gguf.get_usize(&key(k))?
                .ok_or_else(|| config_err(format!("missing metadata `{}`", key(k))))
        };
        let hidden_size = required("embedding_length")?;
        let num_attention_heads = required("attention.head_count")?;
        let head_dim = match gguf.get_usize(&key("attention.key_length"))? {
            Some(d) => d,
            None => hidden_size / num_attention_heads.max(1),
        };
        let rotary_dim = gguf.get_usize(&key("rope.dimension_count"))?;
        let max_position_embeddings = required("context_length")?;
        let vocab_size = match gguf.get_usize(&key("vocab_size"))? {
            Some(n) => n,
            None => match gguf.get("tokenizer.ggml.tokens") {
                Some(crate::gguf::GgufValue::Array(tokens)) => tokens.len(),
                _ => gguf
                    .tensor_info("token_embd.weight")
                    .and_then(|t| t.shape.first().copied())
                    .ok_or_else(|| config_err("cannot determine the vocabulary size".into()))?,
            },
        };
        let mut eos_token_ids = Vec::new();
        for k in [
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ] {
            if let Some(id) = gguf.get_u32(k)? {
                if !eos_token_ids.contains(&id) {
                    eos_token_ids.push(id);
                }
            }
        }
        let config = Self {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: required("feed_forward_length")?,
            num_hidden_layers: required("block_count")?,
            num_attention_heads,
            num_key_value_heads: gguf
                .get_usize(&key("attention.head_count_kv"))?
                .unwrap_or(num_attention_heads),
            head_dim,
            rms_norm_eps: gguf
                .get_f32(&key("attention.layer_norm_rms_epsilon"))?
                .ok_or_else(|| {
                    config_err(format!(
                        "missing metadata `{}`",
                        key("attention.layer_norm_rms_epsilon")
                    ))
                })?,
            rope: RopeConfig {
                theta: gguf.get_f32(&key("rope.freq_base"))?.unwrap_or(10000.0),
                partial_rotary_factor: rotary_dim.map_or(1.0, |r| r as f32 / head_dim as f32),
                scaling: gguf_rope_scaling(gguf, arch_name, max_position_embeddings)?,
            },
            tie_word_embeddings: gguf.tensor_info("output.weight").is_none(),
            attention_bias: gguf.tensor_info("blk.0.attn_q.bias").is_some(),
            mlp_bias: gguf.tensor_info("blk.0.ffn_up.bias").is_some(),
            max_position_embeddings,
            bos_token_id: gguf.get_u32("tokenizer.ggml.bos_token_id")?,
            eos_token_ids,
            hybrid: None,
        };
        config.validate().map_err(config_err)?;
        Ok(config)
    }

    /// Checks the invariants listed in the module doc.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(format!(
                "rms_norm_eps {} must be positive",
                self.rms_norm_eps
            ));
        }
        let rope = &self.rope;
        if !(rope.theta.is_finite() && rope.theta > 0.0) {
            return Err(format!("rope theta {} must be positive", rope.theta));
        }
        let p = rope.partial_rotary_factor;
        let rotary_dim = (self.head_dim as f32 * p) as usize;
        if !(p > 0.0 && p <= 1.0) || rotary_dim == 0 || !rotary_dim.is_multiple_of(2) {
            return Err(format!(
                "rotary dim {rotary_dim} (head_dim {} × partial_rotary_factor {p}) must be even \
                 and positive",
                self.head_dim
            ));
        }
        let factor = match &rope.scaling {
            RopeScaling::Default => 1.0,
            RopeScaling::Linear { factor }
            | RopeScaling::Llama3 { factor, .. }
            | RopeScaling::Yarn { factor, .. } => *factor,
        };
        if !(factor.is_finite() && factor > 0.0) {
            return Err(format!("rope scaling factor {factor} must be positive"));
        }
        Ok(())
    }
}

/// `eos_token_id`: one id or a list of ids.
fn parse_token_ids(v: &Value) -> std::result::Result<Vec<u32>, String> {
    let one = |v: &Value| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("eos_token_id: {v} is not a token id"))
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        v => Ok(vec![one(v)?]),
    }
}

fn num(map: &Map<String, Value>, key: &str) -> std::result::Result<Option<f64>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("rope `{key}`: {v} is not a number")),
    }
}

fn required_num(
    map: &Map<String, Value>,
    key: &str,
    rope_type: &str,
) -> std::result::Result<f64, String> {
    num(map, key)?.ok_or_else(|| format!("rope type `{rope_type}` needs `{key}`"))
}

/// RoPE from `rope_parameters` (v5) or legacy `rope_theta` + `rope_scaling`.
fn parse_rope(
    raw: &RawConfig,
    max_pos: usize,
    default_partial: f64,
) -> std::result::Result<RopeConfig, String> {
    let empty = Map::new();
    let params = raw
        .rope_parameters
        .as_ref()
        .or(raw.rope_scaling.as_ref())
        .unwrap_or(&empty);
    let theta = num(params, "rope_theta")?
        .or(raw.rope_theta)
        .unwrap_or(10000.0);
    let partial = num(params, "partial_rotary_factor")?
        .or(raw.partial_rotary_factor)
        .unwrap_or(default_partial);
    let rope_type = match params.get("rope_type").or(params.get("type")) {
        None | Some(Value::Null) => "default",
        Some(Value::String(s)) => s.as_str(),
        Some(v) => return Err(format!("rope_type {v} is not a string")),
    };
    let orig = |map: &Map<String, Value>| -> std::result::Result<usize, String> {
        Ok(num(map, "original_max_position_embeddings")?.map_or(max_pos, |v| v as usize))
    };
    let scaling = match rope_type {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear {
            factor: required_num(params, "factor", rope_type)? as f32,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: required_num(params, "factor", rope_type)? as f32,
            low_freq_factor: required_num(params, "low_freq_factor", rope_type)? as f32,
            high_freq_factor: required_num(params, "high_freq_factor", rope_type)? as f32,
            original_max_position_embeddings: required_num(
                params,
                "original_max_position_embeddings",
                rope_type,
            )? as usize,
        },
        "yarn" => RopeScaling::Yarn {
            factor: required_num(params, "factor", rope_type)? as f32,
            original_max_position_embeddings: orig(params)?,
            beta_fast: num(params, "beta_fast")?.unwrap_or(32.0) as f32,
            beta_slow: num(params, "beta_slow")?.unwrap_or(1.0) as f32,
            truncate: params
                .get("truncate")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            attention_factor: num(params, "attention_factor")?.map(|v| v as f32),
        },
        other => return Err(format!("rope type `{other}` is not supported")),
    };
    Ok(RopeConfig {
        theta: theta as f32,
        partial_rotary_factor: partial as f32,
        scaling,
    })
}

/// `{arch}.rope.scaling.*` metadata (llama.cpp names): none, linear or yarn.
fn gguf_rope_scaling(gguf: &GgufFile, arch: &str, max_pos: usize) -> Result<RopeScaling> {
    let key = |k: &str| format!("{arch}.rope.scaling.{k}");
    let factor = gguf.get_f32(&key("factor"))?;
    let kind = gguf.get_str(&key("type"))?.unwrap_or("none");
    let err = |detail: String| ModelError::Config {
        path: PathBuf::from(&gguf.path),
        detail,
    };
    let factor_or_err = || factor.ok_or_else(|| err(format!("`{}` missing", key("factor"))));
    Ok(match kind {
        "none" => RopeScaling::Default,
        "linear" => RopeScaling::Linear {
            factor: factor_or_err()?,
        },
        "yarn" => RopeScaling::Yarn {
            factor: factor_or_err()?,
            original_max_position_embeddings: gguf
                .get_usize(&key("original_context_length"))?
                .unwrap_or(max_pos),
            beta_fast: gguf.get_f32(&key("yarn_beta_fast"))?.unwrap_or(32.0),
            beta_slow: gguf.get_f32(&key("yarn_beta_slow"))?.unwrap_or(1.0),
            truncate: true,
            attention_factor: None,
        },
        other => return Err(err(format!("rope scaling type `{other}` is not supported"))),
    })
}
