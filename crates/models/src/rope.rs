//! RoPE configuration and inverse-frequency computation (MODEL-SPECS §1.2):
//! `default`, `linear`, `llama3`, `yarn`. inv_freq is computed in f32 with torch's op order.

use arle_tensor::ops::RopeTable;

/// Frequency scaling variants.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    Default,
    Linear {
        factor: f32,
    },
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: usize,
    },
    Yarn {
        factor: f32,
        original_max_position_embeddings: usize,
        beta_fast: f32,
        beta_slow: f32,
        truncate: bool,
        attention_factor: Option<f32>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct RopeConfig {
    pub theta: f32,
    /// Fraction of head_dim that rotates (1.0 for llama/qwen3).
    pub partial_rotary_factor: f32,
    pub scaling: RopeScaling,
}

impl RopeConfig {
    /// The table for heads of `head_dim`. (Skeleton: default scaling only.)
    pub fn table(&self, head_dim: usize) -> RopeTable {
        let rotary_dim = (head_dim as f32 * self.partial_rotary_factor) as usize;
        let inv_freq = (0..rotary_dim / 2)
            .map(|i| 1.0 / self.theta.powf((2 * i) as f32 / rotary_dim as f32))
            .collect();
        RopeTable {
            inv_freq,
            rotary_dim,
            attention_scaling: 1.0,
        }
    }
}
