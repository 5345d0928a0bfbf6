//! `--load-format dummy` (as in vLLM): a model built from `config.json` alone, with deterministic
//! random weights, so benchmarks run at real shapes without checkpoint files.
//!
//! Values. Element `i` of tensor `name` is `center + k · 2⁻¹²` with
//! `k = (splitmix64(key + (i + 1) · 0x9E3779B97F4A7C15) >> 56) − 128 ∈ [−128, 127]` and
//! `key = seed ^ fnv1a64(name)`: matrices and vectors are U(−0.031, 0.031) (std ≈ 0.018, close to
//! HF's `initializer_range` 0.02); RMSNorm weights that multiply (`w · x̂`) have `center = 1`;
//! Qwen3.5's zero-centred `(1 + w) · x̂` norms (every hybrid-model norm except the gated-delta-net
//! output norm `linear_attn.norm`) have `center = 0`. Activations therefore stay O(1) per layer
//! and finite through deep stacks.
//!
//! Invariants: values are a pure function of (seed, name, index); the host copy is bf16 (`center
//! = 0` values are exact in bf16, `1 + k · 2⁻¹²` rounds to nearest even); on a GPU the device copy
//! is filled by the same hash there ([`arle_tensor::cuda::random`]), bit-identical to the host
//! bytes, so host reads of a weight (e.g. conv1d, `A_log`) see the values the GPU uses. A name
//! taken twice (tied embeddings) yields the same weight (cached). The dummy source "contains"
//! every name except `lm_head.weight` of tied models and the VL-checkpoint root
//! `model.language_model.*`, so each architecture takes the layout of a text-only checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arle_tensor::{Bytes, DType, Device, Weight};

use crate::config::ModelConfig;
use crate::load::{build, LoadedModel, ModelFormat};
use crate::weights::WeightSource;
use crate::{ModelError, Result};

/// The seed `--load-format dummy` uses unless told otherwise.
pub const DEFAULT_DUMMY_SEED: u64 = 0;

/// Scale of one hash step: values are `center + k · 2⁻¹²`, `k ∈ [−128, 127]`.
pub const DUMMY_STEP: f32 = 1.0 / 4096.0;

/// Elements per host thread below which generation stays on one thread.
const MIN_ELEMENTS_PER_THREAD: usize = 1 << 20;

/// Parameter counts of a dummy model (what was generated), for FLOP and byte estimates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DummyStats {
    /// Every generated element (a tied tensor counts once).
    pub total_params: usize,
    /// `*embed_tokens.weight` (read one row per token, not streamed per step).
    pub embedding_params: usize,
    /// The vocabulary projection applied to logits rows (`lm_head.weight`, or the tied embedding).
    pub lm_head_params: usize,
}

/// The lazily generated tensors behind a dummy [`WeightSource`].
#[derive(Debug)]
pub struct DummyWeights {
    seed: u64,
    tied_embeddings: bool,
    /// Hybrid (Qwen3.5) models: norms are zero-centred except the gated-delta-net output norm.
    zero_centred_norms: bool,
    taken: HashMap<String, Weight>,
    stats: DummyStats,
}

impl DummyWeights {
    pub fn new(config: &ModelConfig, seed: u64) -> Self {
        Self {
            seed,
            tied_embeddings: config.tie_word_embeddings,
            zero_centred_norms: config.architecture.is_hybrid(),
            taken: HashMap::new(),
            stats: DummyStats::default(),
        }
    }

