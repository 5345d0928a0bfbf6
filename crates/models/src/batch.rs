//! [`ForwardBatch`]: the plain data one forward step reads.
//!
//! Invariants: `token_ids.len() == positions.len() == attention.slot_mapping.len()`; each
//! sequence's query rows are contiguous (`attention.seqs[i].query_start..+query_len`) and the
//! spans tile `0..n_tokens` in order; `logits_rows` indexes rows of `0..n_tokens`.

use arle_tensor::ops::AttentionMeta;

#[derive(Clone, Debug, Default)]
pub struct ForwardBatch {
    /// `[n_tokens]`
    pub token_ids: Vec<u32>,
    /// `[n_tokens]` absolute 0-based positions.
    pub positions: Vec<u32>,
    /// Per-sequence spans with block tables, and `[n_tokens]` slot mapping.
    pub attention: AttentionMeta,
    /// Rows whose logits the caller wants, in the order they are returned.
    pub logits_rows: Vec<usize>,
    /// Per sequence: its linear-state slot (hybrid models only; empty otherwise).
    pub state_slots: Vec<u32>,
    /// Per sequence (or empty): absolute positions `p` in `start+1..=start+n` after whose
    /// first `p` tokens the linear state is captured into `ModelCache::captured`.
    pub snapshot_positions: Vec<Vec<usize>>,
}

impl ForwardBatch {
    /// A single sequence occupying cache blocks `block_table`, with `past_tokens` already cached,
    /// running `token_ids` now; logits for every row when `all_logits`, else the last row only.
    pub fn single(
        token_ids: &[u32],
        past_tokens: usize,
        block_table: Vec<u32>,
        all_logits: bool,
    ) -> Self {
        use arle_tensor::{ops::SeqSpan, KV_BLOCK_TOKENS};
        let n = token_ids.len();
        let positions: Vec<u32> = (past_tokens..past_tokens + n).map(|p| p as u32).collect();
        let slot_mapping = positions
            .iter()
            .map(|&p| {
                block_table[p as usize / KV_BLOCK_TOKENS] * KV_BLOCK_TOKENS as u32
                    + p % KV_BLOCK_TOKENS as u32
            })
            .collect();
        let span = SeqSpan {
            query_start: 0,
            query_len: n,
            context_len: past_tokens + n,
            block_table,
        };
        let logits_rows = if all_logits {
            (0..n).collect()
        } else {
            vec![n.saturating_sub(1)]
        };
        Self {
            token_ids: token_ids.to_vec(),
            positions,
            attention: AttentionMeta {
                seqs: vec![span],
                slot_mapping,
            },
            logits_rows,
            state_slots: vec![0],
            snapshot_positions: Vec::new(),
        }
    }

    pub fn num_tokens(&self) -> usize {
        self.token_ids.len()
    }
}
