//! [`ModelRunner`]: turns one scheduled step into a [`ForwardBatch`], runs the model over the
//! KV cache it owns, and hands back the logits rows each sequence asked for.
//!
//! Invariant: the runner owns the cache storage; block ids come from the scheduler and index
//! the same pages in every layer. Copy-on-write page copies are applied before the forward.
//!
//! Hybrid models (linear-attention layers): each sequence also names its state slot. Before the
//! forward the runner prepares every slot as told ([`StateInit`]: reset for a sequence starting
//! at position 0, restore from a snapshot when resuming a cached prefix, else keep); the model
//! then uses the slot as is. Snapshots the step asked for ([`SeqState::snapshot_positions`]) are
//! captured by the model during the forward; [`ModelRunner::take_captured`] drains them.
//! Attention-only models pass no state and get exactly the old batches (`state_slots` empty).
//!
//! With [`ModelRunner::enable_step_graphs`], plain decode steps replay CUDA graphs
//! (`step_graphs`): their logits have one row per sequence plus padding rows at the end, which
//! no caller reads (rows are taken by position, sequence `i` in row `i`).
//!
//! [`ModelRunner::execute_sampled`] is the GPU path: sequences given [`DeviceSampling`] get their
//! next token sampled on the logits' device (only ids come back); the others get logits rows as
//! from [`ModelRunner::execute`].

use arle_models::{CapturedState, ForwardBatch, Model, ModelCache, StateSnapshot};
use arle_tensor::ops::{AttentionMeta, SeqSpan};
use arle_tensor::{Tensor, KV_BLOCK_TOKENS};

use crate::device_sampling::{sample_on_device, DeviceSampling};
use crate::EngineError;

/// One sequence's result of [`ModelRunner::execute_sampled`].
#[derive(Debug, Default)]
pub struct StepRows {
    /// Its logits rows (`[rows, vocab]`) when it asked for logits and was not device-sampled.
    pub logits: Option<Tensor>,
    /// The token sampled on the device.
    pub token: Option<u32>,
}

/// One sequence's share of a step.
#[derive(Clone, Debug)]
pub struct SeqStep<'a> {
    /// Tokens computed this step (`[n]`), at positions `start_position..start_position + n`.
    pub token_ids: &'a [u32],
    pub start_position: usize,
    /// Pages covering positions `0..start_position + n`.
    pub block_table: &'a [u32],
    /// Which logits rows to return: every row (prompt logprobs), the last (sampling), or none.
    pub logits: LogitsWanted,
    /// Hybrid models: the sequence's linear-state slot; `None` for attention-only models.
    pub state: Option<SeqState<'a>>,
}

/// One sequence's linear-state slot in a step (hybrid models).
#[derive(Clone, Debug)]
pub struct SeqState<'a> {
    pub slot: u32,
    pub init: StateInit<'a>,
    /// Absolute positions in `start_position + 1..=start_position + n` to capture after.
    pub snapshot_positions: &'a [usize],
}

/// How to prepare a state slot before the forward.
#[derive(Clone, Copy, Debug)]
pub enum StateInit<'a> {
    /// The slot holds this sequence's state after `start_position` tokens already.
    Keep,
    /// Zero the slot (the step starts at position 0).
    Reset,
    /// Copy the snapshot in (its `position` must equal `start_position`).
    Restore(&'a StateSnapshot),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsWanted {
    None,
    Last,
    All,
}

/// A page copy (copy-on-write of a shared partial page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageCopy {
    pub src: u32,
    pub dst: u32,
}

pub struct ModelRunner {
    model: Box<dyn Model>,
    cache: ModelCache,
    /// CUDA graphs of decode steps, when enabled ([`ModelRunner::enable_step_graphs`]).
    #[cfg(feature = "cuda")]
    graphs: Option<crate::step_graphs::StepGraphs>,
}

impl ModelRunner {
    pub fn new(model: Box<dyn Model>, num_blocks: usize) -> Self {
        Self::with_state_slots(model, num_blocks, 0)
    }

    /// A runner whose cache also holds `num_state_slots` linear-state slots (hybrid models).
    pub fn with_state_slots(
        model: Box<dyn Model>,
        num_blocks: usize,
        num_state_slots: usize,
    ) -> Self {
        let cache = ModelCache::with_state_slots(&model.info().cache, num_blocks, num_state_slots);
        Self {
            model,
            cache,
            #[cfg(feature = "cuda")]
            graphs: None,
        }
    }