    /// Whether a text-only checkpoint of this config holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        match name {
            "lm_head.weight" => !self.tied_embeddings,
            n => !n.starts_with("model.language_model."),
        }
    }

    pub fn stats(&self) -> DummyStats {
        self.stats
    }

    /// `center` of tensor `name` (see the module doc).
    fn center(&self, name: &str) -> f32 {
        let is_norm = name.ends_with("norm.weight");
        let multiplies = !self.zero_centred_norms || name.contains("linear_attn.");
        if is_norm && multiplies {
            1.0
        } else {
            0.0
        }
    }

    /// The weight `name` of `shape`, generated on first use and placed on `device`.
    /// `f32_output`: it projects onto the vocabulary (logits), as in [`WeightSource::take`].
    pub fn take(
        &mut self,
        name: &str,
        shape: &[usize],
        device: Device,
        f32_output: bool,
    ) -> Result<Weight> {
        if let Some(w) = self.taken.get(name) {
            if w.shape() != shape {
                return Err(ModelError::TensorShape {
                    path: PathBuf::from("<dummy>"),
                    name: name.to_string(),
                    expected: shape.to_vec(),
                    actual: w.shape().to_vec(),
                });
            }
            return Ok(w.clone());
        }
        let key = self.seed ^ fnv1a64(name);
        let center = self.center(name);
        let elements: usize = shape.iter().product();
        let host = Weight::new(
            DType::BF16,
            shape.to_vec(),
            Bytes::from_vec(host_values(key, center, elements)),
        )?;
        let weight = place(host, key, center, device, f32_output)?;
        self.stats.total_params += elements;
        if name.ends_with("embed_tokens.weight") {
            self.stats.embedding_params += elements;
        }
        if name == "lm_head.weight"
            || (self.tied_embeddings && name.ends_with("embed_tokens.weight"))
        {
            self.stats.lm_head_params += elements;
        }
        self.taken.insert(name.to_string(), weight.clone());
        Ok(weight)
    }
}

/// The weight with its device copy filled on `device` by the same hash.
fn place(host: Weight, key: u64, center: f32, device: Device, f32_output: bool) -> Result<Weight> {
    match device {
        Device::Cpu => {
            let _ = (key, center, f32_output);
            Ok(host)
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => Ok(arle_tensor::cuda::random::with_dummy_gpu_copy(
            host,
            arle_tensor::cuda::random::DummyFill { key, center },
            ordinal,
            f32_output,
        )?),
    }
}

/// FNV-1a over the name's bytes: a per-tensor stream key.
pub fn fnv1a64(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Element `i` of the stream `key` (the formula of the module doc; `random.cu` mirrors it).
pub fn dummy_value(key: u64, center: f32, i: u64) -> f32 {
    let mut z = key.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let k = (z >> 56) as i32 - 128;
    center + k as f32 * DUMMY_STEP
}

/// `elements` bf16 values (little-endian bytes) of stream `key`, generated on all cores.
fn host_values(key: u64, center: f32, elements: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; elements * 2];
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(elements.div_ceil(MIN_ELEMENTS_PER_THREAD))
        .max(1);
    let per_thread = elements.div_ceil(threads).max(1);
    let fill = |start: usize, chunk: &mut [u8]| {
        for (j, pair) in chunk.chunks_exact_mut(2).enumerate() {
            let v = dummy_value(key, center, (start + j) as u64);
            pair.copy_from_slice(&half::bf16::from_f32(v).to_bits().to_le_bytes());
        }
    };
    if threads == 1 {
        fill(0, &mut bytes);
        return bytes;
    }
    std::thread::scope(|s| {
        for (t, chunk) in bytes.chunks_mut(per_thread * 2).enumerate() {
            s.spawn(move || fill(t * per_thread, chunk));
        }
    });
    bytes
}

/// Loads the architecture of `path` (a folder holding `config.json`, or the file itself) with
/// dummy weights on `device`. The format is [`ModelFormat::HfFolder`] of the config's folder, so
/// a `tokenizer.json` beside the config is used when present.
pub fn load_dummy_model_on(
    path: &Path,
    device: Device,
    seed: u64,
) -> Result<(LoadedModel, DummyStats)> {
    let (dir, config_path) = if path.is_dir() {
        (path.to_path_buf(), path.join("config.json"))
    } else {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir, path.to_path_buf())
    };
    if !config_path.is_file() {
        return Err(ModelError::Unsupported(format!(
            "{}: --load-format dummy needs a config.json",
            path.display()
        )));
    }
    let config = ModelConfig::from_hf_json(&config_path)?;
    let mut ws = WeightSource::dummy(&dir, &config, seed).on_device(device);
    let model = build(&mut ws, &config)?;
    let stats = ws.dummy_stats().unwrap_or_default();
    ws.finish()?;
    Ok((
        LoadedModel {
            model,
            config,
            format: ModelFormat::HfFolder(dir),
        },
        stats,
    ))
}
