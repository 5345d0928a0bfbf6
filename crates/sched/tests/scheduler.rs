//! Exact-id tests of the scheduler policy: chunked prefill, budgets, decode-first, preemption,
//! abort, finish, prefix hits through admission.

#![allow(clippy::unwrap_used)]

use arle_sched::{
    BlockCopy, BlockId, FinishReason, ModelOutput, Request, RequestId, RequestStatus,
    RequestUpdate, SchedError, Scheduler, SchedulerConfig, SchedulerOutput,
};

const A: RequestId = RequestId(1);
const B: RequestId = RequestId(2);
const C: RequestId = RequestId(3);

fn ids(raw: &[u32]) -> Vec<BlockId> {
    raw.iter().map(|&b| BlockId(b)).collect()
}

fn tokens(range: std::ops::Range<u32>) -> Vec<u32> {
    range.collect()
}

fn scheduler(num_blocks: usize, max_num_batched_tokens: usize, max_num_seqs: usize) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        num_blocks,
        max_num_batched_tokens,
        max_num_seqs,
        max_model_len: 16 * (num_blocks - 1),
    })
    .unwrap()
}

/// Deterministic fake sample: request 1 at step 3 samples 1503.
fn fake_token(id: RequestId, step: u64) -> u32 {
    id.0 as u32 * 1000 + 500 + step as u32
}

/// schedule -> fake runner (one sample per `samples_next_token`) -> update.
fn step(s: &mut Scheduler) -> (SchedulerOutput, Vec<RequestUpdate>) {
    let out = s.schedule().unwrap();
    let sampled = out
        .scheduled
        .iter()
        .filter(|r| r.samples_next_token)
        .map(|r| (r.id, fake_token(r.id, out.step)))
        .collect();
    let updates = s.update(&out, &ModelOutput { sampled }).unwrap();
    (out, updates)
}

fn scheduled_ids(out: &SchedulerOutput) -> Vec<RequestId> {
    out.scheduled.iter().map(|r| r.id).collect()
}

#[test]
fn chunked_prefill_splits_by_the_token_budget() {
    let mut s = scheduler(11, 16, 4);
    s.add_request(Request::new(A, tokens(0..40), 5)).unwrap();

    let (out, updates) = step(&mut s);
    assert_eq!(out.num_batched_tokens, 16);
    let r = &out.scheduled[0];
    assert_eq!((r.start_position, r.token_ids.clone()), (0, tokens(0..16)));
    assert_eq!(r.block_table, ids(&[1]));
    assert!(!r.samples_next_token);
    assert!(updates.is_empty());

    let (out, _) = step(&mut s);
    let r = &out.scheduled[0];
    assert_eq!(
        (r.start_position, r.token_ids.clone()),
        (16, tokens(16..32))
    );
    assert_eq!(r.block_table, ids(&[1, 2]));
    assert!(!r.samples_next_token);

    let (out, updates) = step(&mut s);
    let r = &out.scheduled[0];
    assert_eq!(
        (r.start_position, r.token_ids.clone()),
        (32, tokens(32..40))
    );
    assert_eq!(r.block_table, ids(&[1, 2, 3]));
    assert!(r.samples_next_token);
    assert_eq!(out.num_batched_tokens, 8);
    assert_eq!(
        updates,
        [RequestUpdate {
            id: A,
            token_id: Some(fake_token(A, 2)),
            finish_reason: None
        }]
    );

    let (out, _) = step(&mut s);
    let r = &out.scheduled[0];
    assert_eq!(
        (r.start_position, r.token_ids.clone()),
        (40, vec![fake_token(A, 2)])
    );
    assert!(r.samples_next_token);
}

#[test]
fn decode_requests_are_scheduled_before_new_prefills() {
    let mut s = scheduler(11, 20, 4);
    s.add_request(Request::new(A, tokens(0..10), 10)).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(out.scheduled[0].token_ids.len(), 10);

    s.add_request(Request::new(B, tokens(100..130), 10))
        .unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(scheduled_ids(&out), [A, B]);
    assert_eq!(out.scheduled[0].token_ids, [fake_token(A, 0)]);
    assert_eq!(out.scheduled[0].start_position, 10);
    // B gets what is left of the budget: 19 tokens, a chunk
    assert_eq!(out.scheduled[1].token_ids, tokens(100..119));
    assert!(!out.scheduled[1].samples_next_token);
    assert_eq!(out.scheduled[1].block_table, ids(&[2, 3]));
    assert_eq!(out.num_batched_tokens, 20);

    let (out, _) = step(&mut s);
    assert_eq!(scheduled_ids(&out), [A, B]);
    assert_eq!(out.scheduled[1].token_ids, tokens(119..130));
    assert!(out.scheduled[1].samples_next_token);
}

