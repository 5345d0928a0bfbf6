//! [`Scheduler`]: decides each step which tokens of which requests run.
//!
//! Policy (vLLM v1 style, one progress counter per request):
//! - Budget: at most `max_num_batched_tokens` tokens per step, at most `max_num_seqs` running.
//! - Running requests first, oldest first: each gets `min(remaining tokens, budget left)` tokens
//!   (1 for decode; a chunk for a prompt still being prefilled).
//! - When a running request's pages do not fit, the *newest* running request is preempted
//!   (recompute): its pages are freed, `num_computed_tokens = 0`, it goes to the front of the
//!   waiting queue keeping its output tokens, which are recomputed with the prompt on resume.
//!   A step that preempts admits nothing new.
//! - Then waiting requests in FCFS order while budget and seats remain: prefix-cache lookup (none
//!   while prompt logits are pending), first allocation, first chunk. The first request that does
//!   not fit stops admission (no overtaking). If only the pinned copy source makes it not fit, the
//!   tail copy is dropped and those tokens are recomputed instead.
//! - `schedule()` advances `num_computed_tokens` by the scheduled tokens; `update()` registers the
//!   computed pages in the prefix cache, appends sampled tokens and finishes on stop/length.
//!
//! - Prefix caching can be switched off ([`CacheConfig::enable_prefix_caching`]); hybrid models
//!   (state slots, snapshot-based prefix hits) follow the rules in `hybrid`.
//!
//! Invariants: a request id is in exactly one of `waiting` / `running` while live; running
//! requests hold pages covering their computed tokens; waiting ones hold none. For hybrid models
//! a request holds a state slot iff it is running.

mod hybrid;

pub use hybrid::{CacheConfig, SNAPSHOT_INTERVAL_TOKENS};

use std::collections::{HashMap, HashSet, VecDeque};

use crate::request::RequestState;
use crate::{
    num_pages_for, Allocation, BlockId, FinishReason, KvCacheManager, ModelOutput, PrefixHit,
    Request, RequestId, RequestStatus, RequestUpdate, SchedError, ScheduledRequest,
    SchedulerOutput, SchedulerStats, SnapshotId, StatePool,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// KV pages including the null block 0.
    pub num_blocks: usize,
    pub max_num_batched_tokens: usize,
    pub max_num_seqs: usize,
    /// Longest sequence (prompt + output) a request may reach.
    pub max_model_len: usize,
}

#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    cache_config: CacheConfig,
    kv: KvCacheManager,
    state_pool: StatePool,
    requests: HashMap<RequestId, RequestState>,
    waiting: VecDeque<RequestId>,
    running: Vec<RequestId>,
    finished_since_last_step: Vec<RequestId>,
    stats: SchedulerStats,
}

impl Scheduler {
    /// An attention-only scheduler with prefix caching on.
    pub fn new(config: SchedulerConfig) -> Result<Self, SchedError> {
        Self::with_cache_config(config, CacheConfig::default())
    }

