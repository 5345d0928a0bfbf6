//! [`StepGraphs`]: decode steps of attention-only models replayed as CUDA graphs
//! (`arle_tensor::cuda::graph`), so a decode step costs one graph launch plus four small input
//! uploads instead of one launch per kernel.
//!
//! A step qualifies when every sequence decodes one token and samples it (no prefill chunk, no
//! linear state, no full-logits request) and there are at most `max_batch` of them. The batch is
//! padded to the next size of [`BATCH_BUCKETS`] with rows that write no KV ([`PAD_SLOT`]) and
//! attend over the null page, and the block tables to the next power of two of pages (at least
//! [`MIN_PAGES`]); one graph per (batch bucket, page bucket), captured the first time that shape
//! comes up (that step runs eagerly, as the graph's recording run).
//!
//! Invariants: logits come back `[bucket, vocab]` with sequence `i` in row `i` (padding rows
//! after the real ones), the same row order as an eager step's; graphs are dropped when the KV
//! cache is replaced ([`StepGraphs::clear`]) or the decode workspace they captured was
//! reallocated; a shape whose capture failed runs eagerly from then on (logged once).

//!
//! The bucketing and padding are plain host code (tested without a GPU); [`StepGraphs`] itself
//! exists with the `cuda` feature.

#[cfg(feature = "cuda")]
use std::collections::{HashMap, HashSet};
#[cfg(feature = "cuda")]
use std::sync::Arc;

#[cfg(feature = "cuda")]
use arle_models::{Model, ModelCache};
#[cfg(feature = "cuda")]
use arle_tensor::cuda::{decode_step_inputs, CudaBackend, StepGraph};
use arle_tensor::ops::{SeqSpan, PAD_SLOT};
#[cfg(feature = "cuda")]
use arle_tensor::{Tensor, KV_BLOCK_TOKENS};

#[cfg(feature = "cuda")]
use crate::runner::LogitsWanted;
use crate::runner::{build_batch, SeqStep};
use crate::EngineError;

/// Batch sizes a graph is captured for (a step runs in the smallest that fits).
pub const BATCH_BUCKETS: [usize; 16] = [
    1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 384, 512,
];

/// Narrowest block table of a graph, in pages (256 tokens).
pub const MIN_PAGES: usize = 16;

/// The captured decode graphs of one runner.
#[cfg(feature = "cuda")]
pub struct StepGraphs {
    backend: Arc<CudaBackend>,
    graphs: HashMap<(usize, usize), StepGraph>,
    failed: HashSet<(usize, usize)>,
    max_batch: usize,
}

#[cfg(feature = "cuda")]
impl std::fmt::Debug for StepGraphs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shapes: Vec<_> = self.graphs.keys().collect();
        shapes.sort_unstable();
        write!(f, "StepGraphs(max_batch {}, {shapes:?})", self.max_batch)
    }
}

/// The bucket of `n` sequences, if a graph may take them.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn batch_bucket(n: usize, max_batch: usize) -> Option<usize> {
    BATCH_BUCKETS
        .iter()
        .copied()
        .find(|&b| b >= n)
        .filter(|_| n <= max_batch)
}

/// Rows of the largest graph an engine of `max_num_seqs` sequences captures.
pub fn max_graph_rows(max_num_seqs: usize) -> usize {
    let largest = BATCH_BUCKETS[BATCH_BUCKETS.len() - 1];
    let n = max_num_seqs.clamp(1, largest);
    batch_bucket(n, n).unwrap_or(largest)
}

/// The block-table width for a longest sequence of `pages` pages.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn page_bucket(pages: usize) -> usize {
    pages.max(MIN_PAGES).next_power_of_two()
}

#[cfg(feature = "cuda")]
impl StepGraphs {
    /// Graphs on GPU `ordinal` for steps of up to `max_batch` sequences (capped by the largest
    /// bucket).
    pub fn new(ordinal: usize, max_batch: usize) -> Result<Self, EngineError> {
        let largest = BATCH_BUCKETS[BATCH_BUCKETS.len() - 1];
        Ok(Self {
            backend: arle_tensor::cuda::backend(ordinal)?,
            graphs: HashMap::new(),
            failed: HashSet::new(),
            max_batch: max_batch.clamp(1, largest),
        })
    }

    /// Forgets every graph (their KV pages or workspace are gone).
    pub fn clear(&mut self) {
        self.graphs.clear();
        self.failed.clear();
    }

    /// Number of captured graphs.
    pub fn len(&self) -> usize {
        self.graphs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.graphs.is_empty()
    }

