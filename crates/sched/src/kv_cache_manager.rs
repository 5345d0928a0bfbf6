//! [`KvCacheManager`]: per-request block tables over a [`BlockPool`] and a [`PrefixCache`].
//!
//! Lifecycle of a request's pages: `lookup_prefix` (pure) -> `allocate_new` (shares the hit's
//! full pages, plans a copy for the tail) -> `allocate` each later step -> `cache_blocks` after
//! each step's tokens are computed -> `free` (finish, abort, preemption).
//!
//! Rules:
//! - Last token rule: a hit never covers the last token of the sequence (prompt, or prompt +
//!   output when recomputing), so at least one row is computed and logits exist.
//! - Full pages entirely inside the hit are shared: the request's table holds the same block id
//!   and its refcount goes up. Shared pages are never written (all later writes go to positions
//!   past the hit).
//! - Tail page (copy-on-write): after the shared full pages, the request's next page is compared
//!   with every cached page (full or partial) under the same parent; the longest common token
//!   prefix `k` (capped by the last token rule) is reused by *copying*: the request gets a fresh
//!   page `dst`, the output carries `BlockCopy { src, dst, num_tokens: k }`, and computation
//!   starts at `k` inside that page. Examples: two choices of one prompt ending mid-page; a
//!   prompt of exactly 32 cached tokens (page 1 is copied with 15 tokens, 1 token computed); a
//!   follow-up turn extending a finished request's partial tail page.
//! - Copy sources are pinned (refcount + 1) from `allocate_new` until `release_copy_sources`,
//!   which the scheduler calls at the start of the next step (the runner has copied by then), so a
//!   source cannot be evicted and reused before it is read.
//! - Invariant: for every block, refcount == number of request tables containing it + pins.
//! - Pages are freed tail first, so a request's later pages are evicted before its earlier ones.
//! - Hybrid models (linear-attention layers, see `snapshots`): a hit also needs a state snapshot
//!   at its end, so it is the longest cached full-page prefix with a snapshot, and never uses a
//!   tail copy. A snapshot is evicted together with the page it is attached to.

mod snapshots;

use std::collections::HashMap;

use crate::{
    num_pages_for, BlockHash, BlockId, BlockPool, PrefixCache, RequestId, SchedError,
    SnapshotCache, SnapshotCacheConfig, SnapshotId, BLOCK_TOKENS, ROOT_HASH,
};

/// Plan to copy the first `num_tokens` token slots of page `src` into page `dst` (all layers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockCopy {
    pub src: BlockId,
    pub dst: BlockId,
    pub num_tokens: usize,
}

/// A tail page found in the cache: its first `num_tokens` tokens match the request's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailCopy {
    pub src: BlockId,
    pub num_tokens: usize,
}

/// Result of [`KvCacheManager::lookup_prefix`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixHit {
    /// Full cached pages covering tokens `0..16 * shared_blocks.len()`.
    pub shared_blocks: Vec<BlockId>,
    /// Partial reuse of the next page, by copy.
    pub tail_copy: Option<TailCopy>,
    /// `16 * shared_blocks.len() + tail_copy.num_tokens`; always `< num_tokens` looked up.
    pub num_cached_tokens: usize,
    /// Hybrid models: the linear-state snapshot at `num_cached_tokens` to resume from.
    pub snapshot: Option<SnapshotId>,
}

impl PrefixHit {
    /// The same hit with the tail copy dropped (only the shared full pages).
    pub fn without_tail_copy(&self) -> PrefixHit {
        PrefixHit {
            shared_blocks: self.shared_blocks.clone(),
            tail_copy: None,
            num_cached_tokens: self.shared_blocks.len() * BLOCK_TOKENS,
            snapshot: self.snapshot,
        }
    }
}

/// Pages given to a request by one `allocate*` call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    /// Fresh pages appended to the request's table, in table order.
    pub new_blocks: Vec<BlockId>,
    pub copies: Vec<BlockCopy>,
}

#[derive(Clone, Debug, Default)]
struct RequestPages {
    blocks: Vec<BlockId>,
    /// Chained hashes of the request's computed full pages, in order (maybe fewer than blocks).
    page_hashes: Vec<BlockHash>,
}

#[derive(Clone, Debug)]
pub struct KvCacheManager {
    pool: BlockPool,
    cache: PrefixCache,
    requests: HashMap<RequestId, RequestPages>,
    pinned_copy_sources: Vec<BlockId>,
    snapshots: SnapshotCache,
}

