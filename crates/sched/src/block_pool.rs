//! [`BlockPool`]: a fixed pool of KV pages ("blocks") of [`BLOCK_TOKENS`] tokens each.
//!
//! Block 0 is the reserved *null block*: it is never handed out, so runners can pad block
//! tables with it. Usable blocks are `1..num_blocks`.
//!
//! Invariants:
//! - `ref_count(b)` == number of holders of `b` (requests whose block table contains it, plus
//!   one per pending copy-on-write source pin, see `KvCacheManager`).
//! - A usable block is in exactly one free queue iff its refcount is 0.
//! - Free blocks without cached content (`cached == false`) sit in a FIFO queue and are reused
//!   first, in the order they were freed (initially `1, 2, 3, ...`).
//! - Free blocks with cached content (`cached == true`) sit in an LRU queue and are reused only
//!   when no uncached free block is left, least recently freed first. Reusing one *evicts* it:
//!   [`BlockPool::allocate`] reports `evicted == true` and the caller must drop its prefix-cache
//!   entry.
//! - Touching a free cached block (a prefix-cache hit) takes it out of the LRU queue.

use std::collections::{BTreeMap, VecDeque};

use crate::SchedError;

/// Tokens per KV page.
pub const BLOCK_TOKENS: usize = 16;

/// Index of a KV page; the same id addresses the same token slots in every attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub u32);

impl BlockId {
    /// The reserved padding block.
    pub const NULL: BlockId = BlockId(0);

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A block taken from the free queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatedBlock {
    pub block: BlockId,
    /// The block held cached content that is now gone; drop its prefix-cache entry.
    pub evicted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// refcount > 0, or the null block.
    InUse,
    /// In the uncached FIFO queue.
    FreeUncached,
    /// In the cached LRU queue under this stamp.
    FreeCached { lru_stamp: u64 },
}

#[derive(Clone, Copy, Debug)]
struct BlockMeta {
    ref_count: u32,
    cached: bool,
    slot: Slot,
}

#[derive(Clone, Debug)]
pub struct BlockPool {
    meta: Vec<BlockMeta>,
    free_uncached: VecDeque<BlockId>,
    /// lru stamp -> block; smallest stamp = least recently freed = evicted first.
    free_cached: BTreeMap<u64, BlockId>,
    next_lru_stamp: u64,
}

impl BlockPool {
    /// A pool of `num_blocks` pages including the null block (so `num_blocks - 1` usable).
    pub fn new(num_blocks: usize) -> Result<Self, SchedError> {
        if num_blocks < 2 {
            return Err(SchedError::InvalidConfig(
                "num_blocks must be >= 2 (block 0 is null)",
            ));
        }
        if u32::try_from(num_blocks).is_err() {
            return Err(SchedError::InvalidConfig("num_blocks must fit in u32"));
        }
        let mut meta = vec![
            BlockMeta {
                ref_count: 0,
                cached: false,
                slot: Slot::FreeUncached,
            };
            num_blocks
        ];
        meta[0].slot = Slot::InUse;
        let free_uncached = (1..num_blocks as u32).map(BlockId).collect();
        Ok(Self {
            meta,
            free_uncached,
            free_cached: BTreeMap::new(),
            next_lru_stamp: 0,
        })
    }

    /// Total pages including the null block.
    pub fn num_blocks(&self) -> usize {
        self.meta.len()
    }

    pub fn num_usable_blocks(&self) -> usize {
        self.meta.len() - 1
    }

    /// Pages with refcount 0 (cached or not).
    pub fn num_free_blocks(&self) -> usize {
        self.free_uncached.len() + self.free_cached.len()
    }

    /// Free pages that still hold cached content.
    pub fn num_free_cached_blocks(&self) -> usize {
        self.free_cached.len()
    }

    /// Pages with refcount > 0.
    pub fn num_used_blocks(&self) -> usize {
        self.num_usable_blocks() - self.num_free_blocks()
    }

    /// 0 for free, out-of-range and null blocks.
    pub fn ref_count(&self, block: BlockId) -> u32 {
        self.meta.get(block.index()).map_or(0, |m| m.ref_count)
    }

    pub fn is_cached(&self, block: BlockId) -> bool {
        self.meta.get(block.index()).is_some_and(|m| m.cached)
    }

    /// Cached free blocks, next to be evicted first.
    pub fn lru_eviction_order(&self) -> Vec<BlockId> {
        self.free_cached.values().copied().collect()
    }

    /// Takes one free block (uncached ones first, then the LRU cached one) with refcount 1.
    /// `None` when every usable block is in use.
    pub fn allocate(&mut self) -> Option<AllocatedBlock> {
        let (block, evicted) = match self.free_uncached.pop_front() {
            Some(block) => (block, false),
            None => (self.free_cached.pop_first()?.1, true),
        };
        let meta = &mut self.meta[block.index()];
        meta.ref_count = 1;
        meta.cached = false;
        meta.slot = Slot::InUse;
        Some(AllocatedBlock { block, evicted })
    }

    /// Adds a holder to `block`; a free block leaves its free queue.
    pub fn touch(&mut self, block: BlockId) -> Result<(), SchedError> {
        let meta = self.usable_meta(block)?;
        let slot = meta.slot;
        meta.ref_count += 1;
        meta.slot = Slot::InUse;
        self.unlink(block, slot);
        Ok(())
    }

    /// Drops a holder of `block`; at refcount 0 it joins the cached LRU queue (most recently
    /// used end) if it holds cached content, else the back of the uncached queue.
    pub fn release(&mut self, block: BlockId) -> Result<(), SchedError> {
        let meta = self.usable_meta(block)?;
        if meta.ref_count == 0 {
            return Err(SchedError::BlockNotInUse(block));
        }
        meta.ref_count -= 1;
        if meta.ref_count == 0 {
            let cached = meta.cached;
            self.link_free(block, cached);
        }
        Ok(())
    }

    /// Marks whether `block` holds prefix-cache content; a free block moves between queues.
    pub fn set_cached(&mut self, block: BlockId, cached: bool) -> Result<(), SchedError> {
        let meta = self.usable_meta(block)?;
        if meta.cached == cached {
            return Ok(());
        }
        meta.cached = cached;
        let slot = meta.slot;
        if slot != Slot::InUse {
            self.unlink(block, slot);
            self.link_free(block, cached);
        }
        Ok(())
    }

    fn usable_meta(&mut self, block: BlockId) -> Result<&mut BlockMeta, SchedError> {
        if block == BlockId::NULL {
            return Err(SchedError::InvalidBlock(block));
        }
        self.meta
            .get_mut(block.index())
            .ok_or(SchedError::InvalidBlock(block))
    }

    fn unlink(&mut self, block: BlockId, slot: Slot) {
        match slot {
            Slot::InUse => {}
            Slot::FreeUncached => self.free_uncached.retain(|&b| b != block),
            Slot::FreeCached { lru_stamp } => {
                self.free_cached.remove(&lru_stamp);
            }
        }
    }

    fn link_free(&mut self, block: BlockId, cached: bool) {
        let slot = if cached {
            let lru_stamp = self.next_lru_stamp;
            self.next_lru_stamp += 1;
            self.free_cached.insert(lru_stamp, block);
            Slot::FreeCached { lru_stamp }
        } else {
            self.free_uncached.push_back(block);
            Slot::FreeUncached
        };
        self.meta[block.index()].slot = slot;
    }
}
