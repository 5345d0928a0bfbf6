//! Exact-id tests of the block pool, prefix cache and KV cache manager rules
//! (style of vLLM `tests/v1/core/test_prefix_caching.py`).

#![allow(clippy::unwrap_used)]

use arle_sched::{BlockCopy, BlockId, KvCacheManager, PrefixHit, RequestId, TailCopy};

fn ids(raw: &[u32]) -> Vec<BlockId> {
    raw.iter().map(|&b| BlockId(b)).collect()
}

fn tokens(range: std::ops::Range<u32>) -> Vec<u32> {
    range.collect()
}

const A: RequestId = RequestId(1);
const B: RequestId = RequestId(2);
const C: RequestId = RequestId(3);

/// Admits `id` the way the scheduler does: lookup, first allocation of the whole rest, compute.
fn admit_and_compute(kv: &mut KvCacheManager, id: RequestId, prompt: &[u32]) -> PrefixHit {
    let hit = kv.lookup_prefix(prompt);
    let num_new = prompt.len() - hit.num_cached_tokens;
    kv.allocate_new(id, &hit, num_new).unwrap().expect("fits");
    kv.cache_blocks(id, prompt, prompt.len()).unwrap();
    hit
}

#[test]
fn null_block_is_reserved_and_allocation_is_in_order() {
    let mut kv = KvCacheManager::new(11).unwrap(); // usable 1..=10
    assert_eq!(kv.pool().num_free_blocks(), 10);
    let a = kv.allocate(A, 40).unwrap().unwrap(); // 3 pages
    assert_eq!(a.new_blocks, ids(&[1, 2, 3]));
    let b = kv.allocate(B, 20).unwrap().unwrap();
    assert_eq!(b.new_blocks, ids(&[4, 5]));
    // growing A by one token inside page 3 takes nothing; one more page takes 6
    assert_eq!(kv.allocate(A, 48).unwrap().unwrap().new_blocks, ids(&[]));
    assert_eq!(kv.allocate(A, 49).unwrap().unwrap().new_blocks, ids(&[6]));
    assert_eq!(kv.block_table(A).unwrap(), ids(&[1, 2, 3, 6]));
    // uncached pages go to the back of the free queue, tail first
    assert!(kv.free(A).unwrap());
    assert_eq!(kv.pool().ref_count(BlockId(1)), 0);
    let c = kv.allocate(C, 16 * 8).unwrap().unwrap();
    assert_eq!(c.new_blocks, ids(&[7, 8, 9, 10, 6, 3, 2, 1]));
    assert!(!c.new_blocks.contains(&BlockId::NULL));
    assert_eq!(kv.pool().num_free_blocks(), 0);
}

#[test]
fn allocation_that_does_not_fit_is_none_and_changes_nothing() {
    let mut kv = KvCacheManager::new(4).unwrap(); // usable 1..=3
    kv.allocate(A, 32).unwrap().unwrap();
    assert_eq!(kv.allocate(B, 17).unwrap(), None);
    assert_eq!(kv.block_table(B), None);
    assert_eq!(kv.pool().num_free_blocks(), 1);
    assert_eq!(kv.allocate(A, 64).unwrap(), None);
    assert_eq!(kv.block_table(A).unwrap(), ids(&[1, 2]));
}

