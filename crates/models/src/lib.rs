//! `arle-models`: configs, weight loading and the model architectures.
//!
//! - [`gguf`]: GGUF v2/v3 reader (metadata + tensor directory over an mmap).
//! - [`safetensors`]: HF safetensors folders (single file or sharded), mmap'd.
//! - [`gguf_names`]: GGUF -> HF tensor names and the llama Q/K row un-permutation.
//! - [`weights`]: [`weights::WeightSource`], strict by-name access to tensors from a safetensors
//!   folder or a GGUF file (HF names in both cases), shape-checked; unused tensors are an error.
//! - [`config`]: raw HF `config.json` / GGUF metadata → validated [`config::ModelConfig`].
//! - [`batch`], [`cache`]: what one forward step reads ([`ForwardBatch`]) and writes ([`ModelCache`]).
//! - [`layers`]: shared decoder blocks (attention, SwiGLU MLP, RMSNorm, the dense decoder stack).
//! - One file per architecture: [`llama`], [`qwen3`], [`qwen3_5`], [`qwen3_5_moe`].
//! - [`load`]: path → ready [`Model`]; [`dummy`]: a model from `config.json` alone with random
//!   weights (`--load-format dummy`).

pub mod batch;
pub mod cache;
pub mod config;
pub mod dummy;
pub mod error;
pub mod gguf;
pub mod gguf_names;
pub mod layers;
pub mod llama;
pub mod load;
pub mod qwen3;
pub mod qwen3_5;
pub mod qwen3_5_moe;
pub mod rope;
pub mod safetensors;
pub mod weights;

pub use batch::ForwardBatch;
pub use cache::{
    CacheSpec, CapturedState, LayerCache, LayerCacheSpec, LinearLayerSnapshot, LinearState,
    ModelCache, StateSnapshot,
};
pub use error::{ModelError, Result};
pub use load::{load_model, load_model_on, LoadedModel, ModelFormat};

use arle_tensor::Tensor;

/// Receives named intermediate activations during a forward pass (golden tests, debugging).
/// Names follow HF module paths, e.g. `model.layers.0.self_attn.q_proj.out`.
pub type Tracer<'a> = &'a mut dyn FnMut(&str, &Tensor);

/// Static facts about a loaded model that the engine needs.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// HF `model_type`, e.g. `llama`, `qwen3`.
    pub architecture: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    /// Longest sequence (prompt + generation) the model supports.
    pub max_context_tokens: usize,
    pub cache: CacheSpec,
}

/// A causal LM: one forward step over a batch of sequences.
pub trait Model: Send + Sync {
    fn info(&self) -> &ModelInfo;

    /// Runs the step and returns logits `[batch.logits_rows.len(), vocab]`.
    /// Writes this step's keys/values (and, for hybrid models, states) into `cache`.
    fn forward(
        &self,
        batch: &ForwardBatch,
        cache: &mut ModelCache,
        trace: Option<Tracer<'_>>,
    ) -> Result<Tensor>;
}
