//! KV pool sizing and the runner it goes with ([`build_runner`]).
//!
//! CPU: `kv_cache_tokens`, or `max_num_seqs` typical contexts capped by `max_kv_cache_bytes`
//! (f32 KV). GPU (`Device::Cuda`): the runner first runs a profiling step at the largest batch
//! shape (`max_num_batched_tokens` tokens spread over `max_num_seqs` sequences, plus device
//! sampling of every row) on a small scratch cache, so the weights, activations (cached by the
//! buffer pool) and workspaces are resident; the scratch pages are freed, free/total memory is
//! read, and the pool gets `gpu_memory_utilization * total - used` bytes of bf16 KV (at most
//! `max_num_seqs` full contexts). `kv_cache_tokens`, when set, wins on both.
//!
//! Invariant: the returned runner's cache has exactly the returned number of pages (including
//! the scheduler's null page 0), and on a GPU every page is allocated before serving starts (the
//! caller's warm-up appends to every layer, which allocates the whole layer).

use arle_models::{CacheSpec, LayerCacheSpec, Model};
use arle_sched::BLOCK_TOKENS;
use arle_tensor::Device;

use crate::config::EngineConfig;
use crate::runner::ModelRunner;
use crate::EngineError;

/// Default context per sequence when sizing the KV pool automatically.
const AUTO_KV_TOKENS_PER_SEQ: usize = 4096;

/// KV bytes one token costs across all attention layers on `device` (f32 pages on the CPU, bf16
/// pages on a GPU). `CacheSpec::kv_bytes_per_token` is the CPU value.
pub(crate) fn kv_bytes_per_token_on(spec: &CacheSpec, device: Device) -> usize {
    let elem_bytes = match device {
        Device::Cpu => 4,
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => 2,
    };
    spec.layers
        .iter()
        .map(|l| match l {
            LayerCacheSpec::Attention {
                num_kv_heads,
                head_dim,
            } => 2 * num_kv_heads * head_dim * elem_bytes,
            LayerCacheSpec::Linear { .. } => 0,
        })
        .sum()
}

/// The runner (cache sized) and its number of KV pages, null page included.
pub(crate) fn build_runner(
    model: Box<dyn Model>,
    config: &EngineConfig,
    max_context_tokens: usize,
    num_state_slots: usize,
) -> Result<(ModelRunner, usize), EngineError> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(ordinal) = config.device {
        arle_tensor::cuda::backend(ordinal)?.set_deterministic(config.deterministic);
        let (mut runner, num_blocks) = match config.kv_cache_tokens {
            None => gpu::plan(model, config, max_context_tokens, num_state_slots, ordinal)?,
            Some(_) => {
                let num_blocks = kv_blocks(config, &model.info().cache, max_context_tokens);
                let runner = ModelRunner::with_state_slots(model, num_blocks, num_state_slots);
                (runner, num_blocks)
            }
        };
        if config.cuda_graphs && !runner.enable_step_graphs(ordinal, config.max_num_seqs)? {
            tracing::info!("CUDA graphs: off for this model (linear-attention state)");
        }
        return Ok((runner, num_blocks));
    }
    let num_blocks = kv_blocks(config, &model.info().cache, max_context_tokens);
    let runner = ModelRunner::with_state_slots(model, num_blocks, num_state_slots);
    Ok((runner, num_blocks))
}

/// Pages for the KV pool (including the null page): explicit, or `max_num_seqs` contexts capped
/// by the byte budget.
fn kv_blocks(config: &EngineConfig, spec: &CacheSpec, max_context_tokens: usize) -> usize {
    let tokens = config.kv_cache_tokens.unwrap_or_else(|| {
        // Room for max_num_seqs typical contexts, and always for one full context.
        let wanted = (config.max_num_seqs * max_context_tokens.min(AUTO_KV_TOKENS_PER_SEQ))
            .max(max_context_tokens);
        let per_token = kv_bytes_per_token_on(spec, config.device).max(1);
        wanted.min(config.max_kv_cache_bytes / per_token)
    });
    blocks_for_tokens(tokens)
}