#[test]
fn full_prefix_pages_are_shared_with_refcounts() {
    let mut kv = KvCacheManager::new(11).unwrap();
    let prompt_a = tokens(0..40);
    let hit_a = admit_and_compute(&mut kv, A, &prompt_a);
    assert_eq!(hit_a, PrefixHit::default());
    assert_eq!(kv.block_table(A).unwrap(), ids(&[1, 2, 3]));
    // pages 1, 2 full; page 3 partial (tokens 32..40)
    assert_eq!(kv.prefix_cache().num_full_pages(), 2);
    assert_eq!(kv.prefix_cache().num_cached_pages(), 3);

    let mut prompt_b = tokens(0..32);
    prompt_b.extend(100..110);
    let hit_b = kv.lookup_prefix(&prompt_b);
    assert_eq!(hit_b.shared_blocks, ids(&[1, 2]));
    assert_eq!(hit_b.tail_copy, None); // page 3 starts with 32, B's with 100
    assert_eq!(hit_b.num_cached_tokens, 32);
    let alloc = kv.allocate_new(B, &hit_b, 10).unwrap().unwrap();
    assert_eq!(alloc.new_blocks, ids(&[4]));
    assert!(alloc.copies.is_empty());
    assert_eq!(kv.block_table(B).unwrap(), ids(&[1, 2, 4]));
    let refs: Vec<u32> = (1..=4).map(|b| kv.pool().ref_count(BlockId(b))).collect();
    assert_eq!(refs, [2, 2, 1, 1]);

    // freeing A keeps the shared pages in use by B, and A's own tail page cached but free
    kv.free(A).unwrap();
    let refs: Vec<u32> = (1..=4).map(|b| kv.pool().ref_count(BlockId(b))).collect();
    assert_eq!(refs, [1, 1, 0, 1]);
    assert_eq!(kv.pool().lru_eviction_order(), ids(&[3]));
    kv.free(B).unwrap();
    assert_eq!(kv.pool().num_used_blocks(), 0);
}

#[test]
fn lookup_never_covers_the_last_token() {
    let mut kv = KvCacheManager::new(11).unwrap();
    let prompt = tokens(0..32);
    admit_and_compute(&mut kv, A, &prompt);
    assert_eq!(kv.block_table(A).unwrap(), ids(&[1, 2]));

    // identical 32-token prompt: page 1 shared, page 2 copied with 15 tokens, 1 token computed
    let hit = kv.lookup_prefix(&prompt);
    assert_eq!(hit.shared_blocks, ids(&[1]));
    assert_eq!(
        hit.tail_copy,
        Some(TailCopy {
            src: BlockId(2),
            num_tokens: 15
        })
    );
    assert_eq!(hit.num_cached_tokens, 31);
    let alloc = kv.allocate_new(B, &hit, 1).unwrap().unwrap();
    assert_eq!(alloc.new_blocks, ids(&[3]));
    assert_eq!(
        alloc.copies,
        [BlockCopy {
            src: BlockId(2),
            dst: BlockId(3),
            num_tokens: 15
        }]
    );
    assert_eq!(kv.block_table(B).unwrap(), ids(&[1, 3]));

    // a 16-token prompt equal to page 1: nothing shared, 15 tokens copied
    let hit16 = kv.lookup_prefix(&prompt[..16]);
    assert_eq!(hit16.shared_blocks, ids(&[]));
    assert_eq!(hit16.num_cached_tokens, 15);
    // one token: nothing can be cached
    assert_eq!(kv.lookup_prefix(&prompt[..1]), PrefixHit::default());
    // longer prompt: both full pages shared
    let hit33 = kv.lookup_prefix(&tokens(0..33));
    assert_eq!(hit33.shared_blocks, ids(&[1, 2]));
    assert_eq!(hit33.num_cached_tokens, 32);
}

#[test]
fn copy_source_is_pinned_until_released() {
    let mut kv = KvCacheManager::new(11).unwrap();
    let prompt = tokens(0..20);
    admit_and_compute(&mut kv, A, &prompt);
    kv.free(A).unwrap(); // pages 1, 2 cached and free: LRU [2, 1]
    assert_eq!(kv.pool().lru_eviction_order(), ids(&[2, 1]));

    let hit = kv.lookup_prefix(&prompt);
    let alloc = kv.allocate_new(B, &hit, 1).unwrap().unwrap();
    assert_eq!(alloc.copies[0].src, BlockId(2));
    // source pinned: refcount 1 with no table holding it, out of the free queues
    assert_eq!(kv.pool().ref_count(BlockId(2)), 1);
    assert_eq!(kv.pool().lru_eviction_order(), ids(&[]));
    kv.release_copy_sources().unwrap();
    assert_eq!(kv.pool().ref_count(BlockId(2)), 0);
    assert_eq!(kv.pool().lru_eviction_order(), ids(&[2]));
}