impl KvCacheManager {
    /// `num_blocks` pages including the null block 0.
    pub fn new(num_blocks: usize) -> Result<Self, SchedError> {
        Self::with_snapshots(num_blocks, SnapshotCacheConfig::DISABLED)
    }

    /// A manager that also indexes linear-state snapshots (hybrid models).
    pub fn with_snapshots(
        num_blocks: usize,
        snapshots: SnapshotCacheConfig,
    ) -> Result<Self, SchedError> {
        Ok(Self {
            pool: BlockPool::new(num_blocks)?,
            cache: PrefixCache::new(num_blocks),
            requests: HashMap::new(),
            pinned_copy_sources: Vec::new(),
            snapshots: SnapshotCache::new(snapshots),
        })
    }

    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    pub fn prefix_cache(&self) -> &PrefixCache {
        &self.cache
    }

    pub fn block_table(&self, id: RequestId) -> Option<&[BlockId]> {
        self.requests.get(&id).map(|r| r.blocks.as_slice())
    }

    /// Longest cached prefix of `token_ids` usable by a new request, never the last token.
    pub fn lookup_prefix(&self, token_ids: &[u32]) -> PrefixHit {
        let max_cached_tokens = token_ids.len().saturating_sub(1);
        let mut hit = PrefixHit::default();
        let mut parent = ROOT_HASH;
        for page in token_ids[..max_cached_tokens].chunks_exact(BLOCK_TOKENS) {
            let Some((block, hash)) = self.cache.lookup_full(parent, page) else {
                break;
            };
            hit.shared_blocks.push(block);
            parent = hash;
        }
        hit.num_cached_tokens = hit.shared_blocks.len() * BLOCK_TOKENS;
        let tail_end = max_cached_tokens.min(hit.num_cached_tokens + BLOCK_TOKENS);
        let tail = &token_ids[hit.num_cached_tokens..tail_end];
        if let Some((src, num_tokens)) = self.cache.longest_match(parent, tail) {
            hit.tail_copy = Some(TailCopy { src, num_tokens });
            hit.num_cached_tokens += num_tokens;
        }
        hit
    }

    /// First allocation of a (new or resumed) request: takes the hit's shared pages, plans the tail
    /// copy, and adds fresh pages for `num_new_tokens` tokens after the hit. Pages the id still
    /// holds are freed first. `Ok(None)` (and nothing changed) when the pages do not fit now.
    /// Call right after [`Self::lookup_prefix`], with no other mutation in between.
    pub fn allocate_new(
        &mut self,
        id: RequestId,
        hit: &PrefixHit,
        num_new_tokens: usize,
    ) -> Result<Option<Allocation>, SchedError> {
        if self.requests.contains_key(&id) {
            self.free(id)?;
        }
        let num_pages = num_pages_for(hit.num_cached_tokens + num_new_tokens);
        let num_fresh = num_pages.saturating_sub(hit.shared_blocks.len());
        let copy_src = hit.tail_copy.map(|t| t.src);
        let num_revived = hit
            .shared_blocks
            .iter()
            .chain(copy_src.iter())
            .filter(|&&b| self.pool.ref_count(b) == 0)
            .count();
        if num_fresh + num_revived > self.pool.num_free_blocks() {
            return Ok(None);
        }
        for &block in &hit.shared_blocks {
            self.pool.touch(block)?;
        }
        if let Some(src) = copy_src {
            self.pool.touch(src)?;
            self.pinned_copy_sources.push(src);
        }
        let new_blocks = self.take_free_blocks(num_fresh)?;
        let copies = match (hit.tail_copy, new_blocks.first()) {
            (Some(tail), Some(&dst)) => vec![BlockCopy {
                src: tail.src,
                dst,
                num_tokens: tail.num_tokens,
            }],
            _ => Vec::new(),
        };
        let mut blocks = hit.shared_blocks.clone();
        blocks.extend_from_slice(&new_blocks);
        self.requests.insert(
            id,
            RequestPages {
                blocks,
                page_hashes: Vec::new(),
            },
        );
        Ok(Some(Allocation { new_blocks, copies }))
    }

