//! Exact-id tests of the hybrid-model cache rules below the scheduler: [`StatePool`] slots,
//! [`SnapshotCache`] LRU caps, and the [`KvCacheManager`] snapshot rules (registration at page
//! boundaries, longest-boundary lookup without tail copy, eviction together with the page).

#![allow(clippy::unwrap_used)]

use arle_sched::{
    page_hash, BlockHash, BlockId, KvCacheManager, PrefixHit, RequestId, SchedError, SnapshotCache,
    SnapshotCacheConfig, SnapshotId, StatePool, StateSlotId, ROOT_HASH,
};

const A: RequestId = RequestId(1);
const B: RequestId = RequestId(2);

fn ids(raw: &[u32]) -> Vec<BlockId> {
    raw.iter().map(|&b| BlockId(b)).collect()
}

fn tokens(range: std::ops::Range<u32>) -> Vec<u32> {
    range.collect()
}

fn hash(n: u32) -> BlockHash {
    page_hash(ROOT_HASH, &[n])
}

fn caps(max_snapshots: usize, max_bytes: usize) -> SnapshotCacheConfig {
    SnapshotCacheConfig {
        max_snapshots,
        max_bytes,
    }
}

/// Admits `id` with a hybrid lookup, allocates the rest, marks everything computed.
fn admit_and_compute(kv: &mut KvCacheManager, id: RequestId, prompt: &[u32]) -> PrefixHit {
    let hit = kv.lookup_prefix_with_snapshot(prompt);
    let num_new = prompt.len() - hit.num_cached_tokens;
    kv.allocate_new(id, &hit, num_new).unwrap().expect("fits");
    kv.cache_blocks(id, prompt, prompt.len()).unwrap();
    hit
}

#[test]
fn state_pool_hands_out_the_lowest_free_slot_and_rejects_bad_frees() {
    let mut pool = StatePool::new(3).unwrap();
    let taken: Vec<_> = (0..3).map(|_| pool.allocate()).collect();
    assert_eq!(
        taken,
        vec![
            Some(StateSlotId(0)),
            Some(StateSlotId(1)),
            Some(StateSlotId(2))
        ]
    );
    assert_eq!(pool.allocate(), None, "every slot owned: does not fit");
    assert_eq!((pool.num_used_slots(), pool.num_free_slots()), (3, 0));
    pool.free(StateSlotId(1)).unwrap();
    pool.free(StateSlotId(0)).unwrap();
    assert_eq!(pool.allocate(), Some(StateSlotId(0)));
    assert_eq!(
        pool.free(StateSlotId(1)),
        Err(SchedError::StateSlotNotInUse(StateSlotId(1)))
    );
    assert_eq!(
        pool.free(StateSlotId(3)),
        Err(SchedError::InvalidStateSlot(StateSlotId(3)))
    );
    assert_eq!(StatePool::new(0).unwrap().allocate(), None);
}

#[test]
fn snapshot_cache_evicts_least_recently_used_beyond_the_count_cap() {
    let mut c = SnapshotCache::new(caps(2, 1 << 20));
    assert_eq!(c.insert(hash(1), 16, 100), Some(SnapshotId(0)));
    assert_eq!(c.insert(hash(2), 32, 100), Some(SnapshotId(1)));
    c.touch(hash(1));
    assert_eq!(c.insert(hash(3), 48, 100), Some(SnapshotId(2)));
    assert_eq!(c.take_evicted(), vec![SnapshotId(1)]);
    assert!(c.get(hash(2)).is_none());
    assert_eq!(c.lru_order(), vec![SnapshotId(0), SnapshotId(2)]);
    // A second snapshot for a hash is not stored; it refreshes the existing one.
    assert_eq!(c.insert(hash(1), 16, 100), None);
    assert_eq!(c.lru_order(), vec![SnapshotId(2), SnapshotId(0)]);
    assert_eq!((c.num_snapshots(), c.total_bytes()), (2, 200));
    assert!(c.take_evicted().is_empty());
}

#[test]
fn snapshot_cache_evicts_to_stay_within_the_byte_cap() {
    let mut c = SnapshotCache::new(caps(10, 250));
    assert_eq!(c.insert(hash(1), 16, 100), Some(SnapshotId(0)));
    assert_eq!(c.insert(hash(2), 32, 100), Some(SnapshotId(1)));
    assert_eq!(c.insert(hash(3), 48, 100), Some(SnapshotId(2)));
    assert_eq!(c.take_evicted(), vec![SnapshotId(0)]);
    assert_eq!(c.total_bytes(), 200);
    assert_eq!(c.insert(hash(4), 64, 300), None, "larger than the cap");
    assert!(
        c.take_evicted().is_empty(),
        "a snapshot that can never fit evicts nothing"
    );
    assert!(c.remove(hash(2)));
    assert!(!c.remove(hash(2)));
    assert_eq!(c.take_evicted(), vec![SnapshotId(1)]);
    let mut off = SnapshotCache::new(SnapshotCacheConfig::DISABLED);
    assert_eq!(off.insert(hash(1), 16, 0), None);
}