    /// Replays plain decode steps of up to `max_batch` sequences as CUDA graphs on GPU
    /// `ordinal` (see `step_graphs`). Only attention-only models qualify: returns whether graphs
    /// are now on.
    #[cfg(feature = "cuda")]
    pub fn enable_step_graphs(
        &mut self,
        ordinal: usize,
        max_batch: usize,
    ) -> Result<bool, EngineError> {
        let attention_only = self
            .model
            .info()
            .cache
            .layers
            .iter()
            .all(|l| matches!(l, arle_models::LayerCacheSpec::Attention { .. }));
        if attention_only {
            self.graphs = Some(crate::step_graphs::StepGraphs::new(ordinal, max_batch)?);
        }
        Ok(attention_only)
    }

    /// Number of captured decode graphs (0 when graphs are off).
    pub fn step_graph_count(&self) -> usize {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.graphs {
            return g.len();
        }
        0
    }

    /// Snapshots captured by the latest `execute`, tagged with the sequence's index in it.
    pub fn take_captured(&mut self) -> Vec<CapturedState> {
        std::mem::take(&mut self.cache.captured)
    }

    pub fn model(&self) -> &dyn Model {
        self.model.as_ref()
    }

    /// Replaces the cache with an empty one of `num_blocks` pages (and `num_state_slots` slots);
    /// the old pages are freed first. Used once at start, after memory profiling.
    pub fn resize_cache(&mut self, num_blocks: usize, num_state_slots: usize) {
        #[cfg(feature = "cuda")]
        if let Some(g) = self.graphs.as_mut() {
            g.clear(); // they point into the old pages
        }
        self.cache = ModelCache::with_state_slots(&self.model.info().cache, 1, 0);
        self.cache =
            ModelCache::with_state_slots(&self.model.info().cache, num_blocks, num_state_slots);
    }

