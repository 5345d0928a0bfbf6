//! Plain data crossing the scheduler <-> runner seam each step.
//!
//! Invariants of a [`SchedulerOutput`]: each request appears at most once in `scheduled`;
//! `sum(token_ids.len()) == num_batched_tokens <= max_num_batched_tokens`; `block_copies` must run
//! before the forward pass of this step (their destinations are pages of scheduled requests);
//! `preempted` and `finished` requests are not in `scheduled` and their runner-side state (if
//! any) can be dropped; `evicted_snapshots` data can be dropped once this step has run (no
//! request of this step restores one of them).
//!
//! Hybrid models: every scheduled request carries its `state_slot`. The runner must, before the
//! forward, restore `restore_snapshot` into the slot when set, else reset the slot when
//! `start_position == 0`, else use the slot as is; and capture the state at each of
//! `snapshot_positions`.

use crate::{BlockCopy, BlockId, FinishReason, RequestId, SnapshotId, StateSlotId};

/// One request's work in a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledRequest {
    pub id: RequestId,
    /// Tokens to compute now: `token_ids[i]` sits at position `start_position + i`.
    pub token_ids: Vec<u32>,
    /// Tokens `0..start_position` are already in the KV pages (computed or copied this step).
    pub start_position: usize,
    /// The request's full block table (page `i` holds positions `16 i .. 16 i + 16`).
    pub block_table: Vec<BlockId>,
    /// This step computes the request's last known token: sample one token from its last row.
    pub samples_next_token: bool,
    /// Rows at prompt positions (`< num_prompt_tokens`) need logits (prompt logprobs). After a
    /// preemption the same positions may be scheduled again; key them by position.
    pub needs_prompt_logits: bool,
    pub num_prompt_tokens: usize,
    /// Tokens found in the prefix cache when the request was (last) admitted.
    pub num_cached_tokens: usize,
    /// Hybrid models: the request's linear-state slot (`None` for attention-only models).
    pub state_slot: Option<StateSlotId>,
    /// Hybrid models, admission step only: resume from this snapshot (state after
    /// `start_position` tokens) instead of a zero state.
    pub restore_snapshot: Option<SnapshotId>,
    /// Hybrid models: absolute positions `p` in `start_position + 1..=start_position + n` after
    /// which the linear state should be captured (ascending). Empty otherwise.
    pub snapshot_positions: Vec<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerOutput {
    /// Step counter, from 0.
    pub step: u64,
    /// Running requests first (oldest first), then newly admitted ones (FCFS).
    pub scheduled: Vec<ScheduledRequest>,
    pub num_batched_tokens: usize,
    pub block_copies: Vec<BlockCopy>,
    /// Preempted by this step (recompute later), in preemption order.
    pub preempted: Vec<RequestId>,
    /// Finished or aborted since the previous `schedule()`.
    pub finished: Vec<RequestId>,
    /// Snapshots evicted since the previous `schedule()` (hybrid models): drop their data.
    pub evicted_snapshots: Vec<SnapshotId>,
}

impl SchedulerOutput {
    pub fn is_empty(&self) -> bool {
        self.scheduled.is_empty()
    }
}

/// What the runner returns: one sampled token per request that had `samples_next_token`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelOutput {
    pub sampled: Vec<(RequestId, u32)>,
}

/// Per-request result of `Scheduler::update`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestUpdate {
    pub id: RequestId,
    /// The token appended to the output (`None` when the request ends without one, e.g.
    /// `max_tokens == 0`).
    pub token_id: Option<u32>,
    /// `Some` when the request finished in this update (its pages are freed already).
    pub finish_reason: Option<FinishReason>,
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    pub num_waiting: usize,
    pub num_running: usize,
    pub num_free_blocks: usize,
    pub num_used_blocks: usize,
    /// Pages with a prefix-cache entry (in use or free).
    pub num_cached_blocks: usize,
    /// Tokens looked up in the prefix cache at admissions.
    pub prefix_query_tokens_total: u64,
    /// Tokens found in the prefix cache at admissions (shared pages + copied tail tokens).
    pub prefix_hit_tokens_total: u64,
    pub preemptions_total: u64,
    pub steps_total: u64,
    /// Hybrid models: state slots owned by running requests, and free ones.
    pub num_used_state_slots: usize,
    pub num_free_state_slots: usize,
    /// Hybrid models: live linear-state snapshots and their bytes.
    pub num_state_snapshots: usize,
    pub state_snapshot_bytes: usize,
}
