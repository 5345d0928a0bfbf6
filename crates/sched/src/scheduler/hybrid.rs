//! The scheduler's rules for hybrid models (linear-attention layers) and prefix-cache settings.
//!
//! - A running request of a hybrid model owns one state slot ([`crate::StatePool`]); admission
//!   needs a free slot as well as pages (no slot = does not fit, admission stops, FCFS). The slot
//!   is freed on finish, abort and preemption.
//! - Snapshot positions: every multiple of `snapshot_interval_tokens` the sequence crosses while
//!   being computed (prefill chunks and decode alike), plus, when `snapshot_prompt_end_page`, the
//!   last page boundary of the prompt (so a follow-up turn or a re-sent prompt can resume close
//!   to where this prompt ended).
//! - The engine registers each captured snapshot with [`Scheduler::register_snapshot`] after the
//!   forward and before [`Scheduler::update`]; the scheduler attaches it to the cached page ending
//!   at that position. Evicted snapshot ids come back in `SchedulerOutput::evicted_snapshots`.
//! - Prefix hit = longest cached full-page prefix that ends at a snapshot (no tail copy); the
//!   admission step carries `restore_snapshot`.

use crate::{
    RequestId, RequestStatus, SchedError, Scheduler, SnapshotCacheConfig, SnapshotId, BLOCK_TOKENS,
};

/// Snapshot spacing of the design: one per 64 tokens (4 pages, one GDN chunk).
pub const SNAPSHOT_INTERVAL_TOKENS: usize = 64;

/// Prefix caching and hybrid-model cache settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Reuse cached prefixes at admission (pages are still registered when off; nothing is
    /// looked up and no snapshots are taken).
    pub enable_prefix_caching: bool,
    /// State slots for linear-attention layers; 0 for attention-only models.
    pub num_state_slots: usize,
    /// Snapshot spacing in tokens, a positive multiple of [`BLOCK_TOKENS`].
    pub snapshot_interval_tokens: usize,
    /// Also snapshot at the last page boundary of each prompt.
    pub snapshot_prompt_end_page: bool,
    /// Caps of the snapshot index (LRU beyond them).
    pub snapshots: SnapshotCacheConfig,
}

impl Default for CacheConfig {
    /// Attention-only model with prefix caching on.
    fn default() -> Self {
        Self {
            enable_prefix_caching: true,
            num_state_slots: 0,
            snapshot_interval_tokens: SNAPSHOT_INTERVAL_TOKENS,
            snapshot_prompt_end_page: true,
            snapshots: SnapshotCacheConfig::DISABLED,
        }
    }
}

impl CacheConfig {
    /// Whether requests own state slots (hybrid model).
    pub fn is_hybrid(&self) -> bool {
        self.num_state_slots > 0
    }

    pub(crate) fn validate(&self) -> Result<(), SchedError> {
        if self.snapshot_interval_tokens == 0
            || !self.snapshot_interval_tokens.is_multiple_of(BLOCK_TOKENS)
        {
            return Err(SchedError::InvalidConfig(
                "snapshot_interval_tokens must be a positive multiple of the page size",
            ));
        }
        Ok(())
    }

    /// Whether steps capture snapshots at all.
    fn takes_snapshots(&self) -> bool {
        self.is_hybrid() && self.enable_prefix_caching && self.snapshots.max_snapshots > 0
    }

    /// Positions in `start + 1..=end` to capture for a step computing tokens `start..end`.
    pub(crate) fn snapshot_positions(
        &self,
        start: usize,
        end: usize,
        num_prompt_tokens: usize,
    ) -> Vec<usize> {
        if !self.takes_snapshots() {
            return Vec::new();
        }
        let interval = self.snapshot_interval_tokens;
        let mut positions: Vec<usize> = (start / interval + 1..=end / interval)
            .map(|k| k * interval)
            .collect();
        let prompt_page_end = num_prompt_tokens / BLOCK_TOKENS * BLOCK_TOKENS;
        if self.snapshot_prompt_end_page
            && prompt_page_end > start
            && prompt_page_end <= end
            && !positions.contains(&prompt_page_end)
        {
            positions.push(prompt_page_end);
            positions.sort_unstable();
        }
        positions
    }
}

impl Scheduler {
    pub fn cache_config(&self) -> &CacheConfig {
        &self.cache_config
    }

    /// The state slot a running request owns (hybrid models).
    pub fn request_state_slot(&self, id: RequestId) -> Option<crate::StateSlotId> {
        self.requests.get(&id).and_then(|r| r.state_slot)
    }

    /// Attaches the state captured after `position` tokens of running request `id` (scheduled in
    /// the step just executed) to its cached page ending there. Call after the forward and before
    /// [`Scheduler::update`]. `Some(id)`: keep the data under that id until it comes back in
    /// `evicted_snapshots`; `None`: drop the data (not kept: duplicate, not a page boundary,
    /// not computed, caps).
    pub fn register_snapshot(
        &mut self,
        id: RequestId,
        position: usize,
        bytes: usize,
    ) -> Result<Option<SnapshotId>, SchedError> {
        let req = self
            .requests
            .get(&id)
            .ok_or(SchedError::UnknownRequest(id))?;
        if req.status != RequestStatus::Running || position > req.num_computed_tokens {
            return Ok(None);
        }
        self.kv
            .cache_blocks(id, &req.token_ids, req.num_computed_tokens)?;
        self.kv.register_snapshot(id, position, bytes)
    }

    /// Frees the request's state slot, if it holds one.
    pub(super) fn free_state_slot(&mut self, id: RequestId) -> Result<(), SchedError> {
        let slot = self.requests.get_mut(&id).and_then(|r| r.state_slot.take());
        if let Some(slot) = slot {
            self.state_pool.free(slot)?;
        }
        Ok(())
    }
}
