//! Requests as the scheduler sees them: token ids in, one progress counter.
//!
//! Invariants of [`RequestState`]:
//! - `token_ids == prompt ++ output`; `num_computed_tokens <= token_ids.len()`.
//! - Tokens `0..num_computed_tokens` have KV in the request's pages (or are planned to have it by
//!   the step just scheduled: the counter advances at `schedule()`).
//! - A preempted request has `num_computed_tokens == 0` and holds no pages; its output tokens stay
//!   in `token_ids` and are recomputed like prompt tokens.

/// Engine-assigned request id (one per completion choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Why a request stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token (EOS, `stop_token_ids`) or a stop string found by the engine.
    Stop,
    /// `max_tokens` output tokens or `max_model_len` total tokens.
    Length,
    /// Aborted by the client or shutdown.
    Abort,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestStatus {
    Waiting,
    Running,
    /// Back in the waiting queue after recompute preemption.
    Preempted,
}

/// What the engine submits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: RequestId,
    pub prompt_token_ids: Vec<u32>,
    /// Output tokens after which the request finishes with [`FinishReason::Length`]; 0 runs the
    /// prompt only (e.g. echo with prompt logprobs) and samples nothing.
    pub max_tokens: usize,
    /// Sampling one of these finishes the request with [`FinishReason::Stop`] (the token is kept).
    pub stop_token_ids: Vec<u32>,
    /// Every prompt row needs logits (prompt logprobs): prefix-cache hits are disabled until the
    /// prompt has been computed once.
    pub needs_prompt_logits: bool,
}

impl Request {
    pub fn new(id: RequestId, prompt_token_ids: Vec<u32>, max_tokens: usize) -> Self {
        Self {
            id,
            prompt_token_ids,
            max_tokens,
            stop_token_ids: Vec::new(),
            needs_prompt_logits: false,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct RequestState {
    pub(crate) num_prompt_tokens: usize,
    /// prompt ++ output
    pub(crate) token_ids: Vec<u32>,
    pub(crate) max_tokens: usize,
    pub(crate) stop_token_ids: Vec<u32>,
    pub(crate) needs_prompt_logits: bool,
    /// Prompt logits were produced for every prompt row once (prefix hits allowed from now on).
    pub(crate) prompt_logits_done: bool,
    pub(crate) num_computed_tokens: usize,
    /// Tokens found in the prefix cache at the latest admission.
    pub(crate) num_cached_tokens: usize,
    pub(crate) status: RequestStatus,
    /// Hybrid models: the slot owned while running (`None` while waiting or attention-only).
    pub(crate) state_slot: Option<crate::StateSlotId>,
}

impl RequestState {
    pub(crate) fn new(request: Request) -> Self {
        Self {
            num_prompt_tokens: request.prompt_token_ids.len(),
            token_ids: request.prompt_token_ids,
            max_tokens: request.max_tokens,
            stop_token_ids: request.stop_token_ids,
            needs_prompt_logits: request.needs_prompt_logits,
            prompt_logits_done: false,
            num_computed_tokens: 0,
            num_cached_tokens: 0,
            status: RequestStatus::Waiting,
            state_slot: None,
        }
    }

    pub(crate) fn num_tokens(&self) -> usize {
        self.token_ids.len()
    }

    pub(crate) fn num_output_tokens(&self) -> usize {
        self.token_ids.len() - self.num_prompt_tokens
    }

    /// Prompt rows still owe logits: prefix hits must not skip them.
    pub(crate) fn prompt_logits_pending(&self) -> bool {
        self.needs_prompt_logits && !self.prompt_logits_done
    }
}
