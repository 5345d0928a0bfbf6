//! Hyper-parameters of the hybrid Qwen3.5 family (MODEL-SPECS §4.1, §5.1): the per-layer mixer
//! kind, the Gated DeltaNet sizes and, for `qwen3_5_moe`, the mixture-of-experts sizes.
//!
//! Invariants of a returned [`HybridConfig`]: one layer type per layer, every size positive,
//! `num_value_heads` a multiple of `num_key_heads`, `1 <= num_experts_per_tok <= num_experts`.
//! Also: the VL checkpoint layout nests the text model under `text_config`
//! ([`flatten_text_config`]).

use serde::Deserialize;
use serde_json::Value;

/// The token mixer of one decoder layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerType {
    /// Gated DeltaNet (`linear_attn`).
    LinearAttention,
    /// Gated full attention (`self_attn`).
    FullAttention,
}

/// Gated DeltaNet sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearAttentionConfig {
    /// K of the causal depthwise conv.
    pub conv_kernel: usize,
    pub num_key_heads: usize,
    pub num_value_heads: usize,
    pub key_head_dim: usize,
    pub value_head_dim: usize,
}

/// Sparse MoE sizes (every layer of `qwen3_5_moe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoeConfig {
    pub num_experts: usize,
    pub num_experts_per_tok: usize,
    pub moe_intermediate_size: usize,
    pub shared_expert_intermediate_size: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HybridConfig {
    /// `[num_hidden_layers]`
    pub layer_types: Vec<LayerType>,
    pub linear: LinearAttentionConfig,
    /// `Some` for `qwen3_5_moe` (no dense MLP), `None` for dense `qwen3_5`.
    pub moe: Option<MoeConfig>,
}

/// The hybrid-only fields of `config.json` (flattened into the raw config).
#[derive(Deserialize, Default)]
pub(super) struct RawHybrid {
    layer_types: Option<Vec<String>>,
    full_attention_interval: Option<usize>,
    linear_conv_kernel_dim: Option<usize>,
    linear_key_head_dim: Option<usize>,
    linear_value_head_dim: Option<usize>,
    linear_num_key_heads: Option<usize>,
    linear_num_value_heads: Option<usize>,
    num_experts: Option<usize>,
    num_experts_per_tok: Option<usize>,
    moe_intermediate_size: Option<usize>,
    shared_expert_intermediate_size: Option<usize>,
}

impl RawHybrid {
    /// The validated hybrid config with HF class defaults; `moe` for `qwen3_5_moe`.
    pub(super) fn parse(&self, num_layers: usize, moe: bool) -> Result<HybridConfig, String> {
        let layer_types = match &self.layer_types {
            Some(names) => names
                .iter()
                .map(|n| match n.as_str() {
                    "linear_attention" => Ok(LayerType::LinearAttention),
                    "full_attention" => Ok(LayerType::FullAttention),
                    other => Err(format!("layer type `{other}` is not supported")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => {
                let interval = self.full_attention_interval.unwrap_or(4).max(1);
                (0..num_layers)
                    .map(|i| match (i + 1) % interval {
                        0 => LayerType::FullAttention,
                        _ => LayerType::LinearAttention,
                    })
                    .collect()
            }
        };
        if layer_types.len() != num_layers {
            return Err(format!(
                "layer_types has {} entries for {num_layers} layers",
                layer_types.len()
            ));
        }
        let linear = LinearAttentionConfig {
            conv_kernel: self.linear_conv_kernel_dim.unwrap_or(4),
            num_key_heads: self.linear_num_key_heads.unwrap_or(16),
            num_value_heads: self.linear_num_value_heads.unwrap_or(32),
            key_head_dim: self.linear_key_head_dim.unwrap_or(128),
            value_head_dim: self.linear_value_head_dim.unwrap_or(128),
        };
        let moe = moe.then(|| MoeConfig {
            num_experts: self.num_experts.unwrap_or(256),
            num_experts_per_tok: self.num_experts_per_tok.unwrap_or(8),
            moe_intermediate_size: self.moe_intermediate_size.unwrap_or(512),
            shared_expert_intermediate_size: self.shared_expert_intermediate_size.unwrap_or(512),
        });
        let config = HybridConfig {
            layer_types,
            linear,
            moe,
        };
        config.validate()?;
        Ok(config)
    }
}

impl HybridConfig {
    fn validate(&self) -> Result<(), String> {
        let l = &self.linear;
        let sizes = [
            ("linear_conv_kernel_dim", l.conv_kernel),
            ("linear_num_key_heads", l.num_key_heads),
            ("linear_num_value_heads", l.num_value_heads),
            ("linear_key_head_dim", l.key_head_dim),
            ("linear_value_head_dim", l.value_head_dim),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !l.num_value_heads.is_multiple_of(l.num_key_heads) {
            return Err(format!(
                "linear_num_value_heads {} is not a multiple of linear_num_key_heads {}",
                l.num_value_heads, l.num_key_heads
            ));
        }
        if let Some(m) = &self.moe {
            if m.num_experts == 0
                || m.num_experts_per_tok == 0
                || m.num_experts_per_tok > m.num_experts
                || m.moe_intermediate_size == 0
                || m.shared_expert_intermediate_size == 0
            {
                return Err(format!("invalid MoE sizes {m:?}"));
            }
        }
        Ok(())
    }

    /// Number of linear-attention layers.
    pub fn num_linear_layers(&self) -> usize {
        self.layer_types
            .iter()
            .filter(|t| **t == LayerType::LinearAttention)
            .count()
    }
}

/// A VL config (`{model_type: qwen3_5, text_config: {...}, vision_config: ...}`) → the text
/// config, with top-level keys the text config lacks (e.g. `tie_word_embeddings`,
/// `eos_token_id`) carried over. Other configs are returned unchanged.
pub(super) fn flatten_text_config(value: Value) -> Value {
    let Value::Object(outer) = value else {
        return value;
    };
    let Some(Value::Object(text)) = outer.get("text_config") else {
        return Value::Object(outer);
    };
    let mut text = text.clone();
    for (key, v) in &outer {
        if key != "text_config" && key != "vision_config" && !text.contains_key(key) {
            text.insert(key.clone(), v.clone());
        }
    }
    Value::Object(text)
}