/// + 1: block 0 is the scheduler's reserved null page, not capacity.
fn blocks_for_tokens(tokens: usize) -> usize {
    tokens.div_ceil(BLOCK_TOKENS).max(1) + 1
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::*;
    use crate::device_sampling::DeviceSampling;
    use crate::runner::{LogitsWanted, SeqState, SeqStep, StateInit};
    use crate::sampling::SamplerConfig;

    const GIB: f64 = (1u64 << 30) as f64;

    pub(super) fn plan(
        model: Box<dyn Model>,
        config: &EngineConfig,
        max_context_tokens: usize,
        num_state_slots: usize,
        ordinal: usize,
    ) -> Result<(ModelRunner, usize), EngineError> {
        let utilization = config.gpu_memory_utilization;
        if !(utilization > 0.0 && utilization <= 1.0) {
            return Err(EngineError::InvalidRequest(format!(
                "gpu_memory_utilization must be in (0, 1], got {utilization}"
            )));
        }
        let after_weights = arle_tensor::cuda::memory_info(ordinal)?;
        let profile = ProfileShape::new(config);
        let mut runner =
            ModelRunner::with_state_slots(model, profile.num_blocks(), num_state_slots);
        profile.run(&mut runner, num_state_slots > 0)?;
        runner.resize_cache(1, 0); // free the scratch pages before measuring
        let now = arle_tensor::cuda::memory_info(ordinal)?;
        let budget = (utilization as f64 * now.total_bytes as f64) as usize;
        let pool = arle_tensor::cuda::pool_stats(ordinal)?;
        // CUDA graphs keep their own activation buffers (shared by every graph): room for
        // another profiled step's worth, and at least the largest graph's logits (rows padded to
        // the top bucket, f32) twice (the graph's buffer and the copy handed out).
        let graph_reserve = if config.cuda_graphs {
            let rows = crate::step_graphs::max_graph_rows(config.max_num_seqs);
            let logits = 2 * rows * runner.model().info().vocab_size * std::mem::size_of::<f32>();
            (pool.cached_bytes + pool.live_bytes).max(logits)
        } else {
            0
        };
        let kv_bytes = budget.saturating_sub(now.used_bytes() + graph_reserve);
        let per_token = kv_bytes_per_token_on(&runner.model().info().cache, config.device).max(1);
        let useful_tokens = config.max_num_seqs.max(1) * max_context_tokens;
        let tokens = (kv_bytes / per_token).min(useful_tokens);
        if tokens < BLOCK_TOKENS {
            return Err(EngineError::InvalidRequest(format!(
                "no GPU memory left for the KV cache: {:.2} GiB used of {:.2} GiB allowed \
                 (gpu_memory_utilization {utilization})",
                now.used_bytes() as f64 / GIB,
                budget as f64 / GIB
            )));
        }
        let num_blocks = blocks_for_tokens(tokens);
        tracing::info!(
            "GPU memory plan (cuda:{ordinal}): total {:.2} GiB, budget {:.2} GiB ({utilization}); \
             in use after weights {:.2} GiB, after profiling {:.2} GiB (activation pool {:.2} GiB, \
             CUDA-graph reserve {:.2} GiB); KV {:.2} GiB = {} pages = {} tokens at {per_token} B/token",
            now.total_bytes as f64 / GIB,
            budget as f64 / GIB,
            after_weights.used_bytes() as f64 / GIB,
            now.used_bytes() as f64 / GIB,
            (pool.cached_bytes + pool.live_bytes) as f64 / GIB,
            graph_reserve as f64 / GIB,
            (tokens * per_token) as f64 / GIB,
            num_blocks - 1,
            (num_blocks - 1) * BLOCK_TOKENS,
        );
        runner.resize_cache(num_blocks, num_state_slots);
        Ok((runner, num_blocks))
    }

    /// The largest step: `max_num_batched_tokens` tokens over `min(max_num_seqs, tokens)`
    /// sequences, each sampling its last row.
    struct ProfileShape {
        seq_tokens: Vec<usize>,
    }

    impl ProfileShape {
        fn new(config: &EngineConfig) -> Self {
            let total = config.max_num_batched_tokens.max(1);
            let seqs = config.max_num_seqs.clamp(1, total);
            let seq_tokens = (0..seqs)
                .map(|i| total / seqs + usize::from(i < total % seqs))
                .collect();
            Self { seq_tokens }
        }

        fn num_blocks(&self) -> usize {
            1 + self
                .seq_tokens
                .iter()
                .map(|t| t.div_ceil(BLOCK_TOKENS))
                .sum::<usize>()
        }

        fn run(&self, runner: &mut ModelRunner, hybrid: bool) -> Result<(), EngineError> {
            let ids: Vec<Vec<u32>> = self.seq_tokens.iter().map(|&t| vec![0; t]).collect();
            let mut next_page = 1u32;
            let tables: Vec<Vec<u32>> = self
                .seq_tokens
                .iter()
                .map(|&t| {
                    let pages = t.div_ceil(BLOCK_TOKENS) as u32;
                    let table = (next_page..next_page + pages).collect();
                    next_page += pages;
                    table
                })
                .collect();
            let steps: Vec<SeqStep<'_>> = ids
                .iter()
                .zip(&tables)
                .enumerate()
                .map(|(i, (ids, table))| SeqStep {
                    token_ids: ids,
                    start_position: 0,
                    block_table: table,
                    logits: LogitsWanted::Last,
                    state: hybrid.then_some(SeqState {
                        slot: i as u32,
                        init: StateInit::Reset,
                        snapshot_positions: &[],
                    }),
                })
                .collect();
            let greedy = SamplerConfig::from_params(&crate::request::SamplingParams {
                temperature: 0.0,
                ..Default::default()
            })?;
            let device: Vec<Option<DeviceSampling<'_>>> = steps
                .iter()
                .map(|_| Some(DeviceSampling::new(&greedy, 0, &[], &[])))
                .collect();
            runner.execute_sampled(&steps, &[], &device)?;
            Ok(())
        }
    }
}