    /// Grows the request's table to hold `num_tokens` tokens. `Ok(None)` (nothing changed) when
    /// the pages do not fit now. An unknown id starts an empty table (no prefix reuse).
    pub fn allocate(
        &mut self,
        id: RequestId,
        num_tokens: usize,
    ) -> Result<Option<Allocation>, SchedError> {
        let num_held = self.requests.get(&id).map_or(0, |r| r.blocks.len());
        let num_fresh = num_pages_for(num_tokens).saturating_sub(num_held);
        if num_fresh > self.pool.num_free_blocks() {
            return Ok(None);
        }
        let new_blocks = self.take_free_blocks(num_fresh)?;
        let pages = self.requests.entry(id).or_default();
        pages.blocks.extend_from_slice(&new_blocks);
        Ok(Some(Allocation {
            new_blocks,
            copies: Vec::new(),
        }))
    }

    /// Returns the request's pages to the pool, tail first. Cached pages keep their entries.
    /// Returns whether the id held pages.
    pub fn free(&mut self, id: RequestId) -> Result<bool, SchedError> {
        let Some(pages) = self.requests.remove(&id) else {
            return Ok(false);
        };
        for &block in pages.blocks.iter().rev() {
            self.pool.release(block)?;
        }
        Ok(true)
    }

    /// Registers the request's computed pages: every full page among tokens
    /// `0..num_computed_tokens` (`token_ids` = prompt ++ output) and the partial tail page.
    pub fn cache_blocks(
        &mut self,
        id: RequestId,
        token_ids: &[u32],
        num_computed_tokens: usize,
    ) -> Result<(), SchedError> {
        let pages = self
            .requests
            .get_mut(&id)
            .ok_or(SchedError::UnknownRequest(id))?;
        let num_computed_tokens = num_computed_tokens.min(token_ids.len());
        if pages.blocks.len() < num_pages_for(num_computed_tokens) {
            return Err(SchedError::MissingPages {
                id,
                num_blocks: pages.blocks.len(),
                num_tokens: num_computed_tokens,
            });
        }
        let num_full = num_computed_tokens / BLOCK_TOKENS;
        for page in pages.page_hashes.len()..num_full {
            let parent = pages.page_hashes.last().copied().unwrap_or(ROOT_HASH);
            let page_tokens = &token_ids[page * BLOCK_TOKENS..(page + 1) * BLOCK_TOKENS];
            let block = *pages.blocks.get(page).ok_or(SchedError::Internal(
                "page table shorter than computed tokens",
            ))?;
            let hash = crate::page_hash(parent, page_tokens);
            pages.page_hashes.push(hash);
            let already = self
                .cache
                .entry(block)
                .is_some_and(|e| e.hash == Some(hash));
            if !already {
                let cached = self.cache.insert_full(block, parent, page_tokens)?;
                self.pool.set_cached(block, cached)?;
            }
        }
        let tail_tokens = &token_ids[num_full * BLOCK_TOKENS..num_computed_tokens];
        if !tail_tokens.is_empty() {
            let parent = num_full
                .checked_sub(1)
                .and_then(|p| pages.page_hashes.get(p))
                .copied()
                .unwrap_or(ROOT_HASH);
            let block = *pages.blocks.get(num_full).ok_or(SchedError::Internal(
                "page table shorter than computed tokens",
            ))?;
            self.cache.insert_partial(block, parent, tail_tokens)?;
            self.pool.set_cached(block, true)?;
        }
        Ok(())
    }

    /// Unpins the copy sources planned since the last call (their copies have run).
    pub fn release_copy_sources(&mut self) -> Result<(), SchedError> {
        for block in std::mem::take(&mut self.pinned_copy_sources) {
            self.pool.release(block)?;
        }
        Ok(())
    }

    fn take_free_blocks(&mut self, count: usize) -> Result<Vec<BlockId>, SchedError> {
        let mut blocks = Vec::with_capacity(count);
        for _ in 0..count {
            let Some(taken) = self.pool.allocate() else {
                // Callers check capacity first; undo to keep refcounts exact.
                for &b in &blocks {
                    self.pool.release(b)?;
                }
                return Err(SchedError::Internal("block pool exhausted mid-allocation"));
            };
            if taken.evicted {
                if let Some(hash) = self.cache.entry(taken.block).and_then(|e| e.hash) {
                    self.snapshots.remove(hash);
                }
                self.cache.remove(taken.block)?;
            }
            blocks.push(taken.block);
        }
        Ok(blocks)
    }
}
