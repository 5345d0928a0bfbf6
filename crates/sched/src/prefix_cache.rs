//! [`PrefixCache`]: content index of computed KV pages, keyed by token prefix.
//!
//! Two kinds of entries, at most one per block:
//! - *full* page: 16 computed tokens; found by its chained [`BlockHash`] (hash of parent hash and
//!   tokens). Full pages are shared read-only between requests (no copy).
//! - *partial* page: the first `k < 16` computed tokens of a request's tail page. Only ever a
//!   copy-on-write source: a later request whose next page starts with the same tokens gets a
//!   fresh page and a `BlockCopy` plan (see `KvCacheManager`).
//!
//! Both kinds are also listed under their parent hash (`children`), which is how the tail page of
//! a lookup finds the cached page (full or partial) sharing the longest token prefix with it.
//!
//! Invariants:
//! - `full_pages[h] == b` iff `entries[b]` is a full entry with hash `h`; a hash maps to one block
//!   (a second block computing the same content is simply not registered).
//! - `b` is in `children[p]` iff `entries[b]` exists with parent `p`.
//! - An entry describes tokens that are computed in the block and never rewritten while the entry
//!   exists (a request only appends to its tail page; a block is evicted before it is reused).
//! - Hits compare tokens and parent, not only the hash.

use std::collections::HashMap;

use crate::{page_hash, BlockHash, BlockId, SchedError, BLOCK_TOKENS};

/// What a cached block holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedPage {
    /// Hash of all pages before this one ([`crate::ROOT_HASH`] for page 0).
    pub parent: BlockHash,
    /// The computed tokens at the start of the block: 16 for a full page, 1..=15 for a partial.
    pub token_ids: Vec<u32>,
    /// `Some` for a full page.
    pub hash: Option<BlockHash>,
}

#[derive(Clone, Debug)]
pub struct PrefixCache {
    entries: Vec<Option<CachedPage>>,
    full_pages: HashMap<BlockHash, BlockId>,
    children: HashMap<BlockHash, Vec<BlockId>>,
}

impl PrefixCache {
    pub fn new(num_blocks: usize) -> Self {
        Self {
            entries: vec![None; num_blocks],
            full_pages: HashMap::new(),
            children: HashMap::new(),
        }
    }

    /// Blocks with an entry (full or partial).
    pub fn num_cached_pages(&self) -> usize {
        self.children.values().map(Vec::len).sum()
    }

    pub fn num_full_pages(&self) -> usize {
        self.full_pages.len()
    }

    pub fn entry(&self, block: BlockId) -> Option<&CachedPage> {
        self.entries.get(block.index()).and_then(Option::as_ref)
    }

    /// The block holding the full page `token_ids` (16 tokens) after `parent`, with its hash.
    pub fn lookup_full(
        &self,
        parent: BlockHash,
        token_ids: &[u32],
    ) -> Option<(BlockId, BlockHash)> {
        let hash = page_hash(parent, token_ids);
        let block = *self.full_pages.get(&hash)?;
        let entry = self.entry(block)?;
        (entry.parent == parent && entry.token_ids == token_ids).then_some((block, hash))
    }

    /// The block registered as the full page with chained hash `hash`.
    pub fn full_page_block(&self, hash: BlockHash) -> Option<BlockId> {
        self.full_pages.get(&hash).copied()
    }

    /// Among cached pages (full or partial) after `parent`, the one sharing the longest common
    /// token prefix with `token_ids`, and that length (>= 1). Ties go to the earlier registered.
    pub fn longest_match(&self, parent: BlockHash, token_ids: &[u32]) -> Option<(BlockId, usize)> {
        let mut best: Option<(BlockId, usize)> = None;
        for &block in self.children.get(&parent)? {
            let Some(entry) = self.entry(block) else {
                continue;
            };
            let common = entry
                .token_ids
                .iter()
                .zip(token_ids)
                .take_while(|(a, b)| a == b)
                .count();
            if common > 0 && best.is_none_or(|(_, n)| common > n) {
                best = Some((block, common));
            }
        }
        best
    }

    /// Registers `block` as the full page `token_ids` after `parent`, replacing any entry the block
    /// had. Returns `false` (block left without entry) if another block already holds that page.
    pub fn insert_full(
        &mut self,
        block: BlockId,
        parent: BlockHash,
        token_ids: &[u32],
    ) -> Result<bool, SchedError> {
        if token_ids.len() != BLOCK_TOKENS {
            return Err(SchedError::InvalidPage {
                num_tokens: token_ids.len(),
                kind: "full",
            });
        }
        self.remove(block)?;
        let hash = page_hash(parent, token_ids);
        if self.full_pages.contains_key(&hash) {
            return Ok(false);
        }
        self.full_pages.insert(hash, block);
        self.link(block, parent, token_ids, Some(hash))?;
        Ok(true)
    }

    /// Registers (or refreshes) `block` as a partial page holding `token_ids` after `parent`.
    pub fn insert_partial(
        &mut self,
        block: BlockId,
        parent: BlockHash,
        token_ids: &[u32],
    ) -> Result<(), SchedError> {
        if token_ids.is_empty() || token_ids.len() >= BLOCK_TOKENS {
            return Err(SchedError::InvalidPage {
                num_tokens: token_ids.len(),
                kind: "partial",
            });
        }
        self.remove(block)?;
        self.link(block, parent, token_ids, None)
    }

    /// Drops `block`'s entry; returns whether it had one.
    pub fn remove(&mut self, block: BlockId) -> Result<bool, SchedError> {
        let slot = self
            .entries
            .get_mut(block.index())
            .ok_or(SchedError::InvalidBlock(block))?;
        let Some(entry) = slot.take() else {
            return Ok(false);
        };
        if let Some(hash) = entry.hash {
            self.full_pages.remove(&hash);
        }
        if let Some(list) = self.children.get_mut(&entry.parent) {
            list.retain(|&b| b != block);
            if list.is_empty() {
                self.children.remove(&entry.parent);
            }
        }
        Ok(true)
    }

    fn link(
        &mut self,
        block: BlockId,
        parent: BlockHash,
        token_ids: &[u32],
        hash: Option<BlockHash>,
    ) -> Result<(), SchedError> {
        let slot = self
            .entries
            .get_mut(block.index())
            .ok_or(SchedError::InvalidBlock(block))?;
        *slot = Some(CachedPage {
            parent,
            token_ids: token_ids.to_vec(),
            hash,
        });
        self.children.entry(parent).or_default().push(block);
        Ok(())
    }
}
