//! [`start_engine`]: load the model and tokenizer, size the KV pool, warm up, and spawn the
//! engine thread. Loading errors surface here, before anything is served.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arle_models::{load_model, ModelFormat};
use arle_sched::{Scheduler, SchedulerConfig, BLOCK_TOKENS};

use crate::config::EngineConfig;
use crate::engine_loop::EngineLoop;
use crate::handle::{EngineHandle, EngineStats, ServedModel, Shared};
use crate::runner::{LogitsWanted, ModelRunner, SeqStep};
use crate::sequence::ModelContext;
use crate::tokenizer::Tokenizer;
use crate::EngineError;

/// Default context per sequence when sizing the KV pool automatically.
const AUTO_KV_TOKENS_PER_SEQ: usize = 4096;

/// Loads everything and starts the engine thread.
pub fn start_engine(config: EngineConfig) -> Result<EngineHandle, EngineError> {
    let loaded = load_model(&config.model_path)?;
    let tokenizer = Arc::new(match &loaded.format {
        ModelFormat::HfFolder(dir) => Tokenizer::from_hf_dir(dir)?,
        ModelFormat::Gguf(file) => Tokenizer::from_gguf(file)?,
    });
    let model_ctx = loaded.model.info().max_context_tokens;
    let max_context_tokens = config.max_model_len.map_or(model_ctx, |m| m.min(model_ctx));
    let num_blocks = kv_blocks(&config, &loaded.model.info().cache, max_context_tokens);
    if num_blocks * BLOCK_TOKENS < max_context_tokens.min(AUTO_KV_TOKENS_PER_SEQ) {
        tracing::warn!(
            "KV cache holds {} tokens, less than one context",
            num_blocks * BLOCK_TOKENS
        );
    }
    let mut eos_token_ids = loaded.config.eos_token_ids.clone();
    for &id in tokenizer.eos_ids() {
        if !eos_token_ids.contains(&id) {
            eos_token_ids.push(id);
        }
    }
    let scheduler = Scheduler::new(SchedulerConfig {
        num_blocks,
        max_num_batched_tokens: config.max_num_batched_tokens,
        max_num_seqs: config.max_num_seqs,
        max_model_len: max_context_tokens,
    })
    .map_err(|e| EngineError::InvalidRequest(format!("engine config: {e}")))?;
    let mut runner = ModelRunner::new(loaded.model, num_blocks);
    warm_up(&mut runner)?;
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
        prompt_tokens_total: 0,
        generation_tokens_total: 0,
        finished_total: 0,
    };
    engine.publish_initial_stats();
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

/// Pages for the KV pool: explicit, or `max_num_seqs` contexts capped by the byte budget.
fn kv_blocks(
    config: &EngineConfig,
    spec: &arle_models::CacheSpec,
    max_context_tokens: usize,
) -> usize {
    let tokens = config.kv_cache_tokens.unwrap_or_else(|| {
        let wanted = config.max_num_seqs * max_context_tokens.min(AUTO_KV_TOKENS_PER_SEQ);
        let per_token = spec.kv_bytes_per_token().max(1);
        wanted.min(config.max_kv_cache_bytes / per_token)
    });
    tokens.div_ceil(BLOCK_TOKENS).max(2)
}

/// One tiny forward so first-request latency excludes lazy initialisation. Uses page 0, which
/// holds no request's data yet.
fn warm_up(runner: &mut ModelRunner) -> Result<(), EngineError> {
    let step = SeqStep {
        token_ids: &[0],
        start_position: 0,
        block_table: &[0],
        logits: LogitsWanted::Last,
    };
    runner.execute(&[step], &[])?;
    Ok(())
}
