//! [`SnapshotCache`]: the index of linear-attention state snapshots of a hybrid model.
//!
//! A snapshot is the state of every linear layer after exactly `position` tokens of some token
//! sequence, `position` a multiple of [`crate::BLOCK_TOKENS`]. It is keyed by the chained
//! [`BlockHash`] of the full page ending at `position` (which identifies the whole token prefix),
//! i.e. it is *attached to that cached page*. The scheduler only keeps ids and sizes; the engine
//! keeps the data in a map keyed by [`SnapshotId`].
//!
//! Invariants:
//! - At most one snapshot per hash; ids are never reused.
//! - `num_snapshots() <= max_snapshots` and `total_bytes() <= max_bytes` after every call.
//! - Every id ever returned by [`SnapshotCache::insert`] is, at any time, either live (findable
//!   by its hash) or in the evicted list until [`SnapshotCache::take_evicted`] hands it to the
//!   engine, which then drops the data. So engine data and scheduler index never leak.
//! - Eviction: least recently used first (registration or prefix hit refreshes), and always
//!   together with the page the snapshot is attached to (`KvCacheManager` calls `remove`).

use std::collections::{BTreeMap, HashMap};

use crate::BlockHash;

/// Engine-side key of one snapshot's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(pub u64);

/// Caps on the snapshots kept (LRU eviction beyond them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotCacheConfig {
    /// Most snapshots kept; 0 disables snapshots (and so hybrid prefix reuse).
    pub max_snapshots: usize,
    /// Most bytes of snapshot data kept.
    pub max_bytes: usize,
}

impl SnapshotCacheConfig {
    /// No snapshots at all (attention-only models).
    pub const DISABLED: SnapshotCacheConfig = SnapshotCacheConfig {
        max_snapshots: 0,
        max_bytes: 0,
    };
}

/// A live snapshot as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub id: SnapshotId,
    /// Tokens the state has consumed (a page boundary).
    pub position: usize,
    pub bytes: usize,
    lru_stamp: u64,
}

#[derive(Clone, Debug)]
pub struct SnapshotCache {
    config: SnapshotCacheConfig,
    by_hash: HashMap<BlockHash, SnapshotEntry>,
    /// lru stamp -> hash; smallest stamp = least recently used = evicted first.
    lru: BTreeMap<u64, BlockHash>,
    next_id: u64,
    next_stamp: u64,
    total_bytes: usize,
    evicted: Vec<SnapshotId>,
}

impl SnapshotCache {
    pub fn new(config: SnapshotCacheConfig) -> Self {
        Self {
            config,
            by_hash: HashMap::new(),
            lru: BTreeMap::new(),
            next_id: 0,
            next_stamp: 0,
            total_bytes: 0,
            evicted: Vec::new(),
        }
    }

    pub fn config(&self) -> SnapshotCacheConfig {
        self.config
    }

    pub fn num_snapshots(&self) -> usize {
        self.by_hash.len()
    }

    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// The live snapshot after the prefix whose last page hashes to `hash`.
    pub fn get(&self, hash: BlockHash) -> Option<&SnapshotEntry> {
        self.by_hash.get(&hash)
    }

    /// Live snapshot ids, next to be evicted first.
    pub fn lru_order(&self) -> Vec<SnapshotId> {
        self.lru
            .values()
            .filter_map(|h| self.by_hash.get(h).map(|e| e.id))
            .collect()
    }

    /// Records a new snapshot at `position` for the prefix ending in page `hash`, evicting least
    /// recently used ones to stay within the caps. `None` (nothing stored, the caller drops the
    /// data) when one already exists for `hash` (it is refreshed instead) or it can never fit.
    pub fn insert(&mut self, hash: BlockHash, position: usize, bytes: usize) -> Option<SnapshotId> {
        if self.by_hash.contains_key(&hash) {
            self.touch(hash);
            return None;
        }
        if self.config.max_snapshots == 0 || bytes > self.config.max_bytes {
            return None;
        }
        while self.by_hash.len() >= self.config.max_snapshots
            || self.total_bytes + bytes > self.config.max_bytes
        {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            self.drop_entry(oldest);
        }
        let id = SnapshotId(self.next_id);
        self.next_id += 1;
        let lru_stamp = self.next_stamp;
        self.next_stamp += 1;
        self.lru.insert(lru_stamp, hash);
        self.by_hash.insert(
            hash,
            SnapshotEntry {
                id,
                position,
                bytes,
                lru_stamp,
            },
        );
        self.total_bytes += bytes;
        Some(id)
    }

    /// Marks the snapshot for `hash` (if any) most recently used.
    pub fn touch(&mut self, hash: BlockHash) {
        let stamp = self.next_stamp;
        if let Some(entry) = self.by_hash.get_mut(&hash) {
            self.lru.remove(&entry.lru_stamp);
            entry.lru_stamp = stamp;
            self.lru.insert(stamp, hash);
            self.next_stamp += 1;
        }
    }

    /// Evicts the snapshot for `hash` (its page is evicted); returns whether there was one.
    pub fn remove(&mut self, hash: BlockHash) -> bool {
        let Some(entry) = self.by_hash.get(&hash) else {
            return false;
        };
        self.lru.remove(&entry.lru_stamp);
        self.drop_entry(hash);
        true
    }

    /// Ids evicted since the last call (the engine drops their data).
    pub fn take_evicted(&mut self) -> Vec<SnapshotId> {
        std::mem::take(&mut self.evicted)
    }

    /// Removes `hash`'s entry (already unlinked from `lru`) and reports its id.
    fn drop_entry(&mut self, hash: BlockHash) {
        if let Some(entry) = self.by_hash.remove(&hash) {
            self.total_bytes -= entry.bytes;
            self.evicted.push(entry.id);
        }
    }
}
