//! [`WeightSource`]: strict, by-HF-name access to a checkpoint's tensors.
//!
//! Invariants: every `take` checks the shape; `finish` fails if any tensor in the checkpoint was
//! never taken (unexpected tensors), except names the caller declared ignorable (e.g.
//! `model.visual.*`, `mtp.*`, `rotary_emb.inv_freq`). GGUF names are mapped to HF names and
//! llama Q/K rows un-permuted before the model sees them. A tensor may be taken more than once
//! (tied embeddings); all weights share the mapped file bytes except un-permuted ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arle_tensor::{Device, Weight};

use crate::config::ModelConfig;
use crate::dummy::{DummyStats, DummyWeights};
use crate::gguf::GgufFile;
use crate::gguf_names::{self, RowTransform};
use crate::{ModelError, Result};

/// GGUF tensors that carry no model parameter we load (llama3 rope factors come from config).
const GGUF_IGNORED: &[&str] = &["rope_freqs.weight"];

#[derive(Debug)]
struct Entry {
    weight: Weight,
    /// File the tensor lives in (a shard, or the GGUF file).
    file: PathBuf,
    /// GGUF name when it differs from the HF name (for messages).
    source_name: Option<String>,
    transform: RowTransform,
    taken: bool,
}

#[derive(Debug)]
pub struct WeightSource {
    /// The folder or file the checkpoint was opened from.
    origin: PathBuf,
    entries: BTreeMap<String, Entry>,
    ignored_prefixes: Vec<String>,
    /// Where taken weights are placed (uploaded, dequantised to bf16, when not the CPU).
    device: Device,
    /// `--load-format dummy`: every tensor is generated on `take` (see [`crate::dummy`]).
    dummy: Option<DummyWeights>,
}

/// Weights projecting onto the vocabulary: on a GPU, `linear` with them yields f32 logits.
const LOGITS_WEIGHTS: &[&str] = &["lm_head.weight", "model.embed_tokens.weight"];

impl WeightSource {
    /// An HF folder: `model.safetensors` or a sharded `model.safetensors.index.json`.
    pub fn from_hf_folder(dir: &Path) -> Result<Self> {
        let mut source = Self::empty(dir);
        for e in crate::safetensors::read_folder(dir)? {
            source.insert(e.name, e.weight, e.file, None, RowTransform::None)?;
        }
        Ok(source)
    }

    /// A GGUF file of arch llama or qwen3, with tensors renamed to HF names and (llama) Q/K
    /// rows un-permuted. `config` gives the head counts.
    pub fn from_gguf(gguf: &GgufFile, config: &ModelConfig) -> Result<Self> {
        let mut source = Self::empty(&gguf.path);
        for info in &gguf.tensors {
            if GGUF_IGNORED.contains(&info.name.as_str()) {
                continue;
            }
            let hf = gguf_names::hf_name(&info.name).unwrap_or_else(|| info.name.clone());
            let transform = gguf_names::row_transform(
                config.architecture,
                &info.name,
                config.num_attention_heads,
                config.num_key_value_heads,
            );
            let weight = gguf.weight(info)?;
            let source_name = (hf != info.name).then(|| info.name.clone());
            source.insert(hf, weight, gguf.path.clone(), source_name, transform)?;
        }
        Ok(source)
    }

    /// In-memory weights (tests, synthetic models); `origin` is only used in errors.
    pub fn from_weights(origin: &Path, weights: Vec<(String, Weight)>) -> Result<Self> {
        let mut source = Self::empty(origin);
        for (name, weight) in weights {
            source.insert(name, weight, origin.to_path_buf(), None, RowTransform::None)?;
        }
        Ok(source)
    }

    /// Tensors whose HF name starts with any of `prefixes` are not reported by [`finish`].
    ///
    /// [`finish`]: WeightSource::finish
    pub fn ignore_prefixes(mut self, prefixes: &[&str]) -> Self {
        self.ignored_prefixes
            .extend(prefixes.iter().map(|p| p.to_string()));
        self
    }

    /// Taken weights are placed on `device` (a GPU copy in bf16; the CPU is a no-op).
    pub fn on_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    fn empty(origin: &Path) -> Self {
        Self {
            origin: origin.to_path_buf(),
            entries: BTreeMap::new(),
            ignored_prefixes: Vec::new(),
            device: Device::Cpu,
            dummy: None,
        }
    }

    /// Random weights for `config` (`--load-format dummy`); `origin` is only used in errors.
    pub fn dummy(origin: &Path, config: &ModelConfig, seed: u64) -> Self {
        let mut source = Self::empty(origin);
        source.dummy = Some(DummyWeights::new(config, seed));
        source
    }

    /// What a dummy source generated so far (`None` for a checkpoint).
    pub fn dummy_stats(&self) -> Option<DummyStats> {
        self.dummy.as_ref().map(DummyWeights::stats)
    }

    fn insert(
        &mut self,
        name: String,
        weight: Weight,
        file: PathBuf,
        source_name: Option<String>,
        transform: RowTransform,
    ) -> Result<()> {
        if self.entries.contains_key(&name) {
            return Err(ModelError::Corrupt {
                path: file,
                detail: format!("tensor `{name}` appears twice"),
            });
        }
        let entry = Entry {
            weight,
            file,
            source_name,
            transform,
            taken: false,
        };
        self.entries.insert(name, entry);
        Ok(())
    }

    /// Takes tensor `name` (HF naming), checking it has `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Weight> {
        if let Some(dummy) = self.dummy.as_mut() {
            return dummy.take(name, shape, self.device, LOGITS_WEIGHTS.contains(&name));
        }
        let entry = self
            .entries
            .get_mut(name)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.origin.clone(),
                name: name.to_string(),
            })?;
        if entry.weight.shape() != shape {
            let shown = match &entry.source_name {
                Some(src) => format!("{name} (`{src}` in the file)"),
                None => name.to_string(),
            };
            return Err(ModelError::TensorShape {
                path: entry.file.clone(),
                name: shown,
                expected: shape.to_vec(),
                actual: entry.weight.shape().to_vec(),
            });
        }
        entry.taken = true;
        let weight = gguf_names::apply(entry.weight.clone(), entry.transform, name, &entry.file)?;
        if self.device == Device::Cpu {
            return Ok(weight);
        }
        Ok(weight.to_device(self.device, LOGITS_WEIGHTS.contains(&name))?)
    }

    /// Takes `name` if present (e.g. an untied `lm_head.weight`, optional biases).
    pub fn take_optional(&mut self, name: &str, shape: &[usize]) -> Result<Option<Weight>> {
        if self.contains(name) {
            self.take(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether the checkpoint contains `name`.
    pub fn contains(&self, name: &str) -> bool {
        if let Some(dummy) = &self.dummy {
            return dummy.contains(name);
        }
        self.entries.contains_key(name)
    }

    /// The shape of `name` without taking it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.weight.shape())
    }

    /// Every tensor name (HF naming), sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Errors if tensors remain that were never taken (and are not ignored).
    pub fn finish(self) -> Result<()> {
        let names: Vec<String> = self
            .entries
            .iter()
            .filter(|(name, e)| {
                !e.taken && !self.ignored_prefixes.iter().any(|p| name.starts_with(p))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if names.is_empty() {
            Ok(())
        } else {
            Err(ModelError::UnexpectedTensors {
                path: self.origin,
                names,
            })
        }
    }
}
