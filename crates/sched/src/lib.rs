//! arle-sched: the pure-CPU half of serving. Decides, each step, which tokens of which requests
//! run and where their KV lives; never touches tensors, threads or async.
//!
//! Layers, bottom up:
//! - [`BlockPool`]: fixed pool of KV pages of [`BLOCK_TOKENS`] tokens with refcounts and a free
//!   queue (uncached pages first, then cached pages in LRU order).
//! - [`PrefixCache`]: content-addressed index of computed pages (full pages by chained hash,
//!   partial tail pages by parent hash + token prefix).
//! - [`KvCacheManager`]: per-request block tables over the two above; lookup / allocate / free.
//! - Hybrid models (linear-attention layers): [`StatePool`] of per-request state slots beside
//!   the block pool, and a [`SnapshotCache`] of linear-state snapshots attached to cached pages
//!   (prefix reuse resumes from the longest cached prefix that ends at a snapshot).
//! - [`Scheduler`]: requests, token budget, chunked prefill, FCFS admission, recompute
//!   preemption; emits a [`SchedulerOutput`] per step and takes a [`ModelOutput`] back.
//!
//! Data flows one way per step: `schedule() -> SchedulerOutput -> (runner) -> ModelOutput ->
//! update() -> Vec<RequestUpdate>`. Everything crossing that seam is plain data.

mod block_pool;
mod error;
mod hash;
mod kv_cache_manager;
mod output;
mod prefix_cache;
mod request;
mod scheduler;
mod snapshot_cache;
mod state_pool;

pub use block_pool::{AllocatedBlock, BlockId, BlockPool, BLOCK_TOKENS};
pub use error::SchedError;
pub use hash::{page_hash, BlockHash, ROOT_HASH};
pub use kv_cache_manager::{Allocation, BlockCopy, KvCacheManager, PrefixHit, TailCopy};
pub use output::{ModelOutput, RequestUpdate, ScheduledRequest, SchedulerOutput, SchedulerStats};
pub use prefix_cache::{CachedPage, PrefixCache};
pub use request::{FinishReason, Request, RequestId, RequestStatus};
pub use scheduler::{CacheConfig, Scheduler, SchedulerConfig, SNAPSHOT_INTERVAL_TOKENS};
pub use snapshot_cache::{SnapshotCache, SnapshotCacheConfig, SnapshotEntry, SnapshotId};
pub use state_pool::{StatePool, StateSlotId};

/// Number of pages needed to hold `num_tokens` tokens.
pub fn num_pages_for(num_tokens: usize) -> usize {
    num_tokens.div_ceil(BLOCK_TOKENS)
}
