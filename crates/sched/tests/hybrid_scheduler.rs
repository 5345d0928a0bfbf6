//! Exact-id tests of the scheduler rules for hybrid models: state slots (admission blocked by
//! slots, freed on finish / abort / preemption), snapshot positions per step, snapshot
//! registration and resume at admission, snapshot evictions reported to the engine, and the
//! prefix-caching switch.

#![allow(clippy::unwrap_used)]

use arle_sched::{
    BlockId, CacheConfig, ModelOutput, Request, RequestId, RequestStatus, Scheduler,
    SchedulerConfig, SchedulerOutput, SnapshotCacheConfig, SnapshotId, StateSlotId,
};

const A: RequestId = RequestId(1);
const B: RequestId = RequestId(2);
const C: RequestId = RequestId(3);

fn tokens(range: std::ops::Range<u32>) -> Vec<u32> {
    range.collect()
}

fn hybrid_config(num_state_slots: usize, max_snapshots: usize) -> CacheConfig {
    CacheConfig {
        enable_prefix_caching: true,
        num_state_slots,
        snapshot_interval_tokens: 64,
        snapshot_prompt_end_page: false,
        snapshots: SnapshotCacheConfig {
            max_snapshots,
            max_bytes: 1 << 20,
        },
    }
}

fn scheduler(
    num_blocks: usize,
    max_num_batched_tokens: usize,
    max_num_seqs: usize,
    cache: CacheConfig,
) -> Scheduler {
    Scheduler::with_cache_config(
        SchedulerConfig {
            num_blocks,
            max_num_batched_tokens,
            max_num_seqs,
            max_model_len: 16 * (num_blocks - 1),
        },
        cache,
    )
    .unwrap()
}

/// schedule -> fake runner (registers a snapshot at every asked position, samples token 5)
/// -> update. Returns the output and the snapshot ids the scheduler kept.
fn step(s: &mut Scheduler) -> (SchedulerOutput, Vec<Option<SnapshotId>>) {
    let out = s.schedule().unwrap();
    let mut kept = Vec::new();
    for r in &out.scheduled {
        for &p in &r.snapshot_positions {
            kept.push(s.register_snapshot(r.id, p, 100).unwrap());
        }
    }
    let sampled = out
        .scheduled
        .iter()
        .filter(|r| r.samples_next_token)
        .map(|r| (r.id, 5))
        .collect();
    s.update(&out, &ModelOutput { sampled }).unwrap();
    (out, kept)
}

fn slots(out: &SchedulerOutput) -> Vec<Option<StateSlotId>> {
    out.scheduled.iter().map(|r| r.state_slot).collect()
}

#[test]
fn admission_needs_a_free_state_slot_and_abort_frees_it() {
    let mut s = scheduler(20, 256, 4, hybrid_config(2, 8));
    for id in [A, B, C] {
        s.add_request(Request::new(id, tokens(0..10), 5)).unwrap();
    }
    let (out, _) = step(&mut s);
    let admitted: Vec<RequestId> = out.scheduled.iter().map(|r| r.id).collect();
    assert_eq!(
        admitted,
        vec![A, B],
        "C has seats and pages but no state slot"
    );
    assert_eq!(
        slots(&out),
        vec![Some(StateSlotId(0)), Some(StateSlotId(1))]
    );
    assert_eq!(s.request_status(C), Some(RequestStatus::Waiting));
    assert_eq!(
        (
            s.stats().num_used_state_slots,
            s.stats().num_free_state_slots
        ),
        (2, 0)
    );
    assert!(s.abort_request(A).unwrap());
    assert_eq!(s.stats().num_free_state_slots, 1);
    let (out, _) = step(&mut s);
    let c = out.scheduled.iter().find(|r| r.id == C).unwrap();
    assert_eq!(c.state_slot, Some(StateSlotId(0)), "C takes A's slot");
    assert_eq!(c.start_position, 0);
    assert_eq!(c.restore_snapshot, None);
    assert_eq!(s.request_state_slot(B), Some(StateSlotId(1)));
}

