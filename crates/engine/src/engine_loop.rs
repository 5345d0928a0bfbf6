//! The engine thread: `loop { take commands -> schedule -> execute -> sample -> update }`.
//!
//! Invariants: this thread alone owns the scheduler, the runner and every [`ActiveRequest`];
//! a request is in `active` iff the scheduler knows it; every request ends with exactly one
//! `Finished`/`Error` event. Handles see state only through commands and the stats snapshot.
//!
//! Hybrid models: the loop also owns the snapshot data (`snapshots`, keyed by the scheduler's
//! [`SnapshotId`]). After each forward it registers the captured states with the scheduler
//! (before `update`, while the requests still hold their pages) and keeps the ones accepted; it
//! drops the data of `evicted_snapshots` after the step's forward has restored what it needed.
//!
//! Sampling: with `device_sampling` (logits on a GPU) requests that want no logprobs are sampled
//! on the device and only their token ids come back; the others (and every request on the CPU
//! backend) use their host [`crate::sampling::Sampler`] on copied logits rows.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use arle_models::StateSnapshot;
use arle_sched::{
    ModelOutput, Request, RequestId as SchedId, Scheduler, SchedulerOutput, SnapshotId,
};

use crate::device_sampling::DeviceSampling;
use crate::handle::{EngineCommand, RequestId, Shared};
use crate::phase_timing::PhaseTimes;
use crate::request::{FinishReason, GenerateEvent};
use crate::runner::{LogitsWanted, ModelRunner, PageCopy, SeqState, SeqStep, StateInit, StepRows};
use crate::sequence::{ActiveRequest, ModelContext, Progress};
use crate::EngineError;

pub(crate) struct EngineLoop {
    pub(crate) scheduler: Scheduler,
    pub(crate) runner: ModelRunner,
    pub(crate) model: ModelContext,
    pub(crate) shared: Arc<Shared>,
    pub(crate) commands: Receiver<EngineCommand>,
    pub(crate) active: HashMap<RequestId, ActiveRequest>,
    /// Hybrid models: snapshot data the scheduler's prefix cache refers to.
    pub(crate) snapshots: HashMap<SnapshotId, StateSnapshot>,
    pub(crate) prompt_tokens_total: u64,
    pub(crate) generation_tokens_total: u64,
    pub(crate) finished_total: u64,
    /// Logits live on a GPU: sample there (requests without logprobs), copy back only ids.
    pub(crate) device_sampling: bool,
    /// `ARLE_ENGINE_TIMING`: per-phase step times (off by default).
    pub(crate) timing: PhaseTimes,
}

fn sched_id(id: RequestId) -> SchedId {
    SchedId(id.0)
}

impl EngineLoop {
    /// Runs until `Shutdown` or until every handle is dropped.
    pub(crate) fn run(mut self) {
        loop {
            if !self.drain_commands() {
                break;
            }
            if !self.scheduler.has_unfinished_requests() {
                continue;
            }
            if let Err(e) = self.step() {
                tracing::error!("engine step failed: {e}");
                self.fail_all(&e);
            }
            self.publish_stats();
        }
        self.fail_all(&EngineError::Shutdown);
        self.shared.ready.store(false, Ordering::Release);
    }

    /// Applies pending commands; blocks when idle. Returns false to stop.
    fn drain_commands(&mut self) -> bool {
        loop {
            let command = if self.scheduler.has_unfinished_requests() {
                match self.commands.try_recv() {
                    Ok(c) => c,
                    Err(TryRecvError::Empty) => return true,
                    Err(TryRecvError::Disconnected) => return false,
                }
            } else {
                match self.commands.recv() {
                    Ok(c) => c,
                    Err(_) => return false,
                }
            };
            match command {
                EngineCommand::Submit {
                    id,
                    request,
                    events,
                } => self.admit(id, request, events),
                EngineCommand::Abort(id) => self.abort(id),
                EngineCommand::Shutdown => return false,
            }
            self.publish_stats();
        }
    }

    fn admit(
        &mut self,
        id: RequestId,
        request: crate::GenerateRequest,
        events: tokio::sync::mpsc::UnboundedSender<GenerateEvent>,
    ) {
        let prompt = request.prompt_token_ids.clone();
        let active =
            match ActiveRequest::new(events.clone(), prompt.clone(), request.params, &self.model) {
                Ok(a) => a,
                Err(e) => {
                    let _ = events.send(GenerateEvent::Error(e.to_string()));
                    return;
                }
            };
        let mut sched_request = Request::new(sched_id(id), prompt, active.max_output_tokens());
        sched_request.needs_prompt_logits = active.params.prompt_logprobs.is_some();
        if let Err(e) = self.scheduler.add_request(sched_request) {
            active.fail(&EngineError::InvalidRequest(e.to_string()));
            return;
        }
        self.prompt_tokens_total += active.prompt_ids.len() as u64;
        self.active.insert(id, active);
    }