#[test]
fn max_num_seqs_is_respected_and_fcfs_admission_resumes() {
    let mut s = scheduler(11, 100, 2);
    for (id, start) in [(A, 0), (B, 100), (C, 200)] {
        s.add_request(Request::new(id, tokens(start..start + 5), 10))
            .unwrap();
    }
    let (out, _) = step(&mut s);
    assert_eq!(scheduled_ids(&out), [A, B]);
    assert_eq!((s.num_running(), s.num_waiting()), (2, 1));
    assert_eq!(s.request_status(C), Some(RequestStatus::Waiting));

    let (out, _) = step(&mut s);
    assert_eq!(scheduled_ids(&out), [A, B]);

    s.finish_request(A, FinishReason::Stop).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(out.finished, [A]);
    assert_eq!(scheduled_ids(&out), [B, C]);
    // A's page 1 was freed: C's pages come from the free queue (3 untouched before 1)
    assert_eq!(out.scheduled[1].block_table, ids(&[3]));
}

#[test]
fn newest_running_request_is_preempted_when_pages_run_out_and_recomputes_later() {
    // 4 usable pages; A and B each fill 2 pages with 30 prompt tokens
    let mut s = Scheduler::new(SchedulerConfig {
        num_blocks: 5,
        max_num_batched_tokens: 64,
        max_num_seqs: 4,
        max_model_len: 64,
    })
    .unwrap();
    s.add_request(Request::new(A, tokens(0..30), 10)).unwrap();
    s.add_request(Request::new(B, tokens(1000..1030), 10))
        .unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(out.scheduled[0].block_table, ids(&[1, 2]));
    assert_eq!(out.scheduled[1].block_table, ids(&[3, 4]));
    step(&mut s); // positions 30
    step(&mut s); // positions 31: pages full, all 4 cached
    assert_eq!(s.stats().num_cached_blocks, 4);
    assert_eq!(s.stats().num_free_blocks, 0);

    // A needs a page for position 32: B (newest) is preempted, its pages freed tail first
    // (LRU 4, 3) and A evicts 4
    let (out, _) = step(&mut s);
    assert_eq!(out.preempted, [B]);
    assert_eq!(scheduled_ids(&out), [A]);
    assert_eq!(out.scheduled[0].block_table, ids(&[1, 2, 4]));
    assert_eq!(out.scheduled[0].start_position, 32);
    assert_eq!(s.request_status(B), Some(RequestStatus::Preempted));
    assert_eq!(s.request_num_computed_tokens(B), Some(0));
    assert_eq!(s.request_block_table(B), None);
    assert_eq!(s.kv_cache().pool().lru_eviction_order(), ids(&[3]));
    let b_tokens = s.request_token_ids(B).unwrap().to_vec();
    assert_eq!(b_tokens.len(), 33); // prompt 30 + 3 outputs kept
    assert_eq!(s.stats().preemptions_total, 1);

    // A finishes; B is readmitted and hits its still-cached first page (block 3)
    s.finish_request(A, FinishReason::Stop).unwrap();
    assert_eq!(s.kv_cache().pool().lru_eviction_order(), ids(&[3, 4, 2, 1]));
    let (out, updates) = step(&mut s);
    assert_eq!(out.finished, [A]);
    assert_eq!(scheduled_ids(&out), [B]);
    let r = &out.scheduled[0];
    assert_eq!(r.num_cached_tokens, 16);
    assert_eq!(r.start_position, 16);
    assert_eq!(r.token_ids, b_tokens[16..33]); // includes the 3 earlier outputs
    assert_eq!(r.block_table, ids(&[3, 4, 2])); // 3 revived; 4, 2 evicted in LRU order
    assert!(r.samples_next_token);
    assert_eq!(updates[0].token_id, Some(fake_token(B, out.step)));
    assert_eq!(s.stats().prefix_hit_tokens_total, 16);
}

#[test]
fn abort_of_waiting_and_running_requests_frees_everything() {
    let mut s = scheduler(11, 100, 1);
    s.add_request(Request::new(A, tokens(0..20), 10)).unwrap();
    s.add_request(Request::new(B, tokens(0..20), 10)).unwrap();
    step(&mut s);
    assert_eq!((s.num_running(), s.num_waiting()), (1, 1));
    assert_eq!(s.stats().num_used_blocks, 2);

    assert!(s.abort_request(B).unwrap());
    assert_eq!(s.num_waiting(), 0);
    assert!(s.abort_request(A).unwrap());
    assert!(!s.abort_request(A).unwrap());
    assert_eq!(s.request_block_table(A), None);
    let stats = s.stats();
    assert_eq!((stats.num_running, stats.num_waiting), (0, 0));
    assert_eq!((stats.num_used_blocks, stats.num_free_blocks), (0, 10));
    assert_eq!(stats.num_cached_blocks, 2); // A's computed pages stay cached
    assert!(!s.has_unfinished_requests());

    let out = s.schedule().unwrap();
    assert_eq!(out.finished, [B, A]);
    assert!(out.is_empty());
    assert_eq!(
        s.finish_request(A, FinishReason::Stop),
        Err(SchedError::UnknownRequest(A))
    );
}