#[test]
fn copy_on_write_of_a_shared_partial_tail_page() {
    let mut kv = KvCacheManager::new(11).unwrap();
    let prompt = tokens(0..20); // page 1 full, page 2 holds 4 tokens
    admit_and_compute(&mut kv, A, &prompt);
    assert_eq!(kv.block_table(A).unwrap(), ids(&[1, 2]));
    let tail = kv.prefix_cache().entry(BlockId(2)).unwrap();
    assert_eq!(tail.token_ids, tokens(16..20));
    assert_eq!(tail.hash, None);

    // second choice of the same prompt: fresh page 3 gets tokens 16..19 copied from page 2
    let hit = kv.lookup_prefix(&prompt);
    assert_eq!(hit.shared_blocks, ids(&[1]));
    assert_eq!(hit.num_cached_tokens, 19);
    let alloc = kv.allocate_new(B, &hit, 1).unwrap().unwrap();
    assert_eq!(
        alloc.copies,
        [BlockCopy {
            src: BlockId(2),
            dst: BlockId(3),
            num_tokens: 3
        }]
    );
    assert_eq!(kv.block_table(B).unwrap(), ids(&[1, 3]));
    assert_eq!(kv.pool().ref_count(BlockId(1)), 2);
    assert_eq!(kv.pool().ref_count(BlockId(2)), 2); // A + pin
    assert_eq!(kv.pool().ref_count(BlockId(3)), 1);
}

#[test]
fn follow_up_turn_copies_a_finished_requests_tail() {
    let mut kv = KvCacheManager::new(11).unwrap();
    let mut seq_a = tokens(0..20);
    admit_and_compute(&mut kv, A, &seq_a);
    // A decodes 500 (computed) then samples 501 (never computed) and finishes
    seq_a.push(500);
    kv.cache_blocks(A, &seq_a, 21).unwrap();
    assert_eq!(
        kv.prefix_cache().entry(BlockId(2)).unwrap().token_ids,
        [16, 17, 18, 19, 500]
    );
    seq_a.push(501);
    kv.free(A).unwrap();

    let mut prompt_c = seq_a.clone();
    prompt_c.extend([502, 503]); // 24 tokens
    let hit = kv.lookup_prefix(&prompt_c);
    assert_eq!(hit.shared_blocks, ids(&[1]));
    // page 2 of C: [16..20, 500, 501, 502, (503 is last)] shares 5 tokens with the cached tail
    assert_eq!(
        hit.tail_copy,
        Some(TailCopy {
            src: BlockId(2),
            num_tokens: 5
        })
    );
    let alloc = kv.allocate_new(C, &hit, 24 - 21).unwrap().unwrap();
    assert_eq!(alloc.new_blocks, ids(&[3]));
    assert_eq!(alloc.copies[0].num_tokens, 5);
}

#[test]
fn tail_page_becoming_full_is_promoted_to_a_full_page() {
    let mut kv = KvCacheManager::new(11).unwrap();
    let seq = tokens(0..20);
    admit_and_compute(&mut kv, A, &seq);
    kv.allocate(A, 32).unwrap().unwrap();
    let seq = tokens(0..32);
    kv.cache_blocks(A, &seq, 32).unwrap();
    let page = kv.prefix_cache().entry(BlockId(2)).unwrap();
    assert!(page.hash.is_some());
    assert_eq!(page.token_ids, tokens(16..32));
    assert_eq!(kv.prefix_cache().num_cached_pages(), 2);
    assert_eq!(kv.lookup_prefix(&tokens(0..40)).shared_blocks, ids(&[1, 2]));
}