#[test]
fn snapshots_register_only_at_computed_cached_page_boundaries() {
    let mut kv = KvCacheManager::with_snapshots(20, caps(10, 1 << 20)).unwrap();
    let prompt = tokens(0..100);
    assert_eq!(admit_and_compute(&mut kv, A, &prompt), PrefixHit::default());
    assert_eq!(
        kv.register_snapshot(A, 32, 10).unwrap(),
        Some(SnapshotId(0))
    );
    assert_eq!(
        kv.register_snapshot(A, 64, 10).unwrap(),
        Some(SnapshotId(1))
    );
    assert_eq!(kv.register_snapshot(A, 64, 10).unwrap(), None, "duplicate");
    assert_eq!(
        kv.register_snapshot(A, 40, 10).unwrap(),
        None,
        "not a page boundary"
    );
    assert_eq!(kv.register_snapshot(A, 0, 10).unwrap(), None);
    assert_eq!(
        kv.register_snapshot(A, 112, 10).unwrap(),
        None,
        "page 6 not computed"
    );
    assert_eq!(
        kv.register_snapshot(B, 32, 10),
        Err(SchedError::UnknownRequest(B))
    );
    let page_1 = kv.request_page_hash(A, 1).unwrap();
    assert_eq!(kv.snapshots().get(page_1).unwrap().position, 32);
    assert_eq!(kv.snapshots().num_snapshots(), 2);
}

#[test]
fn hybrid_lookup_is_the_longest_cached_prefix_ending_at_a_snapshot() {
    let mut kv = KvCacheManager::with_snapshots(20, caps(10, 1 << 20)).unwrap();
    admit_and_compute(&mut kv, A, &tokens(0..100)); // blocks 1..=7
    kv.register_snapshot(A, 32, 10).unwrap();
    kv.register_snapshot(A, 64, 10).unwrap();

    let mut longer = tokens(0..100);
    longer.extend([7, 8, 9]);
    let hit = kv.lookup_prefix_with_snapshot(&longer);
    assert_eq!(
        hit,
        PrefixHit {
            shared_blocks: ids(&[1, 2, 3, 4]),
            tail_copy: None,
            num_cached_tokens: 64,
            snapshot: Some(SnapshotId(1)),
        }
    );
    // Pages 4 and 5 are cached too, but there is no snapshot at 80 or 96; the partial tail page
    // of A is never copied for a hybrid model.
    assert_eq!(kv.lookup_prefix(&longer).num_cached_tokens, 100);
    // 64 tokens: the last token rule leaves 3 full pages, whose best snapshot is at 32.
    let hit = kv.lookup_prefix_with_snapshot(&tokens(0..64));
    assert_eq!(hit.shared_blocks, ids(&[1, 2]));
    assert_eq!(hit.snapshot, Some(SnapshotId(0)));
    assert_eq!(
        kv.lookup_prefix_with_snapshot(&tokens(0..33))
            .num_cached_tokens,
        32
    );
    assert_eq!(
        kv.lookup_prefix_with_snapshot(&tokens(0..32)),
        PrefixHit::default()
    );
    // Diverging inside page 3 (positions 48..64): the snapshot at 64 is not reachable.
    let mut diverged = tokens(0..100);
    diverged[50] = 7777;
    assert_eq!(
        kv.lookup_prefix_with_snapshot(&diverged).num_cached_tokens,
        32
    );
    let mut other_start = tokens(0..100);
    other_start[0] = 7777;
    assert_eq!(
        kv.lookup_prefix_with_snapshot(&other_start),
        PrefixHit::default()
    );
}

#[test]
fn evicting_a_page_evicts_the_snapshot_attached_to_it() {
    // 5 usable pages. A: 40 tokens = pages 1, 2 (full) and 3 (partial), snapshot at 32 (page 2).
    let mut kv = KvCacheManager::with_snapshots(6, caps(10, 1 << 20)).unwrap();
    admit_and_compute(&mut kv, A, &tokens(0..40));
    assert_eq!(
        kv.register_snapshot(A, 32, 10).unwrap(),
        Some(SnapshotId(0))
    );
    kv.free(A).unwrap();
    assert_eq!(
        kv.lookup_prefix_with_snapshot(&tokens(0..40))
            .num_cached_tokens,
        32
    );
    // B needs 4 fresh pages: 4, 5 (never cached), then 3 and 2 from the LRU queue.
    let alloc = kv
        .allocate_new(B, &PrefixHit::default(), 64)
        .unwrap()
        .unwrap();
    assert_eq!(alloc.new_blocks, ids(&[4, 5, 3, 2]));
    assert_eq!(kv.take_evicted_snapshots(), vec![SnapshotId(0)]);
    assert_eq!(kv.snapshots().num_snapshots(), 0);
    // Page 0 (block 1) is still cached but has no snapshot: no hybrid hit.
    assert_eq!(kv.lookup_prefix(&tokens(0..40)).shared_blocks, ids(&[1]));
    assert_eq!(
        kv.lookup_prefix_with_snapshot(&tokens(0..40)),
        PrefixHit::default()
    );
}

#[test]
fn snapshot_count_cap_evicts_the_oldest_but_keeps_its_page() {
    let mut kv = KvCacheManager::with_snapshots(20, caps(1, 1 << 20)).unwrap();
    admit_and_compute(&mut kv, A, &tokens(0..100));
    assert_eq!(
        kv.register_snapshot(A, 32, 10).unwrap(),
        Some(SnapshotId(0))
    );
    assert_eq!(
        kv.register_snapshot(A, 64, 10).unwrap(),
        Some(SnapshotId(1))
    );
    assert_eq!(kv.take_evicted_snapshots(), vec![SnapshotId(0)]);
    let hit = kv.lookup_prefix_with_snapshot(&tokens(0..50));
    assert_eq!(hit, PrefixHit::default(), "no snapshot at 32 any more");
    assert_eq!(kv.lookup_prefix(&tokens(0..50)).num_cached_tokens, 49);
}