#[test]
fn sample_for_a_request_aborted_after_schedule_is_ignored() {
    let mut s = scheduler(11, 100, 4);
    s.add_request(Request::new(A, tokens(0..5), 10)).unwrap();
    let out = s.schedule().unwrap();
    s.abort_request(A).unwrap();
    let updates = s
        .update(
            &out,
            &ModelOutput {
                sampled: vec![(A, 7)],
            },
        )
        .unwrap();
    assert!(updates.is_empty());
    assert_eq!(s.stats().num_used_blocks, 0);
}

#[test]
fn second_choice_of_a_prompt_copies_the_partial_tail_page() {
    let mut s = scheduler(11, 100, 4);
    s.add_request(Request::new(A, tokens(0..20), 10)).unwrap();
    step(&mut s);
    s.add_request(Request::new(B, tokens(0..20), 10)).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(scheduled_ids(&out), [A, B]);
    assert_eq!(
        out.block_copies,
        [BlockCopy {
            src: BlockId(2),
            dst: BlockId(3),
            num_tokens: 3
        }]
    );
    let b = &out.scheduled[1];
    assert_eq!(b.block_table, ids(&[1, 3]));
    assert_eq!((b.start_position, b.token_ids.clone()), (19, vec![19]));
    assert_eq!(b.num_cached_tokens, 19);
    assert!(b.samples_next_token);
    assert_eq!(s.stats().prefix_hit_tokens_total, 19);
    // the copy source stays pinned for exactly one step
    assert_eq!(s.kv_cache().pool().ref_count(BlockId(2)), 2);
    step(&mut s);
    assert_eq!(s.kv_cache().pool().ref_count(BlockId(2)), 1);
}

#[test]
fn requests_admitted_in_the_same_step_do_not_share_pages() {
    let mut s = scheduler(11, 100, 4);
    s.add_request(Request::new(A, tokens(0..20), 10)).unwrap();
    s.add_request(Request::new(B, tokens(0..20), 10)).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(out.scheduled[0].block_table, ids(&[1, 2]));
    assert_eq!(out.scheduled[1].block_table, ids(&[3, 4]));
    assert_eq!(out.scheduled[1].num_cached_tokens, 0);
}

#[test]
fn prompt_logits_requests_get_no_prefix_hits() {
    let mut s = scheduler(11, 100, 4);
    s.add_request(Request::new(A, tokens(0..40), 10)).unwrap();
    step(&mut s);
    let mut echo = Request::new(B, tokens(0..40), 10);
    echo.needs_prompt_logits = true;
    s.add_request(echo).unwrap();
    s.add_request(Request::new(C, tokens(0..40), 10)).unwrap();
    let (out, _) = step(&mut s);
    assert_eq!(scheduled_ids(&out), [A, B, C]);
    let b = &out.scheduled[1];
    assert_eq!((b.num_cached_tokens, b.start_position), (0, 0));
    assert_eq!(b.token_ids, tokens(0..40));
    assert!(b.needs_prompt_logits);
    assert_eq!(b.block_table, ids(&[4, 5, 6]));
    let c = &out.scheduled[2];
    assert_eq!(c.num_cached_tokens, 39);
    assert!(!c.needs_prompt_logits);
    assert_eq!(c.block_table, ids(&[1, 2, 7]));
    // A and C were looked up (40 tokens each), B was not
    let stats = s.stats();
    assert_eq!(stats.prefix_query_tokens_total, 80);
    assert_eq!(stats.prefix_hit_tokens_total, 39);
    // after the prompt, decode steps no longer ask for prompt logits
    let (out, _) = step(&mut s);
    assert!(!out.scheduled[1].needs_prompt_logits);
}

