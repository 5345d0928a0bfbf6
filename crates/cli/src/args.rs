//! Argument groups shared by several subcommands.

use std::path::PathBuf;

use anyhow::Context;
use arle_engine::{EngineConfig, SamplingParams};

/// Which model to load and how to run it.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model: HF folder, .gguf file, built-in name (default: smollm2-135m-instruct) or HF hub id.
    #[arg(long, visible_alias = "model-path", env = "ARLE_MODEL")]
    pub model: Option<String>,
    /// Name clients use in the `model` field (default: derived from --model).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Most sequences decoded together in one step.
    #[arg(long, default_value_t = 16)]
    pub max_num_seqs: usize,
    /// Token budget of one engine step (prefill chunks + decodes).
    #[arg(long, default_value_t = 512)]
    pub max_num_batched_tokens: usize,
    /// KV cache capacity in tokens (default: enough for max_num_seqs full contexts, capped by memory).
    #[arg(long)]
    pub kv_cache_tokens: Option<usize>,
    /// Longest prompt + completion accepted (default: the model's context length).
    #[arg(long)]
    pub max_model_len: Option<usize>,
    /// Requests that may wait for admission before new ones get 429.
    #[arg(long, default_value_t = 256)]
    pub max_waiting_requests: usize,
    /// Turn off prefix reuse (radix KV pages and hybrid state snapshots).
    #[arg(long)]
    pub no_prefix_caching: bool,
    /// Most cached linear-state snapshots kept for hybrid models (LRU beyond that).
    #[arg(long, default_value_t = 256)]
    pub max_state_snapshots: usize,
    /// GPU only: fraction of the GPU's memory to use (weights, activations, KV cache); the KV
    /// cache gets what is left after a profiling step. --kv-cache-tokens overrides it.
    #[arg(long, default_value_t = 0.90)]
    pub gpu_memory_utilization: f32,
    /// Batch-invariant kernels: a request's output does not depend on what it was batched with
    /// (GPU: fixed-shape GEMMs, one attention kernel; slower).
    #[arg(long)]
    pub deterministic: bool,
    /// GPU only: run every step eagerly (no CUDA graphs for decode steps).
    #[arg(long)]
    pub enforce_eager: bool,
    /// `dummy`: build the model from config.json alone with random weights (benchmarks).
    #[arg(long, value_enum, default_value_t = crate::bench::engine::LoadFormat::Auto)]
    pub load_format: crate::bench::engine::LoadFormat,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    /// NVIDIA GPU 0 (needs a binary built with `--features cuda`).
    Cuda,
}

impl Backend {
    /// The engine device, or an error when this binary was built without the backend.
    pub fn device(self) -> anyhow::Result<arle_tensor::Device> {
        match self {
            Backend::Cpu => Ok(arle_tensor::Device::Cpu),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(arle_tensor::Device::Cuda(0)),
            #[cfg(not(feature = "cuda"))]
            Backend::Cuda => anyhow::bail!(
                "--backend cuda: this binary was built without CUDA support \
                 (rebuild with `cargo build --release -p arle-cli --features cuda`)"
            ),
        }
    }
}

impl ModelArgs {
    /// Resolves the model (downloading if needed), sets threads, and builds the engine config.
    pub fn engine_config(&self) -> anyhow::Result<EngineConfig> {
        let device = self.backend.device()?;
        if let Some(n) = self.threads {
            arle_tensor::threads::init_cpu_threads(n)
                .map_err(|e| anyhow::anyhow!("--threads {n}: {e}"))?;
        }
        let spec = self
            .model
            .clone()
            .unwrap_or_else(|| arle_hub::default_model_alias().to_string());
        let path = arle_hub::resolve_model(&spec, &arle_hub::HubConfig::from_env())
            .with_context(|| format!("resolving model `{spec}`"))?;
        let served_model_name = self
            .served_model_name
            .clone()
            .unwrap_or_else(|| model_id(&spec, &path));
        Ok(EngineConfig {
            model_path: path,
            served_model_name,
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
            kv_cache_tokens: self.kv_cache_tokens,
            max_model_len: self.max_model_len,
            max_waiting_requests: self.max_waiting_requests,
            enable_prefix_caching: !self.no_prefix_caching,
            max_state_snapshots: self.max_state_snapshots,
            device,
            gpu_memory_utilization: self.gpu_memory_utilization,
            deterministic: self.deterministic,
            cuda_graphs: !self.enforce_eager,
            ..EngineConfig::default()
        })
    }
}

/// The id a model is served under: the alias or hub id as typed, or a path's file stem.
fn model_id(spec: &str, path: &std::path::Path) -> String {
    if std::path::Path::new(spec).exists() {
        let p = PathBuf::from(spec);
        let stem = if p.is_dir() {
            p.file_name()
        } else {
            p.file_stem()
        };
        return stem
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
    }
    spec.to_string()
}

/// Sampling flags of `arle run`.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate (default: up to the context limit).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Same seed => same output.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            ..SamplingParams::default()
        }
    }
}