    /// This step's logits `[bucket, vocab]` through a graph (capturing it first when its shape
    /// is new), or `None` when the step does not qualify (the caller runs it eagerly).
    pub fn run(
        &mut self,
        model: &dyn Model,
        cache: &mut ModelCache,
        seqs: &[SeqStep<'_>],
    ) -> Result<Option<Tensor>, EngineError> {
        let plain_decode = |s: &SeqStep<'_>| {
            s.token_ids.len() == 1 && s.state.is_none() && s.logits == LogitsWanted::Last
        };
        if seqs.is_empty() || !seqs.iter().all(plain_decode) {
            return Ok(None);
        }
        let Some(rows) = batch_bucket(seqs.len(), self.max_batch) else {
            return Ok(None);
        };
        let pages = seqs
            .iter()
            .map(|s| (s.start_position + 1).div_ceil(KV_BLOCK_TOKENS))
            .max()
            .unwrap_or(1);
        let key = (rows, page_bucket(pages));
        if self.failed.contains(&key) {
            return Ok(None);
        }
        if self.graphs.get(&key).is_some_and(|g| !g.is_current()) {
            self.graphs.clear(); // the workspace they point into was reallocated
        }
        let batch = padded_batch(seqs, rows)?;
        let inputs =
            decode_step_inputs(&batch.token_ids, &batch.positions, &batch.attention, key.1)?;
        if let Some(graph) = self.graphs.get(&key) {
            return Ok(Some(graph.replay(&inputs)?));
        }
        let (logits, graph) = self
            .backend
            .capture_step(key.1, &inputs, || model.forward(&batch, cache, None))?;
        match graph {
            Ok(g) => {
                tracing::debug!("captured a decode graph for {rows} rows x {} pages", key.1);
                self.graphs.insert(key, g);
            }
            Err(why) => {
                tracing::warn!(
                    "decode steps of {rows} rows x {} pages run eagerly: {why}",
                    key.1
                );
                self.failed.insert(key);
            }
        }
        Ok(Some(logits))
    }
}

/// The step's batch with `rows - seqs.len()` padding rows: token 0 at position 0, no KV write,
/// attending over the first key of the null page, logits for every row.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn padded_batch(
    seqs: &[SeqStep<'_>],
    rows: usize,
) -> Result<arle_models::ForwardBatch, EngineError> {
    let mut batch = build_batch(seqs)?;
    for row in seqs.len()..rows {
        batch.token_ids.push(0);
        batch.positions.push(0);
        batch.attention.slot_mapping.push(PAD_SLOT);
        batch.attention.seqs.push(SeqSpan {
            query_start: row,
            query_len: 1,
            context_len: 1,
            block_table: vec![0],
        });
        batch.logits_rows.push(row);
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::LogitsWanted;

    #[test]
    fn batches_round_up_to_a_bucket_within_the_limit() {
        assert_eq!(batch_bucket(1, 256), Some(1));
        assert_eq!(batch_bucket(3, 256), Some(4));
        assert_eq!(batch_bucket(17, 256), Some(24));
        assert_eq!(batch_bucket(256, 256), Some(256));
        assert_eq!(batch_bucket(257, 256), None);
        assert_eq!(batch_bucket(9, 8), None);
        // A limit between buckets: the bucket may exceed it, the batch may not.
        assert_eq!(batch_bucket(20, 20), Some(24));
    }

    #[test]
    fn the_largest_graph_is_the_bucket_of_max_num_seqs_within_the_last() {
        assert_eq!(max_graph_rows(0), 1);
        assert_eq!(max_graph_rows(20), 24);
        assert_eq!(max_graph_rows(256), 256);
        assert_eq!(max_graph_rows(10_000), 512);
    }

    #[test]
    fn page_buckets_are_powers_of_two_from_the_minimum() {
        assert_eq!(page_bucket(1), MIN_PAGES);
        assert_eq!(page_bucket(MIN_PAGES + 1), 2 * MIN_PAGES);
        assert_eq!(page_bucket(40), 64);
    }

    #[test]
    fn padding_rows_write_no_kv_and_follow_the_real_rows() {
        let table = [3u32, 4];
        let ids = [7u32];
        let seqs = [SeqStep {
            token_ids: &ids,
            start_position: 20,
            block_table: &table,
            logits: LogitsWanted::Last,
            state: None,
        }];
        let b = padded_batch(&seqs, 4).expect("batch");
        assert_eq!(b.token_ids, [7, 0, 0, 0]);
        assert_eq!(b.positions, [20, 0, 0, 0]);
        assert_eq!(b.attention.slot_mapping[0], 4 * 16 + 4);
        assert!(b.attention.slot_mapping[1..].iter().all(|&s| s == PAD_SLOT));
        assert_eq!(b.logits_rows, [0, 1, 2, 3]);
        assert_eq!(b.attention.seqs[3].query_start, 3);
        assert_eq!(b.attention.seqs[3].block_table, [0]);
    }
}