    fn abort(&mut self, id: RequestId) {
        if let Some(active) = self.active.remove(&id) {
            let _ = self.scheduler.abort_request(sched_id(id));
            active.finish(FinishReason::Abort);
            self.finished_total += 1;
        }
    }

    /// One scheduler step end to end.
    fn step(&mut self) -> Result<(), EngineError> {
        let disconnected: Vec<RequestId> = self
            .active
            .iter()
            .filter(|(_, a)| a.is_disconnected())
            .map(|(id, _)| *id)
            .collect();
        disconnected.into_iter().for_each(|id| self.abort(id));
        let mut clock = self.timing.start();
        let output = self.scheduler.schedule().map_err(sched_err)?;
        if output.is_empty() {
            return Ok(());
        }
        if let Some(c) = clock.as_mut() {
            c.scheduled();
        }
        let device = device_requests(&self.active, &output, self.device_sampling);
        let results = execute(&mut self.runner, &self.snapshots, &output, &device)?;
        if let Some(c) = clock.as_mut() {
            c.modelled();
        }
        self.keep_snapshots(&output)?;
        let vocab = self.runner.model().info().vocab_size;
        let mut sampled = Vec::new();
        let mut finished_here = Vec::new();
        for (s, result) in output.scheduled.iter().zip(results) {
            let id = RequestId(s.id.0);
            let Some(active) = self.active.get_mut(&id) else {
                continue;
            };
            // The first chunk after admission starts right after the prefix-cache hit.
            if s.start_position == s.num_cached_tokens && active.output_ids.is_empty() {
                active.cached_tokens = s.num_cached_tokens;
            }
            let progress = match (result.token, result.logits) {
                (Some(token), _) => Some(active.on_token(token, None)?),
                (None, Some(mut rows)) => {
                    let prompt_rows = s
                        .num_prompt_tokens
                        .saturating_sub(s.start_position)
                        .min(s.token_ids.len());
                    if s.needs_prompt_logits && prompt_rows > 0 {
                        active.on_prompt_logits(
                            &rows.data()[..prompt_rows * vocab],
                            vocab,
                            s.start_position,
                        )?;
                    }
                    if s.samples_next_token && active.max_output_tokens() > 0 {
                        let n_rows = rows.elements() / vocab;
                        let last = &mut rows.data_mut()[(n_rows - 1) * vocab..];
                        Some(active.on_logits(last)?)
                    } else {
                        None
                    }
                }
                (None, None) => None,
            };
            if let Some((token, progress)) = progress {
                sampled.push((s.id, token));
                self.generation_tokens_total += 1;
                if let Progress::Finished(reason) = progress {
                    finished_here.push((id, reason));
                }
            }
        }
        let updates = self
            .scheduler
            .update(&output, &ModelOutput { sampled })
            .map_err(sched_err)?;
        for (id, reason) in finished_here {
            if self.scheduler.request_status(sched_id(id)).is_some() {
                self.scheduler
                    .finish_request(sched_id(id), to_sched_reason(reason))
                    .map_err(sched_err)?;
            }
            self.complete(id, reason);
        }
        for u in updates {
            if let Some(reason) = u.finish_reason {
                self.complete(RequestId(u.id.0), from_sched_reason(reason));
            }
        }
        if let Some(line) = clock.and_then(|c| self.timing.record(c, output.scheduled.len())) {
            eprintln!("{line}");
        }
        Ok(())
    }

    /// Registers the states captured by the step just run and drops evicted snapshot data.
    fn keep_snapshots(&mut self, output: &SchedulerOutput) -> Result<(), EngineError> {
        for captured in self.runner.take_captured() {
            let s = output.scheduled.get(captured.seq_index).ok_or_else(|| {
                EngineError::Internal("captured state of an unknown sequence".into())
            })?;
            let snapshot = captured.snapshot;
            let kept = self
                .scheduler
                .register_snapshot(s.id, snapshot.position, snapshot.bytes())
                .map_err(sched_err)?;
            if let Some(id) = kept {
                self.snapshots.insert(id, snapshot);
            }
        }
        for id in &output.evicted_snapshots {
            self.snapshots.remove(id);
        }
        Ok(())
    }

    fn complete(&mut self, id: RequestId, reason: FinishReason) {
        if let Some(active) = self.active.remove(&id) {
            active.finish(reason);
            self.finished_total += 1;
        }
    }

    /// Ends every live request with an error (after a failed step or at shutdown).
    fn fail_all(&mut self, error: &EngineError) {
        for (id, active) in self.active.drain() {
            let _ = self.scheduler.abort_request(sched_id(id));
            active.fail(error);
        }
    }