#[test]
fn finishing_frees_the_state_slot() {
    let mut s = scheduler(20, 256, 4, hybrid_config(1, 8));
    s.add_request(Request::new(A, tokens(0..10), 1)).unwrap();
    s.add_request(Request::new(B, tokens(20..30), 1)).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(slots(&out), vec![Some(StateSlotId(0))]);
    assert_eq!(s.request_status(A), None, "finished after one token");
    assert_eq!(s.stats().num_used_state_slots, 0);
    let (out, _) = step(&mut s);
    assert_eq!(out.scheduled[0].id, B);
    assert_eq!(out.scheduled[0].state_slot, Some(StateSlotId(0)));
}

#[test]
fn preemption_frees_the_state_slot() {
    // 3 usable pages; A and B hold one page each, then both need a second.
    let mut s = scheduler(4, 64, 4, hybrid_config(2, 8));
    s.add_request(Request::new(A, tokens(0..16), 20)).unwrap();
    s.add_request(Request::new(B, tokens(100..116), 20))
        .unwrap();
    step(&mut s);
    assert_eq!(s.stats().num_used_state_slots, 2);
    let (out, _) = step(&mut s);
    assert_eq!(out.preempted, vec![B]);
    assert_eq!(slots(&out), vec![Some(StateSlotId(0))]);
    assert_eq!(s.request_state_slot(B), None);
    assert_eq!(s.request_status(B), Some(RequestStatus::Preempted));
    assert_eq!(
        (
            s.stats().num_used_state_slots,
            s.stats().num_free_state_slots
        ),
        (1, 1)
    );
}

#[test]
fn snapshot_positions_cover_interval_multiples_in_prefill_chunks_and_decode() {
    let mut s = scheduler(20, 100, 4, hybrid_config(1, 8));
    s.add_request(Request::new(A, tokens(0..190), 10)).unwrap();
    let positions: Vec<(usize, Vec<usize>)> = (0..4)
        .map(|_| {
            let (out, _) = step(&mut s);
            let r = &out.scheduled[0];
            (r.start_position, r.snapshot_positions.clone())
        })
        .collect();
    assert_eq!(
        positions,
        vec![
            (0, vec![64]),
            (100, vec![128]),
            (190, vec![]),
            (191, vec![192])
        ]
    );
    // With the prompt-end page: the last page boundary of the 190-token prompt is 176.
    let mut s = scheduler(
        20,
        100,
        4,
        CacheConfig {
            snapshot_prompt_end_page: true,
            ..hybrid_config(1, 8)
        },
    );
    s.add_request(Request::new(A, tokens(0..190), 10)).unwrap();
    step(&mut s);
    let (out, _) = step(&mut s);
    assert_eq!(out.scheduled[0].snapshot_positions, vec![128, 176]);
}

#[test]
fn a_prefix_hit_resumes_from_the_longest_snapshot_with_its_shared_pages() {
    let mut s = scheduler(40, 512, 4, hybrid_config(2, 8));
    s.add_request(Request::new(A, tokens(0..150), 1)).unwrap();
    let (out, kept) = step(&mut s);
    assert_eq!(out.scheduled[0].snapshot_positions, vec![64, 128]);
    assert_eq!(kept, vec![Some(SnapshotId(0)), Some(SnapshotId(1))]);
    let a_table = out.scheduled[0].block_table.clone();
    assert_eq!(s.stats().num_state_snapshots, 2);
    assert_eq!(s.stats().state_snapshot_bytes, 200);

    let mut b_prompt = tokens(0..150);
    b_prompt.extend([7, 8, 9]);
    s.add_request(Request::new(B, b_prompt, 1)).unwrap();
    s.add_request(Request::new(C, tokens(0..100), 1)).unwrap();
    let (out, kept) = step(&mut s);
    let b = &out.scheduled[0];
    assert_eq!(
        (
            b.id,
            b.start_position,
            b.num_cached_tokens,
            b.restore_snapshot
        ),
        (B, 128, 128, Some(SnapshotId(1)))
    );
    assert_eq!(b.block_table[..8], a_table[..8], "pages 0..128 shared");
    assert_eq!(
        b.token_ids,
        (128..150).chain([7, 8, 9]).collect::<Vec<u32>>()
    );
    assert!(b.snapshot_positions.is_empty());
    let c = &out.scheduled[1];
    assert_eq!(
        (c.id, c.start_position, c.restore_snapshot),
        (C, 64, Some(SnapshotId(0)))
    );
    assert_eq!(
        (c.state_slot, b.state_slot),
        (Some(StateSlotId(1)), Some(StateSlotId(0)))
    );
    assert!(kept.is_empty());
    assert_eq!(s.stats().prefix_hit_tokens_total, 128 + 64);
}