    /// Runs one step. Returns, per sequence in order, its logits rows `[rows, vocab]`
    /// (`None` when it asked for none).
    pub fn execute(
        &mut self,
        seqs: &[SeqStep<'_>],
        copies: &[PageCopy],
    ) -> Result<Vec<Option<Tensor>>, EngineError> {
        match self.forward(seqs, copies)? {
            Some(logits) => split_logits(seqs, &logits),
            None => Ok(Vec::new()),
        }
    }

    /// Runs one step; `device[i] = Some(..)` samples sequence `i`'s next token where the logits
    /// are (it must ask for [`LogitsWanted::Last`]). `device` is empty or one entry per sequence.
    pub fn execute_sampled(
        &mut self,
        seqs: &[SeqStep<'_>],
        copies: &[PageCopy],
        device: &[Option<DeviceSampling<'_>>],
    ) -> Result<Vec<StepRows>, EngineError> {
        if !device.is_empty() && device.len() != seqs.len() {
            return Err(EngineError::Internal(format!(
                "{} device-sampling entries for {} sequences",
                device.len(),
                seqs.len()
            )));
        }
        let Some(logits) = self.forward(seqs, copies)? else {
            return Ok(Vec::new());
        };
        let mut out: Vec<StepRows> = seqs.iter().map(|_| StepRows::default()).collect();
        let mut on_device = Vec::new();
        let mut row = 0;
        for (i, s) in seqs.iter().enumerate() {
            let rows = logits_rows(s);
            match device.get(i).copied().flatten() {
                Some(p) if s.logits == LogitsWanted::Last => on_device.push((i, row, p)),
                Some(_) => {
                    return Err(EngineError::Internal(
                        "device sampling of a sequence that wants all its logits rows".into(),
                    ))
                }
                None if rows > 0 => {
                    let idx: Vec<usize> = (row..row + rows).collect();
                    out[i].logits = Some(logits.gather_rows(&idx)?);
                }
                None => {}
            }
            row += rows;
        }
        let pairs: Vec<(usize, DeviceSampling<'_>)> =
            on_device.iter().map(|&(_, r, p)| (r, p)).collect();
        let tokens = sample_on_device(&logits, &pairs)?;
        for (&(i, _, _), token) in on_device.iter().zip(tokens) {
            out[i].token = Some(token);
        }
        Ok(out)
    }

    /// The forward of one step: `[rows, vocab]` logits of the rows asked for (`None` when no
    /// sequence was scheduled).
    fn forward(
        &mut self,
        seqs: &[SeqStep<'_>],
        copies: &[PageCopy],
    ) -> Result<Option<Tensor>, EngineError> {
        for c in copies {
            self.cache.copy_block(c.src as usize, c.dst as usize);
        }
        if seqs.is_empty() {
            return Ok(None);
        }
        self.cache.captured.clear();
        for s in seqs {
            if let Some(state) = &s.state {
                self.prepare_state(s.start_position, state)?;
            }
        }
        #[cfg(feature = "cuda")]
        if let Some(graphs) = self.graphs.as_mut() {
            if let Some(logits) = graphs.run(self.model.as_ref(), &mut self.cache, seqs)? {
                return Ok(Some(logits));
            }
        }
        let batch = build_batch(seqs)?;
        Ok(Some(self.model.forward(&batch, &mut self.cache, None)?))
    }
}

/// Logits rows a sequence asked for.
fn logits_rows(s: &SeqStep<'_>) -> usize {
    match s.logits {
        LogitsWanted::None => 0,
        LogitsWanted::Last => 1,
        LogitsWanted::All => s.token_ids.len(),
    }
}

impl ModelRunner {
    fn prepare_state(
        &mut self,
        start_position: usize,
        state: &SeqState<'_>,
    ) -> Result<(), EngineError> {
        let slot = state.slot as usize;
        match state.init {
            StateInit::Keep => {}
            StateInit::Reset => self.cache.reset_state(slot)?,
            StateInit::Restore(snapshot) => {
                if snapshot.position != start_position {
                    return Err(EngineError::Internal(format!(
                        "snapshot at {} restored for a step starting at {start_position}",
                        snapshot.position
                    )));
                }
                self.cache.restore_state(slot, snapshot)?;
            }
        }
        Ok(())
    }
}

/// Concatenates the sequences into one batch (spans tile the token rows in order).
pub(crate) fn build_batch(seqs: &[SeqStep<'_>]) -> Result<ForwardBatch, EngineError> {
    let mut batch = ForwardBatch::default();
    let mut meta = AttentionMeta::default();
    for s in seqs {
        let query_start = batch.token_ids.len();
        let n = s.token_ids.len();
        let context_len = s.start_position + n;
        if s.block_table.len() * KV_BLOCK_TOKENS < context_len {
            return Err(EngineError::Internal(format!(
                "block table of {} pages cannot hold {context_len} tokens",
                s.block_table.len()
            )));
        }
        for (i, &tok) in s.token_ids.iter().enumerate() {
            let pos = s.start_position + i;
            batch.token_ids.push(tok);
            batch.positions.push(pos as u32);
            let page = s.block_table[pos / KV_BLOCK_TOKENS];
            meta.slot_mapping
                .push(page * KV_BLOCK_TOKENS as u32 + (pos % KV_BLOCK_TOKENS) as u32);
        }
        match s.logits {
            LogitsWanted::None => {}
            LogitsWanted::Last => batch.logits_rows.push(query_start + n - 1),
            LogitsWanted::All => batch.logits_rows.extend(query_start..query_start + n),
        }
        meta.seqs.push(SeqSpan {
            query_start,
            query_len: n,
            context_len,
            block_table: s.block_table.to_vec(),
        });
    }
    batch.attention = meta;
    if seqs.iter().any(|s| s.state.is_some()) {
        for s in seqs {
            let state = s.state.as_ref().ok_or_else(|| {
                EngineError::Internal("a hybrid batch mixes sequences without state slots".into())
            })?;
            batch.state_slots.push(state.slot);
            batch
                .snapshot_positions
                .push(state.snapshot_positions.to_vec());
        }
    }
    Ok(batch)
}

/// Splits `[rows, vocab]` back into per-sequence tensors.
fn split_logits(seqs: &[SeqStep<'_>], logits: &Tensor) -> Result<Vec<Option<Tensor>>, EngineError> {
    let mut row = 0;
    let mut out = Vec::with_capacity(seqs.len());
    for s in seqs {
        let rows = logits_rows(s);
        if rows == 0 {
            out.push(None);
            continue;
        }
        let idx: Vec<usize> = (row..row + rows).collect();
        out.push(Some(logits.gather_rows(&idx)?));
        row += rows;
    }
    Ok(out)
}
