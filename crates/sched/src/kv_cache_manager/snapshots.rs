//! Prefix reuse for hybrid models: [`KvCacheManager`]'s side of linear-state snapshots.
//!
//! Linear-attention state cannot be truncated or rolled back (MODEL-SPECS §7.2), so a prefix of
//! `P` tokens is reusable only if the KV pages `0..P` are cached *and* a snapshot of the state at
//! exactly `P` exists. Snapshots hang off the full page ending at `P` (keyed by its chained hash):
//! - [`KvCacheManager::lookup_prefix_with_snapshot`]: longest such `P`, still never the last
//!   token, no tail copy (a partial page has no state to resume from).
//! - [`KvCacheManager::register_snapshot`]: attach a captured state to a request's computed page.
//! - Evicting a cached page evicts its snapshot (see `take_free_blocks`); the LRU caps of the
//!   [`crate::SnapshotCache`] evict more. Evicted ids are collected for the engine.

use crate::{
    BlockHash, KvCacheManager, PrefixHit, RequestId, SchedError, SnapshotCache, SnapshotId,
    BLOCK_TOKENS, ROOT_HASH,
};

impl KvCacheManager {
    pub fn snapshots(&self) -> &SnapshotCache {
        &self.snapshots
    }

    /// Longest cached prefix of `token_ids` that ends at a snapshot, never the last token.
    pub fn lookup_prefix_with_snapshot(&self, token_ids: &[u32]) -> PrefixHit {
        let max_cached_tokens = token_ids.len().saturating_sub(1);
        let mut parent = ROOT_HASH;
        let mut blocks = Vec::new();
        let mut best: Option<(usize, SnapshotId)> = None;
        for page in token_ids[..max_cached_tokens].chunks_exact(BLOCK_TOKENS) {
            let Some((block, hash)) = self.cache.lookup_full(parent, page) else {
                break;
            };
            blocks.push(block);
            parent = hash;
            if let Some(entry) = self.snapshots.get(hash) {
                best = Some((blocks.len(), entry.id));
            }
        }
        let Some((num_pages, id)) = best else {
            return PrefixHit::default();
        };
        blocks.truncate(num_pages);
        PrefixHit {
            shared_blocks: blocks,
            tail_copy: None,
            num_cached_tokens: num_pages * BLOCK_TOKENS,
            snapshot: Some(id),
        }
    }

    /// Marks the snapshot a hit resumes from as most recently used.
    pub fn touch_snapshot(&mut self, hit: &PrefixHit) {
        if hit.snapshot.is_none() {
            return;
        }
        let hash = hit
            .shared_blocks
            .last()
            .and_then(|&b| self.cache.entry(b))
            .and_then(|e| e.hash);
        if let Some(hash) = hash {
            self.snapshots.touch(hash);
        }
    }

    /// Attaches a snapshot of request `id`'s state after `position` tokens to its cached page
    /// ending there. Pages must be registered first (`cache_blocks`). `Ok(None)` (the caller drops
    /// the data) when `position` is not a page boundary, the page is not in the prefix cache, a
    /// snapshot already exists there, or the caps leave no room.
    pub fn register_snapshot(
        &mut self,
        id: RequestId,
        position: usize,
        bytes: usize,
    ) -> Result<Option<SnapshotId>, SchedError> {
        let pages = self
            .requests
            .get(&id)
            .ok_or(SchedError::UnknownRequest(id))?;
        if position == 0 || !position.is_multiple_of(BLOCK_TOKENS) {
            return Ok(None);
        }
        let Some(&hash) = pages.page_hashes.get(position / BLOCK_TOKENS - 1) else {
            return Ok(None);
        };
        if self.cache.full_page_block(hash).is_none() {
            return Ok(None);
        }
        Ok(self.snapshots.insert(hash, position, bytes))
    }

    /// Snapshot ids evicted since the last call.
    pub fn take_evicted_snapshots(&mut self) -> Vec<SnapshotId> {
        self.snapshots.take_evicted()
    }

    /// The chained hash of the request's computed full page `page` (test and debug aid).
    pub fn request_page_hash(&self, id: RequestId, page: usize) -> Option<BlockHash> {
        self.requests
            .get(&id)
            .and_then(|r| r.page_hashes.get(page))
            .copied()
    }
}