#[test]
fn snapshots_evicted_with_their_pages_are_reported_in_the_next_output() {
    // 6 usable pages. A (70 tokens) caches pages 1..=5 and a snapshot at 64 (page 4).
    let mut s = scheduler(7, 512, 4, hybrid_config(2, 8));
    s.add_request(Request::new(A, tokens(0..70), 1)).unwrap();
    let (_, kept) = step(&mut s);
    assert_eq!(kept, vec![Some(SnapshotId(0))]);
    // B needs all 6 pages: 6, then the LRU queue 5, 4 (evicting the snapshot), 3, 2, 1.
    s.add_request(Request::new(B, tokens(1000..1090), 1))
        .unwrap();
    let (out, kept) = step(&mut s);
    assert_eq!(
        out.scheduled[0].block_table,
        [6, 5, 4, 3, 2, 1].map(BlockId).to_vec()
    );
    assert_eq!(out.evicted_snapshots, vec![SnapshotId(0)]);
    assert_eq!(kept, vec![Some(SnapshotId(1))], "B's own snapshot at 64");
    assert_eq!(s.stats().num_state_snapshots, 1);
    let mut a_again = tokens(0..70);
    a_again.push(1);
    s.add_request(Request::new(C, a_again, 1)).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(out.scheduled[0].restore_snapshot, None);
}

#[test]
fn snapshot_cap_evictions_reach_the_engine_and_stop_hits() {
    let mut s = scheduler(40, 512, 4, hybrid_config(2, 1));
    s.add_request(Request::new(A, tokens(0..150), 1)).unwrap();
    let (_, kept) = step(&mut s);
    assert_eq!(kept, vec![Some(SnapshotId(0)), Some(SnapshotId(1))]);
    s.add_request(Request::new(B, tokens(0..100), 1)).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(out.evicted_snapshots, vec![SnapshotId(0)]);
    let b = &out.scheduled[0];
    assert_eq!((b.start_position, b.restore_snapshot), (0, None));
}

#[test]
fn prefix_caching_off_means_no_hits_and_no_snapshots() {
    let off = CacheConfig {
        enable_prefix_caching: false,
        ..hybrid_config(2, 8)
    };
    let mut s = scheduler(40, 512, 4, off);
    s.add_request(Request::new(A, tokens(0..150), 1)).unwrap();
    let (out, _) = step(&mut s);
    assert!(out.scheduled[0].snapshot_positions.is_empty());
    s.add_request(Request::new(B, tokens(0..150), 1)).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(out.scheduled[0].start_position, 0);
    // Attention-only: same switch.
    let attn_off = CacheConfig {
        enable_prefix_caching: false,
        ..CacheConfig::default()
    };
    let mut s = scheduler(40, 512, 4, attn_off);
    s.add_request(Request::new(A, tokens(0..50), 1)).unwrap();
    step(&mut s);
    s.add_request(Request::new(B, tokens(0..50), 1)).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(out.scheduled[0].start_position, 0);
    assert_eq!(s.stats().prefix_hit_tokens_total, 0);
}

#[test]
fn attention_only_requests_carry_no_slot_and_no_snapshot_positions() {
    let mut s = scheduler(40, 512, 4, CacheConfig::default());
    s.add_request(Request::new(A, tokens(0..150), 1)).unwrap();
    let (out, _) = step(&mut s);
    let a = &out.scheduled[0];
    assert_eq!((a.state_slot, a.restore_snapshot), (None, None));
    assert!(a.snapshot_positions.is_empty());
    s.add_request(Request::new(B, tokens(0..150), 1)).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(
        out.scheduled[0].num_cached_tokens, 149,
        "pages + tail copy as before"
    );
}
