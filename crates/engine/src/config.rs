//! [`EngineConfig`]: everything needed to start an engine.

use std::path::PathBuf;

use arle_tensor::Device;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Resolved local model: HF folder or `.gguf` file.
    pub model_path: PathBuf,
    /// Id clients use in `model`.
    pub served_model_name: String,
    /// Most sequences in one step.
    pub max_num_seqs: usize,
    /// Token budget of one step (prefill chunks + decodes).
    pub max_num_batched_tokens: usize,
    /// KV capacity in tokens; `None` = on the CPU `max_num_seqs` contexts of
    /// `min(max_model_len, 4096)` capped by `max_kv_cache_bytes`, on a GPU what
    /// `gpu_memory_utilization` leaves after weights and activations.
    pub kv_cache_tokens: Option<usize>,
    /// Upper bound on KV memory when sizing automatically on the CPU (f32 pages).
    pub max_kv_cache_bytes: usize,
    /// Longest prompt + completion accepted; `None` = the model's context length.
    pub max_model_len: Option<usize>,
    /// Requests allowed to wait for admission before `submit` reports overload.
    pub max_waiting_requests: usize,
    /// Reuse cached prompt prefixes (KV pages, and linear-state snapshots for hybrid models).
    pub enable_prefix_caching: bool,
    /// Hybrid models: most linear-state snapshots kept for prefix reuse (LRU beyond).
    pub max_state_snapshots: usize,
    /// Hybrid models: most bytes of snapshot data kept (LRU beyond).
    pub max_state_snapshot_bytes: usize,
    /// Where the model runs: weights are placed there at load (on a GPU: dequantised to bf16),
    /// and every KV page is allocated there before serving (the warm-up).
    pub device: Device,
    /// GPU only: fraction of the device's total memory the engine may use (weights, activations,
    /// workspaces and the KV pool). The KV pool gets what is left of it after a profiling step at
    /// the largest batch shape; `kv_cache_tokens`, when set, wins.
    pub gpu_memory_utilization: f32,
    /// Batch-invariant execution: a request's tokens do not depend on the other requests in its
    /// batches (GPU: fixed-shape GEMM chunks, one attention kernel for every query; slower).
    pub deterministic: bool,
    /// GPU only: replay plain decode steps of attention-only models as CUDA graphs (captured
    /// per batch bucket on first use; see `step_graphs`). Off here; the CLI turns it on unless
    /// `--enforce-eager`. Capture needs the device stream to itself: one engine per GPU.
    pub cuda_graphs: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            model_path: PathBuf::new(),
            served_model_name: "model".into(),
            max_num_seqs: 16,
            max_num_batched_tokens: 512,
            kv_cache_tokens: None,
            max_kv_cache_bytes: 4 << 30,
            max_model_len: None,
            max_waiting_requests: 256,
            enable_prefix_caching: true,
            max_state_snapshots: 256,
            max_state_snapshot_bytes: 1 << 30,
            device: Device::Cpu,
            gpu_memory_utilization: 0.90,
            deterministic: false,
            cuda_graphs: false,
        }
    }
}
