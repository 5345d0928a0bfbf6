//! RoPE configuration and inverse-frequency computation (MODEL-SPECS §1.2):
//! `default`, `linear`, `llama3`, `yarn`.
//!
//! Invariant: inv_freq is computed in f32 with torch's op order (HF `ROPE_INIT_FUNCTIONS`), so it
//! matches HF's buffer bit for bit up to `powf` rounding: `a / t` with a Python scalar `a` is
//! `reciprocal(t) * a` in torch, scalars are rounded to f32 before tensor ops, and quantities HF
//! computes in Python (yarn's correction range, attention factor) are computed in f64 here.

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
    /// Unscaled RoPE with base `theta` over the whole head.
    pub fn plain(theta: f32) -> Self {
        Self {
            theta,
            partial_rotary_factor: 1.0,
            scaling: RopeScaling::Default,
        }
    }

    /// Number of rotated dims per head: `int(head_dim * partial_rotary_factor)`.
    pub fn rotary_dim(&self, head_dim: usize) -> usize {
        (head_dim as f64 * self.partial_rotary_factor as f64) as usize
    }

    /// The table for heads of `head_dim`: inv_freq `[rotary_dim / 2]` and the cos/sin scale.
    pub fn table(&self, head_dim: usize) -> RopeTable {
        let rotary_dim = self.rotary_dim(head_dim);
        let base = base_inv_freq(self.theta, rotary_dim);
        let (inv_freq, attention_scaling) = match &self.scaling {
            RopeScaling::Default => (base, 1.0),
            RopeScaling::Linear { factor } => (base.iter().map(|f| f / factor).collect(), 1.0),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => (
                llama3_inv_freq(
                    &base,
                    *factor,
                    *low_freq_factor,
                    *high_freq_factor,
                    *original_max_position_embeddings,
                ),
                1.0,
            ),
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                truncate,
                attention_factor,
            } => {
                let ramp = YarnRamp {
                    rotary_dim,
                    theta: self.theta as f64,
                    original_max_position_embeddings: *original_max_position_embeddings as f64,
                    beta_fast: *beta_fast as f64,
                    beta_slow: *beta_slow as f64,
                    truncate: *truncate,
                };
                let scale = attention_factor.unwrap_or_else(|| yarn_mscale(*factor as f64) as f32);
                (yarn_inv_freq(self.theta, *factor, &ramp), scale)
            }
        };
        RopeTable {
            inv_freq,
            rotary_dim,
            attention_scaling,
        }
    }
}

/// `theta ** (f32(2i) / f32(rot))` for i in 0..rot/2 (torch: `base ** (arange(0, rot, 2).float() / rot)`).
fn pos_freqs(theta: f32, rotary_dim: usize) -> Vec<f32> {
    (0..rotary_dim / 2)
        .map(|i| theta.powf((2 * i) as f32 / rotary_dim as f32))
        .collect()
}

/// Unscaled inverse frequencies: `reciprocal(pos_freqs)`.
fn base_inv_freq(theta: f32, rotary_dim: usize) -> Vec<f32> {
    pos_freqs(theta, rotary_dim)
        .into_iter()
        .map(|p| 1.0 / p)
        .collect()
}

/// HF `_compute_llama3_parameters`, op for op.
fn llama3_inv_freq(
    inv_freq: &[f32],
    factor: f32,
    low_freq_factor: f32,
    high_freq_factor: f32,
    original_max_position_embeddings: usize,
) -> Vec<f32> {
    let old_context_len = original_max_position_embeddings as f64;
    // Python floats, compared against an f32 tensor (scalar rounded to f32).
    let low_freq_wavelen = (old_context_len / low_freq_factor as f64) as f32;
    let high_freq_wavelen = (old_context_len / high_freq_factor as f64) as f32;
    let two_pi = (2.0 * std::f64::consts::PI) as f32;
    let factor_span = (high_freq_factor as f64 - low_freq_factor as f64) as f32;
    inv_freq
        .iter()
        .map(|&inv| {
            let wavelen = (1.0 / inv) * two_pi;
            let inv_llama = if wavelen > low_freq_wavelen {
                inv / factor
            } else {
                inv
            };
            // Medium band: neither `wavelen < high` nor `wavelen > low`.
            if wavelen < high_freq_wavelen || wavelen > low_freq_wavelen {
                return inv_llama;
            }
            let smooth = ((1.0 / wavelen) * old_context_len as f32 - low_freq_factor) / factor_span;
            (1.0 - smooth) * inv_llama / factor + smooth * inv_llama
        })
        .collect()
}

/// Parameters of yarn's linear ramp between the extrapolated and interpolated frequencies.
struct YarnRamp {
    rotary_dim: usize,
    theta: f64,
    original_max_position_embeddings: f64,
    beta_fast: f64,
    beta_slow: f64,
    truncate: bool,
}

impl YarnRamp {
    /// Inverse dimension formula: the dim at which `num_rotations` full turns fit the context.
    fn correction_dim(&self, num_rotations: f64) -> f64 {
        let dim = self.rotary_dim as f64;
        let turns =
            self.original_max_position_embeddings / (num_rotations * 2.0 * std::f64::consts::PI);
        dim * turns.ln() / (2.0 * self.theta.ln())
    }

    /// `[rotary_dim / 2]` ramp values in `[0, 1]` (HF `linear_ramp_factor`).
    fn values(&self) -> Vec<f32> {
        let mut low = self.correction_dim(self.beta_fast);
        let mut high = self.correction_dim(self.beta_slow);
        if self.truncate {
            low = low.floor();
            high = high.ceil();
        }
        let low = low.max(0.0);
        let mut high = high.min(self.rotary_dim as f64 - 1.0);
        if low == high {
            high += 0.001;
        }
        let (low_f32, span_f32) = (low as f32, (high - low) as f32);
        (0..self.rotary_dim / 2)
            .map(|i| ((i as f32 - low_f32) / span_f32).clamp(0.0, 1.0))
            .collect()
    }
}

/// HF `_compute_yarn_parameters` inv_freq, op for op.
fn yarn_inv_freq(theta: f32, factor: f32, ramp: &YarnRamp) -> Vec<f32> {
    let pos = pos_freqs(theta, ramp.rotary_dim);
    pos.iter()
        .zip(ramp.values())
        .map(|(&p, r)| {
            let extrapolation = 1.0 / p;
            let interpolation = 1.0 / (factor * p);
            let extrapolation_factor = 1.0 - r;
            interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
        })
        .collect()
}

/// yarn's default attention factor: `0.1 ln(factor) + 1` (1 when factor <= 1).
fn yarn_mscale(factor: f64) -> f64 {
    if factor <= 1.0 {
        1.0
    } else {
        0.1 * factor.ln() + 1.0
    }
}