    pub(crate) fn publish_stats(&self) {
        let s = self.scheduler.stats();
        if let Ok(mut stats) = self.shared.stats.lock() {
            stats.waiting_requests = s.num_waiting;
            stats.running_requests = s.num_running;
            stats.kv_blocks_total = self.scheduler.kv_cache().pool().num_usable_blocks();
            stats.kv_blocks_free = s.num_free_blocks;
            stats.kv_blocks_cached = s.num_cached_blocks;
            stats.kv_block_tokens = arle_sched::BLOCK_TOKENS;
            stats.prompt_tokens_total = self.prompt_tokens_total;
            stats.generation_tokens_total = self.generation_tokens_total;
            stats.prefix_cache_hit_tokens_total = s.prefix_hit_tokens_total;
            stats.requests_finished_total = self.finished_total;
            stats.preemptions_total = s.preemptions_total;
            stats.steps_total = s.steps_total;
            stats.cuda_graphs = self.runner.step_graph_count();
        }
    }
}

fn sched_err(e: arle_sched::SchedError) -> EngineError {
    EngineError::Internal(format!("scheduler: {e}"))
}

fn to_sched_reason(r: FinishReason) -> arle_sched::FinishReason {
    match r {
        FinishReason::Stop => arle_sched::FinishReason::Stop,
        FinishReason::Length => arle_sched::FinishReason::Length,
        FinishReason::Abort => arle_sched::FinishReason::Abort,
    }
}

fn from_sched_reason(r: arle_sched::FinishReason) -> FinishReason {
    match r {
        arle_sched::FinishReason::Stop => FinishReason::Stop,
        arle_sched::FinishReason::Length => FinishReason::Length,
        arle_sched::FinishReason::Abort => FinishReason::Abort,
    }
}

/// Runs the model for the scheduled requests; `device[i]` samples sequence `i` on the device.
fn execute(
    runner: &mut ModelRunner,
    snapshots: &HashMap<SnapshotId, StateSnapshot>,
    output: &SchedulerOutput,
    device: &[Option<DeviceSampling<'_>>],
) -> Result<Vec<StepRows>, EngineError> {
    let tables: Vec<Vec<u32>> = output
        .scheduled
        .iter()
        .map(|s| s.block_table.iter().map(|b| b.0).collect())
        .collect();
    let mut states = Vec::with_capacity(output.scheduled.len());
    for s in &output.scheduled {
        states.push(match s.state_slot {
            None => None,
            Some(slot) => Some(SeqState {
                slot: slot.0,
                init: match (s.restore_snapshot, s.start_position) {
                    (Some(id), _) => StateInit::Restore(snapshots.get(&id).ok_or_else(|| {
                        EngineError::Internal(format!("snapshot {id:?} has no data"))
                    })?),
                    (None, 0) => StateInit::Reset,
                    (None, _) => StateInit::Keep,
                },
                snapshot_positions: &s.snapshot_positions,
            }),
        });
    }
    let steps: Vec<SeqStep<'_>> = output
        .scheduled
        .iter()
        .zip(&tables)
        .zip(states)
        .map(|((s, table), state)| SeqStep {
            token_ids: &s.token_ids,
            start_position: s.start_position,
            block_table: table,
            logits: if s.needs_prompt_logits && s.start_position < s.num_prompt_tokens {
                LogitsWanted::All
            } else if s.samples_next_token {
                LogitsWanted::Last
            } else {
                LogitsWanted::None
            },
            state,
        })
        .collect();
    let copies: Vec<PageCopy> = output
        .block_copies
        .iter()
        .map(|c| PageCopy {
            src: c.src.0,
            dst: c.dst.0,
        })
        .collect();
    runner.execute_sampled(&steps, &copies, device)
}

/// Per scheduled sequence: its device-sampling parameters when it samples its next token this
/// step on the device (logits on a GPU, a live request that wants no logprobs), else `None`.
fn device_requests<'a>(
    active: &'a HashMap<RequestId, ActiveRequest>,
    output: &SchedulerOutput,
    device_sampling: bool,
) -> Vec<Option<DeviceSampling<'a>>> {
    if !device_sampling {
        return Vec::new();
    }
    output
        .scheduled
        .iter()
        .map(|s| {
            let wants_all = s.needs_prompt_logits && s.start_position < s.num_prompt_tokens;
            if !s.samples_next_token || wants_all {
                return None;
            }
            active
                .get(&RequestId(s.id.0))
                .filter(|a| a.samples_on_device() && a.max_output_tokens() > 0)
                .map(ActiveRequest::device_sampling)
        })
        .collect()
}