#[test]
fn max_tokens_zero_runs_the_prompt_and_finishes_without_a_token() {
    let mut s = scheduler(11, 100, 4);
    let mut echo = Request::new(A, tokens(0..5), 0);
    echo.needs_prompt_logits = true;
    s.add_request(echo).unwrap();
    let out = s.schedule().unwrap();
    assert!(out.scheduled[0].samples_next_token);
    let updates = s.update(&out, &ModelOutput::default()).unwrap();
    assert_eq!(
        updates,
        [RequestUpdate {
            id: A,
            token_id: None,
            finish_reason: Some(FinishReason::Length)
        }]
    );
    assert!(!s.has_unfinished_requests());
}

#[test]
fn stop_token_max_tokens_and_max_model_len_finish_requests() {
    let mut s = Scheduler::new(SchedulerConfig {
        num_blocks: 11,
        max_num_batched_tokens: 100,
        max_num_seqs: 4,
        max_model_len: 20,
    })
    .unwrap();
    let mut stop = Request::new(A, tokens(0..5), 10);
    stop.stop_token_ids = vec![fake_token(A, 0)];
    s.add_request(stop).unwrap();
    s.add_request(Request::new(B, tokens(100..105), 2)).unwrap();
    s.add_request(Request::new(C, tokens(200..218), 100))
        .unwrap();

    let (_, updates) = step(&mut s);
    let finishes: Vec<_> = updates.iter().map(|u| (u.id, u.finish_reason)).collect();
    assert_eq!(
        finishes,
        [(A, Some(FinishReason::Stop)), (B, None), (C, None)]
    );
    let (out, updates) = step(&mut s);
    assert_eq!(out.finished, [A]);
    let finishes: Vec<_> = updates.iter().map(|u| (u.id, u.finish_reason)).collect();
    // B: 2 outputs = max_tokens; C: 18 + 2 = 20 = max_model_len
    assert_eq!(
        finishes,
        [
            (B, Some(FinishReason::Length)),
            (C, Some(FinishReason::Length))
        ]
    );
    assert_eq!(s.stats().num_used_blocks, 0);
}

#[test]
fn add_request_rejects_bad_requests() {
    let mut s = scheduler(3, 100, 4); // max_model_len 32
    assert_eq!(
        s.add_request(Request::new(A, vec![], 1)),
        Err(SchedError::EmptyPrompt(A))
    );
    assert_eq!(
        s.add_request(Request::new(A, tokens(0..33), 1)),
        Err(SchedError::PromptTooLong {
            id: A,
            prompt_tokens: 33,
            max_model_len: 32
        })
    );
    s.add_request(Request::new(A, tokens(0..3), 1)).unwrap();
    assert_eq!(
        s.add_request(Request::new(A, tokens(0..3), 1)),
        Err(SchedError::DuplicateRequest(A))
    );
    assert!(matches!(
        Scheduler::new(SchedulerConfig {
            num_blocks: 3,
            max_num_batched_tokens: 10,
            max_num_seqs: 1,
            max_model_len: 33,
        }),
        Err(SchedError::InvalidConfig(_))
    ));
}

#[test]
fn missing_sample_is_an_error_and_changes_nothing() {
    let mut s = scheduler(11, 100, 4);
    s.add_request(Request::new(A, tokens(0..5), 10)).unwrap();
    let out = s.schedule().unwrap();
    assert_eq!(
        s.update(&out, &ModelOutput::default()),
        Err(SchedError::MissingSample(A))
    );
    assert_eq!(s.kv_cache().prefix_cache().num_cached_pages(), 0);
    assert_eq!(s.request_token_ids(A).unwrap().len(), 5);
}

#[test]
fn request_needing_every_page_drops_the_tail_copy_instead_of_waiting_forever() {
    // 4 usable pages, max_model_len 64: a 64-token prompt needs all of them
    let mut s = Scheduler::new(SchedulerConfig {
        num_blocks: 5,
        max_num_batched_tokens: 64,
        max_num_seqs: 4,
        max_model_len: 64,
    })
    .unwrap();
    s.add_request(Request::new(A, tokens(0..64), 1)).unwrap();
    let (_, updates) = step(&mut s);
    assert_eq!(updates[0].finish_reason, Some(FinishReason::Length));
    assert_eq!(s.kv_cache().pool().lru_eviction_order(), ids(&[4, 3, 2, 1]));

    // shared 1, 2, 3 + copy of page 4 (15 tokens) into a fresh page would need 5 pages
    s.add_request(Request::new(B, tokens(0..64), 1)).unwrap();
    let (out, _) = step(&mut s);
    assert!(out.block_copies.is_empty());
    let b = &out.scheduled[0];
    assert_eq!(b.num_cached_tokens, 48);
    assert_eq!(
        (b.start_position, b.token_ids.clone()),
        (48, tokens(48..64))
    );
    assert_eq!(b.block_table, ids(&[1, 2, 3, 4])); // 4 evicted and reused fresh
}
