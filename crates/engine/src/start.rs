//! [`start_engine`]: load the model and tokenizer, size the KV pool, warm up, and spawn the
//! engine thread. Loading errors surface here, before anything is served.
//! [`start_engine_with_model`] does the same for a model built in process (tests, benchmarks).
//!
//! Hybrid models (`CacheSpec::has_linear_layers`) get `max_num_seqs` state slots and a snapshot
//! index capped by `max_state_snapshots` / `max_state_snapshot_bytes`; attention-only models get
//! neither and behave exactly as before.
//!
//! `config.device`: the weights are placed there by the loader; on a GPU the KV pool is sized
//! from the memory left after a profiling step (`memory_plan`), and the first forward (the
//! warm-up) allocates every KV page on the same device, so nothing is allocated lazily while
//! serving. Logits on a GPU are sampled there (`device_sampling`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arle_models::{load_model_on, Model, ModelFormat};
use arle_sched::{
    CacheConfig, Scheduler, SchedulerConfig, SnapshotCacheConfig, BLOCK_TOKENS,
    SNAPSHOT_INTERVAL_TOKENS,
};

use crate::config::EngineConfig;
use crate::engine_loop::EngineLoop;
use crate::handle::{EngineHandle, EngineStats, ServedModel, Shared};
use crate::memory_plan::build_runner;
use crate::runner::{LogitsWanted, ModelRunner, SeqState, SeqStep, StateInit};
use crate::sequence::ModelContext;
use crate::tokenizer::Tokenizer;
use crate::EngineError;

/// A model ready to serve, with its tokenizer and the model config's end-of-sequence ids.
pub struct EngineModel {
    pub model: Box<dyn Model>,
    pub tokenizer: Tokenizer,
    pub eos_token_ids: Vec<u32>,
}

/// Loads everything and starts the engine thread.
pub fn start_engine(config: EngineConfig) -> Result<EngineHandle, EngineError> {
    let loaded = load_model_on(&config.model_path, config.device)?;
    let tokenizer = match &loaded.format {
        ModelFormat::HfFolder(dir) => Tokenizer::from_hf_dir(dir)?,
        ModelFormat::Gguf(file) => Tokenizer::from_gguf(file)?,
    };
    let parts = EngineModel {
        model: loaded.model,
        tokenizer,
        eos_token_ids: loaded.config.eos_token_ids.clone(),
    };
    start_engine_with_model(parts, config)
}

/// Starts the engine thread on an already built model (`config.model_path` is not read).
pub fn start_engine_with_model(
    parts: EngineModel,
    config: EngineConfig,
) -> Result<EngineHandle, EngineError> {
    let EngineModel {
        model,
        tokenizer,
        eos_token_ids: model_eos_ids,
    } = parts;
    let tokenizer = Arc::new(tokenizer);
    let model_ctx = model.info().max_context_tokens;
    let wanted_context_tokens = config.max_model_len.map_or(model_ctx, |m| m.min(model_ctx));
    let cache_config = cache_config(&config, &model.info().cache);
    let (mut runner, num_blocks) = build_runner(
        model,
        &config,
        wanted_context_tokens,
        cache_config.num_state_slots,
    )?;
    let kv_capacity_tokens = (num_blocks - 1) * BLOCK_TOKENS;
    // One sequence must always fit the pool: a smaller pool shortens the context.
    let max_context_tokens = wanted_context_tokens.min(kv_capacity_tokens);
    if max_context_tokens < wanted_context_tokens {
        tracing::warn!(
            "KV cache holds {kv_capacity_tokens} tokens: context limited to that (model: {wanted_context_tokens})"
        );
    }
    let mut eos_token_ids = model_eos_ids;
    for &id in tokenizer.eos_ids() {
        if !eos_token_ids.contains(&id) {
            eos_token_ids.push(id);
        }
    }
    let scheduler = Scheduler::with_cache_config(
        SchedulerConfig {
            num_blocks,
            max_num_batched_tokens: config.max_num_batched_tokens,
            max_num_seqs: config.max_num_seqs,
            max_model_len: max_context_tokens,
        },
        cache_config,
    )
    .map_err(|e| EngineError::InvalidRequest(format!("engine config: {e}")))?;
    warm_up(&mut runner, cache_config.num_state_slots)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        commands: tx,
        next_id: AtomicU64::new(1),
        stats: Mutex::new(EngineStats::default()),
        ready: AtomicBool::new(false),
        max_waiting: config.max_waiting_requests,
    });
    let served = Arc::new(ServedModel {
        id: config.served_model_name.clone(),
        max_context_tokens,
        vocab_size: runner.model().info().vocab_size,
    });
    let engine = EngineLoop {
        scheduler,
        runner,
        model: ModelContext {
            tokenizer: tokenizer.clone(),
            eos_token_ids,
            max_context_tokens,
        },
        shared: shared.clone(),
        commands: rx,
        active: HashMap::new(),
        snapshots: HashMap::new(),
        prompt_tokens_total: 0,
        generation_tokens_total: 0,
        finished_total: 0,
        timing: crate::phase_timing::PhaseTimes::from_env(),
        device_sampling: config.device != arle_tensor::Device::Cpu,
    };
    engine.publish_stats();
    std::thread::Builder::new()
        .name("arle-engine".into())
        .spawn(move || engine.run())
        .map_err(|e| EngineError::Internal(format!("spawning the engine thread: {e}")))?;
    shared.ready.store(true, Ordering::Release);
    let chat_template = tokenizer.chat_template()?.map(Arc::new);
    Ok(EngineHandle {
        shared,
        model: served,
        tokenizer,
        chat_template,
    })
}

/// Prefix caching settings; state slots and snapshots only for hybrid models.
fn cache_config(config: &EngineConfig, spec: &arle_models::CacheSpec) -> CacheConfig {
    let hybrid = spec.has_linear_layers();
    CacheConfig {
        enable_prefix_caching: config.enable_prefix_caching,
        num_state_slots: if hybrid { config.max_num_seqs } else { 0 },
        snapshot_interval_tokens: SNAPSHOT_INTERVAL_TOKENS,
        snapshot_prompt_end_page: true,
        snapshots: if hybrid {
            SnapshotCacheConfig {
                max_snapshots: config.max_state_snapshots,
                max_bytes: config.max_state_snapshot_bytes,
            }
        } else {
            SnapshotCacheConfig::DISABLED
        },
    }
}

/// One tiny forward so first-request latency excludes lazy initialisation. Uses page 0, which
/// holds no request's data yet (and state slot 0 for hybrid models, reset by its first owner).
fn warm_up(runner: &mut ModelRunner, num_state_slots: usize) -> Result<(), EngineError> {
    let step = SeqStep {
        token_ids: &[0],
        start_position: 0,
        block_table: &[0],
        logits: LogitsWanted::Last,
        state: (num_state_slots > 0).then_some(SeqState {
            slot: 0,
            init: StateInit::Reset,
            snapshot_positions: &[],
        }),
    };
    runner.execute(&[step], &[])?;
    Ok(())
}