#[test]
fn cached_free_pages_are_reused_last_in_lru_order_and_eviction_drops_the_hash() {
    let mut kv = KvCacheManager::new(6).unwrap(); // usable 1..=5
    let prompt = tokens(0..48);
    admit_and_compute(&mut kv, A, &prompt);
    assert_eq!(kv.block_table(A).unwrap(), ids(&[1, 2, 3]));
    kv.free(A).unwrap();
    // freed tail first: page 3 is least recently used
    assert_eq!(kv.pool().lru_eviction_order(), ids(&[3, 2, 1]));
    assert_eq!(kv.pool().num_free_cached_blocks(), 3);

    // an unrelated request takes the uncached pages 4, 5 first, then evicts 3
    let alloc = kv.allocate(B, 48).unwrap().unwrap();
    assert_eq!(alloc.new_blocks, ids(&[4, 5, 3]));
    assert_eq!(kv.prefix_cache().entry(BlockId(3)), None);
    assert_eq!(kv.pool().lru_eviction_order(), ids(&[2, 1]));
    let hit = kv.lookup_prefix(&prompt);
    assert_eq!(hit.shared_blocks, ids(&[1, 2]));
    assert_eq!(hit.tail_copy, None);
    assert_eq!(hit.num_cached_tokens, 32);

    // 2 revived + 1 fresh page needed, only 2 free: does not fit
    assert_eq!(kv.allocate_new(C, &hit, 16).unwrap(), None);
    // B's uncomputed pages return to the uncached queue (tail first: 3, 5, 4)
    kv.free(B).unwrap();
    assert_eq!(kv.pool().lru_eviction_order(), ids(&[2, 1]));
    // a hit revives pages 1, 2 (out of the LRU queue); the fresh page is uncached 3
    let alloc = kv.allocate_new(C, &hit, 16).unwrap().unwrap();
    assert_eq!(alloc.new_blocks, ids(&[3]));
    assert_eq!(kv.block_table(C).unwrap(), ids(&[1, 2, 3]));
    assert_eq!(kv.pool().lru_eviction_order(), ids(&[]));
    assert_eq!(
        kv.allocate(A, 32).unwrap().unwrap().new_blocks,
        ids(&[5, 4])
    );
}

#[test]
fn revived_pages_count_against_free_space() {
    let mut kv = KvCacheManager::new(4).unwrap(); // usable 1..=3
    let prompt = tokens(0..32);
    admit_and_compute(&mut kv, A, &prompt);
    kv.free(A).unwrap(); // 1, 2 cached free; 3 uncached free
    let hit = kv.lookup_prefix(&tokens(0..33));
    assert_eq!(hit.shared_blocks, ids(&[1, 2]));
    // needs pages 1, 2 (revived) + 2 fresh = 4 > 3 free
    assert_eq!(kv.allocate_new(B, &hit, 17).unwrap(), None);
    assert_eq!(kv.pool().lru_eviction_order(), ids(&[2, 1]));
    // 1 fresh fits: 1, 2 revived + page 3
    let alloc = kv.allocate_new(B, &hit, 1).unwrap().unwrap();
    assert_eq!(alloc.new_blocks, ids(&[3]));
    assert_eq!(kv.block_table(B).unwrap(), ids(&[1, 2, 3]));
}

#[test]
fn duplicate_full_page_is_not_cached_twice() {
    let mut kv = KvCacheManager::new(11).unwrap();
    let prompt = tokens(0..17);
    // both admitted before either computed: no hits, same content in pages 1 and 3
    let hit_a = kv.lookup_prefix(&prompt);
    kv.allocate_new(A, &hit_a, 17).unwrap().unwrap();
    let hit_b = kv.lookup_prefix(&prompt);
    kv.allocate_new(B, &hit_b, 17).unwrap().unwrap();
    assert_eq!(kv.block_table(B).unwrap(), ids(&[3, 4]));
    kv.cache_blocks(A, &prompt, 17).unwrap();
    kv.cache_blocks(B, &prompt, 17).unwrap();
    assert!(kv.prefix_cache().entry(BlockId(1)).unwrap().hash.is_some());
    assert_eq!(kv.prefix_cache().entry(BlockId(3)), None);
    assert!(!kv.pool().is_cached(BlockId(3)));
    assert_eq!(kv.prefix_cache().num_full_pages(), 1);
    // B's page 3 goes back to the uncached queue; its partial tail page 4 is cached
    kv.free(B).unwrap();
    assert_eq!(kv.pool().lru_eviction_order(), ids(&[4]));
    assert_eq!(kv.lookup_prefix(&tokens(0..20)).shared_blocks, ids(&[1]));
}