    /// A scheduler with explicit prefix-cache / hybrid-model settings.
    pub fn with_cache_config(
        config: SchedulerConfig,
        cache_config: CacheConfig,
    ) -> Result<Self, SchedError> {
        cache_config.validate()?;
        if config.max_num_batched_tokens == 0 {
            return Err(SchedError::InvalidConfig(
                "max_num_batched_tokens must be > 0",
            ));
        }
        if config.max_num_seqs == 0 {
            return Err(SchedError::InvalidConfig("max_num_seqs must be > 0"));
        }
        if config.max_model_len == 0 {
            return Err(SchedError::InvalidConfig("max_model_len must be > 0"));
        }
        let kv = KvCacheManager::with_snapshots(config.num_blocks, cache_config.snapshots)?;
        if num_pages_for(config.max_model_len) > kv.pool().num_usable_blocks() {
            return Err(SchedError::InvalidConfig(
                "max_model_len needs more pages than the pool has",
            ));
        }
        Ok(Self {
            config,
            cache_config,
            kv,
            state_pool: StatePool::new(cache_config.num_state_slots)?,
            requests: HashMap::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            finished_since_last_step: Vec::new(),
            stats: SchedulerStats::default(),
        })
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    pub fn kv_cache(&self) -> &KvCacheManager {
        &self.kv
    }

    /// Queues a request at the back of the waiting queue.
    pub fn add_request(&mut self, request: Request) -> Result<(), SchedError> {
        let id = request.id;
        if self.requests.contains_key(&id) {
            return Err(SchedError::DuplicateRequest(id));
        }
        if request.prompt_token_ids.is_empty() {
            return Err(SchedError::EmptyPrompt(id));
        }
        if request.prompt_token_ids.len() > self.config.max_model_len {
            return Err(SchedError::PromptTooLong {
                id,
                prompt_tokens: request.prompt_token_ids.len(),
                max_model_len: self.config.max_model_len,
            });
        }
        self.requests.insert(id, RequestState::new(request));
        self.waiting.push_back(id);
        Ok(())
    }

    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    pub fn has_unfinished_requests(&self) -> bool {
        !self.requests.is_empty()
    }

    pub fn request_status(&self, id: RequestId) -> Option<RequestStatus> {
        self.requests.get(&id).map(|r| r.status)
    }

    /// Prompt ++ output tokens of a live request.
    pub fn request_token_ids(&self, id: RequestId) -> Option<&[u32]> {
        self.requests.get(&id).map(|r| r.token_ids.as_slice())
    }

    pub fn request_num_computed_tokens(&self, id: RequestId) -> Option<usize> {
        self.requests.get(&id).map(|r| r.num_computed_tokens)
    }

    pub fn request_block_table(&self, id: RequestId) -> Option<&[BlockId]> {
        self.kv.block_table(id)
    }

    pub fn stats(&self) -> SchedulerStats {
        let pool = self.kv.pool();
        SchedulerStats {
            num_waiting: self.waiting.len(),
            num_running: self.running.len(),
            num_free_blocks: pool.num_free_blocks(),
            num_used_blocks: pool.num_used_blocks(),
            num_cached_blocks: self.kv.prefix_cache().num_cached_pages(),
            num_used_state_slots: self.state_pool.num_used_slots(),
            num_free_state_slots: self.state_pool.num_free_slots(),
            num_state_snapshots: self.kv.snapshots().num_snapshots(),
            state_snapshot_bytes: self.kv.snapshots().total_bytes(),
            ..self.stats
        }
    }

    /// Plans one step. See the module doc for the policy.
    pub fn schedule(&mut self) -> Result<SchedulerOutput, SchedError> {
        self.kv.release_copy_sources()?;
        let mut output = SchedulerOutput {
            step: self.stats.steps_total,
            finished: std::mem::take(&mut self.finished_since_last_step),
            ..SchedulerOutput::default()
        };
        self.stats.steps_total += 1;
        let mut budget_tokens = self.config.max_num_batched_tokens;
        self.schedule_running(&mut output, &mut budget_tokens)?;
        if output.preempted.is_empty() {
            self.schedule_waiting(&mut output, &mut budget_tokens)?;
        }
        output.num_batched_tokens = self.config.max_num_batched_tokens - budget_tokens;
        output.evicted_snapshots = self.kv.take_evicted_snapshots();
        Ok(output)
    }

    fn schedule_running(
        &mut self,
        output: &mut SchedulerOutput,
        budget_tokens: &mut usize,
    ) -> Result<(), SchedError> {
        let mut index = 0;
        while index < self.running.len() && *budget_tokens > 0 {
            let id = self.running[index];
            let req = self.state(id)?;
            let num_new = (req.num_tokens() - req.num_computed_tokens).min(*budget_tokens);
            if num_new == 0 {
                index += 1;
                continue;
            }
            let num_tokens_after = req.num_computed_tokens + num_new;
            let fits = loop {
                if self.kv.allocate(id, num_tokens_after)?.is_some() {
                    break true;
                }
                let Some(victim) = self.running.pop() else {
                    break false;
                };
                self.preempt(victim)?;
                output.preempted.push(victim);
                if victim == id {
                    break false;
                }
            };
            if !fits {
                break;
            }
            output.scheduled.push(self.commit(id, num_new, None)?);
            *budget_tokens -= num_new;
            index += 1;
        }
        Ok(())
    }

    fn schedule_waiting(
        &mut self,
        output: &mut SchedulerOutput,
        budget_tokens: &mut usize,
    ) -> Result<(), SchedError> {
        while *budget_tokens > 0 && self.running.len() < self.config.max_num_seqs {
            let Some(&id) = self.waiting.front() else {
                break;
            };
            let hybrid = self.cache_config.is_hybrid();
            if hybrid && self.state_pool.num_free_slots() == 0 {
                break;
            }
            let req = self.state(id)?;
            let lookup_allowed =
                self.cache_config.enable_prefix_caching && !req.prompt_logits_pending();
            let hit = match (lookup_allowed, hybrid) {
                (false, _) => PrefixHit::default(),
                (true, false) => self.kv.lookup_prefix(&req.token_ids),
                (true, true) => self.kv.lookup_prefix_with_snapshot(&req.token_ids),
            };
            let num_query_tokens = req.num_tokens();
            let Some((hit, num_new, allocation)) =
                self.admit_pages(id, hit, num_query_tokens, *budget_tokens)?
            else {
                break;
            };
            output.block_copies.extend(allocation.copies);
            self.kv.touch_snapshot(&hit);
            let state_slot = if hybrid {
                Some(
                    self.state_pool
                        .allocate()
                        .ok_or(SchedError::Internal("state slot vanished during admission"))?,
                )
            } else {
                None
            };
            self.waiting.pop_front();
            self.running.push(id);
            let req = self.state_mut(id)?;
            req.state_slot = state_slot;
            req.status = RequestStatus::Running;
            req.num_computed_tokens = hit.num_cached_tokens;
            req.num_cached_tokens = hit.num_cached_tokens;
            if lookup_allowed {
                self.stats.prefix_query_tokens_total += num_query_tokens as u64;
            }
            self.stats.prefix_hit_tokens_total += hit.num_cached_tokens as u64;
            output
                .scheduled
                .push(self.commit(id, num_new, hit.snapshot)?);
            *budget_tokens -= num_new;
        }
        Ok(())
    }

    /// First allocation for a waiting request; if the pinned copy source is what makes it not
    /// fit (a request needing every page), retries without the tail copy.
    fn admit_pages(
        &mut self,
        id: RequestId,
        hit: PrefixHit,
        num_tokens: usize,
        budget_tokens: usize,
    ) -> Result<Option<(PrefixHit, usize, Allocation)>, SchedError> {
        let num_new = (num_tokens - hit.num_cached_tokens).min(budget_tokens);
        if let Some(allocation) = self.kv.allocate_new(id, &hit, num_new)? {
            return Ok(Some((hit, num_new, allocation)));
        }
        if hit.tail_copy.is_none() {
            return Ok(None);
        }
        let hit = hit.without_tail_copy();
        let num_new = (num_tokens - hit.num_cached_tokens).min(budget_tokens);
        let allocation = self.kv.allocate_new(id, &hit, num_new)?;
        Ok(allocation.map(|a| (hit, num_new, a)))
    }

    /// Emits the step's work for `id` and advances its progress counter. `restore_snapshot`:
    /// the snapshot an admission resumes from (hybrid models).
    fn commit(
        &mut self,
        id: RequestId,
        num_new: usize,
        restore_snapshot: Option<SnapshotId>,
    ) -> Result<ScheduledRequest, SchedError> {
        let block_table = self
            .kv
            .block_table(id)
            .ok_or(SchedError::Internal("scheduled request holds no pages"))?
            .to_vec();
        let cache_config = self.cache_config;
        let req = self.state_mut(id)?;
        let start = req.num_computed_tokens;
        let end = start + num_new;
        let snapshot_positions = cache_config.snapshot_positions(start, end, req.num_prompt_tokens);
        let needs_prompt_logits = req.prompt_logits_pending() && start < req.num_prompt_tokens;
        if end >= req.num_prompt_tokens {
            req.prompt_logits_done = true;
        }
        req.num_computed_tokens = end;
        Ok(ScheduledRequest {
            id,
            token_ids: req.token_ids[start..end].to_vec(),
            start_position: start,
            block_table,
            samples_next_token: end == req.num_tokens(),
            needs_prompt_logits,
            num_prompt_tokens: req.num_prompt_tokens,
            num_cached_tokens: req.num_cached_tokens,
            state_slot: req.state_slot,
            restore_snapshot,
            snapshot_positions,
        })
    }

    fn preempt(&mut self, id: RequestId) -> Result<(), SchedError> {
        self.kv.free(id)?;
        self.free_state_slot(id)?;
        let req = self.state_mut(id)?;
        req.status = RequestStatus::Preempted;
        req.num_computed_tokens = 0;
        req.num_cached_tokens = 0;
        self.waiting.push_front(id);
        self.stats.preemptions_total += 1;
        Ok(())
    }

    /// Takes the step's results: caches the computed pages, appends sampled tokens, finishes
    /// requests on a stop token, `max_tokens` or `max_model_len`. Samples for requests aborted
    /// since `schedule()` are ignored; a live request scheduled to sample must get one
    /// ([`SchedError::MissingSample`], checked before anything changes).
    pub fn update(
        &mut self,
        scheduled: &SchedulerOutput,
        model_output: &ModelOutput,
    ) -> Result<Vec<RequestUpdate>, SchedError> {
        for s in scheduled.scheduled.iter().filter(|s| s.samples_next_token) {
            let live = self
                .requests
                .get(&s.id)
                .is_some_and(|r| r.status == RequestStatus::Running && r.max_tokens > 0);
            if live && !model_output.sampled.iter().any(|&(id, _)| id == s.id) {
                return Err(SchedError::MissingSample(s.id));
            }
        }
        for s in &scheduled.scheduled {
            if let Some(req) = self.requests.get(&s.id) {
                if req.status == RequestStatus::Running {
                    self.kv
                        .cache_blocks(s.id, &req.token_ids, req.num_computed_tokens)?;
                }
            }
        }
        let to_sample: HashSet<RequestId> = scheduled
            .scheduled
            .iter()
            .filter(|s| s.samples_next_token)
            .map(|s| s.id)
            .collect();
        let mut updates = Vec::new();
        for s in scheduled.scheduled.iter().filter(|s| s.samples_next_token) {
            if self.requests.get(&s.id).is_some_and(|r| r.max_tokens == 0) {
                self.remove_finished(s.id)?;
                updates.push(RequestUpdate {
                    id: s.id,
                    token_id: None,
                    finish_reason: Some(FinishReason::Length),
                });
            }
        }
        for &(id, token_id) in &model_output.sampled {
            let Some(req) = self.requests.get_mut(&id) else {
                continue;
            };
            if !to_sample.contains(&id) || req.status != RequestStatus::Running {
                return Err(SchedError::UnexpectedSample(id));
            }
            req.token_ids.push(token_id);
            let finish_reason = if req.stop_token_ids.contains(&token_id) {
                Some(FinishReason::Stop)
            } else if req.num_output_tokens() >= req.max_tokens
                || req.num_tokens() >= self.config.max_model_len
            {
                Some(FinishReason::Length)
            } else {
                None
            };
            if finish_reason.is_some() {
                self.remove_finished(id)?;
            }
            updates.push(RequestUpdate {
                id,
                token_id: Some(token_id),
                finish_reason,
            });
        }
        Ok(updates)
    }

    /// Ends a live request (e.g. the engine found a stop string): frees its pages (computed pages
    /// stay cached) and reports it in the next output's `finished`. `_reason` is the engine's to
    /// report; the scheduler treats every reason alike.
    pub fn finish_request(
        &mut self,
        id: RequestId,
        _reason: FinishReason,
    ) -> Result<(), SchedError> {
        if !self.requests.contains_key(&id) {
            return Err(SchedError::UnknownRequest(id));
        }
        self.remove_finished(id)
    }

    /// Aborts a waiting or running request. Returns whether it was live (aborting a finished or
    /// unknown id is a no-op: the race with normal completion is expected).
    pub fn abort_request(&mut self, id: RequestId) -> Result<bool, SchedError> {
        if !self.requests.contains_key(&id) {
            return Ok(false);
        }
        self.finish_request(id, FinishReason::Abort)?;
        Ok(true)
    }

    fn remove_finished(&mut self, id: RequestId) -> Result<(), SchedError> {
        self.free_state_slot(id)?;
        self.requests.remove(&id);
        self.waiting.retain(|&w| w != id);
        self.running.retain(|&r| r != id);
        self.kv.free(id)?;
        self.finished_since_last_step.push(id);
        Ok(())
    }

    fn state(&self, id: RequestId) -> Result<&RequestState, SchedError> {
        self.requests.get(&id).ok_or(SchedError::UnknownRequest(id))
    }

    fn state_mut(&mut self, id: RequestId) -> Result<&mut RequestState, SchedError> {
        self.requests
            .get_mut(&id)
            .ok_or(SchedError::UnknownRequest(id))
    }
}
