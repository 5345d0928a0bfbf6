//! Randomised end-to-end check of the scheduler against a shadow KV store.
//!
//! A fake runner keeps, for every page slot, a fingerprint of the token prefix whose KV it holds
//! (`hash(tokens[0..=p])` at position `p`). Each step it applies the planned block copies
//! (exactly `num_tokens` slots), checks that every scheduled request's context `0..start` is
//! present in its block table with the right fingerprints (so prefix sharing, copy-on-write,
//! eviction and preemption never hand a request wrong or missing KV), then writes the new rows.
//! It also checks pool invariants: refcount == tables holding the block + pending copy pins, a
//! block is free iff its refcount is 0, writes only go to pages no other live request holds.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use arle_sched::{
    BlockId, ModelOutput, Request, RequestId, Scheduler, SchedulerConfig, SchedulerOutput,
    BLOCK_TOKENS,
};

/// Small deterministic PRNG (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn prefix_fingerprint(tokens: &[u32]) -> u64 {
    tokens.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &t| {
        (h ^ u64::from(t)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

struct ShadowKv {
    slots: Vec<[Option<u64>; BLOCK_TOKENS]>,
}

impl ShadowKv {
    fn run_step(&mut self, s: &Scheduler, out: &SchedulerOutput, live: &[RequestId]) {
        for copy in &out.block_copies {
            let src = self.slots[copy.src.0 as usize];
            let dst = &mut self.slots[copy.dst.0 as usize];
            dst[..copy.num_tokens].copy_from_slice(&src[..copy.num_tokens]);
        }
        for r in &out.scheduled {
            let all = s.request_token_ids(r.id).unwrap();
            let end = r.start_position + r.token_ids.len();
            assert_eq!(&all[r.start_position..end], r.token_ids.as_slice());
            assert!(r.block_table.len() * BLOCK_TOKENS >= end, "table too short");
            for p in 0..r.start_position {
                let block = r.block_table[p / BLOCK_TOKENS];
                assert_eq!(
                    self.slots[block.0 as usize][p % BLOCK_TOKENS],
                    Some(prefix_fingerprint(&all[..=p])),
                    "request {:?} position {p} block {block:?} step {}",
                    r.id,
                    out.step
                );
            }
            for p in r.start_position..end {
                let block = r.block_table[p / BLOCK_TOKENS];
                for &other in live.iter().filter(|&&o| o != r.id) {
                    let table = s.request_block_table(other).unwrap_or(&[]);
                    assert!(!table.contains(&block), "write into shared page {block:?}");
                }
                self.slots[block.0 as usize][p % BLOCK_TOKENS] =
                    Some(prefix_fingerprint(&all[..=p]));
            }
        }
    }
}

fn check_pool(s: &Scheduler, live: &[RequestId], out: &SchedulerOutput) {
    let pool = s.kv_cache().pool();
    let mut holders: HashMap<BlockId, u32> = HashMap::new();
    for &id in live {
        for &b in s.request_block_table(id).unwrap_or(&[]) {
            *holders.entry(b).or_default() += 1;
        }
    }
    for copy in &out.block_copies {
        *holders.entry(copy.src).or_default() += 1;
    }
    let mut num_free = 0;
    for b in 1..pool.num_blocks() as u32 {
        let block = BlockId(b);
        let expected = holders.get(&block).copied().unwrap_or(0);
        assert_eq!(pool.ref_count(block), expected, "refcount of {block:?}");
        num_free += usize::from(expected == 0);
    }
    assert_eq!(pool.num_free_blocks(), num_free);
    for b in pool.lru_eviction_order() {
        assert!(s.kv_cache().prefix_cache().entry(b).is_some());
        assert_eq!(pool.ref_count(b), 0);
    }
}

fn run_simulation(seed: u64) -> (u64, u64) {
    let mut rng = Rng(seed);
    let config = SchedulerConfig {
        num_blocks: 13,
        max_num_batched_tokens: 48,
        max_num_seqs: 5,
        max_model_len: 96,
    };
    let mut s = Scheduler::new(config).unwrap();
    let mut shadow = ShadowKv {
        slots: vec![[None; BLOCK_TOKENS]; config.num_blocks],
    };
    let templates: Vec<Vec<u32>> = (0..3)
        .map(|_| (0..60).map(|_| rng.below(50) as u32).collect())
        .collect();
    let mut live: Vec<RequestId> = Vec::new();
    let mut next_id = 0u64;
    for _ in 0..400 {
        if rng.below(3) == 0 && live.len() < 8 {
            let template = &templates[rng.below(templates.len())];
            let mut prompt = template[..1 + rng.below(template.len())].to_vec();
            prompt.extend((0..rng.below(6)).map(|_| rng.below(50) as u32));
            prompt.truncate(config.max_model_len);
            let mut request = Request::new(RequestId(next_id), prompt, 1 + rng.below(20));
            request.needs_prompt_logits = rng.below(10) == 0;
            s.add_request(request).unwrap();
            live.push(RequestId(next_id));
            next_id += 1;
        }
        if rng.below(20) == 0 && !live.is_empty() {
            let id = live.swap_remove(rng.below(live.len()));
            assert!(s.abort_request(id).unwrap());
        }
        let out = s.schedule().unwrap();
        assert!(out.num_batched_tokens <= config.max_num_batched_tokens);
        assert!(s.num_running() <= config.max_num_seqs);
        check_pool(&s, &live, &out);
        shadow.run_step(&s, &out, &live);
        let sampled = out
            .scheduled
            .iter()
            .filter(|r| r.samples_next_token)
            .map(|r| (r.id, rng.below(50) as u32))
            .collect();
        for update in s.update(&out, &ModelOutput { sampled }).unwrap() {
            if update.finish_reason.is_some() {
                live.retain(|&id| id != update.id);
            }
        }
    }
    let stats = s.stats();
    (stats.prefix_hit_tokens_total, stats.preemptions_total)
}

#[test]
fn random_workloads_keep_kv_contents_and_refcounts_consistent() {
    let mut total_hits = 0;
    let mut total_preemptions = 0;
    for seed in 0..20 {
        let (hits, preemptions) = run_simulation(seed);
        total_hits += hits;
        total_preemptions += preemptions;
    }
    // the workload must actually exercise sharing and preemption
    assert!(total_hits > 0, "no prefix hits");
    assert!(total_preemptions > 0, "no preemptions");
}
