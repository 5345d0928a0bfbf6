//! [`EngineHandle`]: the async, clonable front of the engine thread.
//!
//! `submit` hands a request to the engine thread over a channel and returns a [`RequestStream`]
//! of [`GenerateEvent`]s. Dropping the stream aborts the request (a client disconnect frees its
//! KV pages). Invariant: the engine thread is the only owner of scheduler and model state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::request::{GenerateEvent, GenerateRequest};
use crate::EngineError;

/// Identifies one request inside the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Messages from handles to the engine thread.
#[derive(Debug)]
pub enum EngineCommand {
    Submit {
        id: RequestId,
        request: GenerateRequest,
        events: mpsc::UnboundedSender<GenerateEvent>,
    },
    Abort(RequestId),
    Shutdown,
}

/// Point-in-time engine counters (for `/v1/stats` and `/metrics`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct EngineStats {
    pub waiting_requests: usize,
    pub running_requests: usize,
    pub kv_blocks_total: usize,
    pub kv_blocks_free: usize,
    /// Free blocks that still hold reusable prefix-cache content.
    pub kv_blocks_cached: usize,
    pub kv_block_tokens: usize,
    pub prompt_tokens_total: u64,
    pub generation_tokens_total: u64,
    pub prefix_cache_hit_tokens_total: u64,
    pub requests_finished_total: u64,
    pub preemptions_total: u64,
    pub steps_total: u64,
    /// Decode steps captured as CUDA graphs so far (one per batch x page bucket; 0 when off).
    pub cuda_graphs: usize,
}

/// Static facts about the served model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedModel {
    /// The id clients use in `model`.
    pub id: String,
    pub max_context_tokens: usize,
    pub vocab_size: usize,
}

pub(crate) struct Shared {
    pub(crate) commands: std::sync::mpsc::Sender<EngineCommand>,
    pub(crate) next_id: AtomicU64,
    pub(crate) stats: Mutex<EngineStats>,
    pub(crate) ready: AtomicBool,
    pub(crate) max_waiting: usize,
}

/// Clonable handle; all clones talk to the same engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) model: Arc<ServedModel>,
    pub(crate) tokenizer: Arc<crate::tokenizer::Tokenizer>,
    /// Compiled once; `None` when the model ships no chat template.
    pub(crate) chat_template: Option<Arc<crate::tokenizer::ChatTemplate>>,
}

impl EngineHandle {
    /// Queues a request. Fails fast with `Overloaded` when the waiting queue is full and with
    /// `InvalidRequest` when the prompt can never fit the context.
    pub fn submit(&self, request: GenerateRequest) -> Result<RequestStream, EngineError> {
        let prompt = request.prompt_token_ids.len();
        let max_ctx = self.model.max_context_tokens;
        if prompt == 0 {
            return Err(EngineError::InvalidRequest("the prompt is empty".into()));
        }
        let wanted = prompt + request.params.max_tokens.unwrap_or(1);
        if wanted > max_ctx {
            return Err(EngineError::InvalidRequest(format!(
                "this model's maximum context length is {max_ctx} tokens; the request needs {prompt} prompt tokens + {} completion tokens",
                request.params.max_tokens.unwrap_or(1)
            )));
        }
        let waiting = self.stats().waiting_requests;
        if waiting >= self.shared.max_waiting {
            return Err(EngineError::Overloaded(waiting));
        }
        let id = RequestId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared
            .commands
            .send(EngineCommand::Submit {
                id,
                request,
                events: tx,
            })
            .map_err(|_| EngineError::Shutdown)?;
        Ok(RequestStream {
            id,
            events: rx,
            shared: self.shared.clone(),
            finished: false,
        })
    }

    pub fn model(&self) -> &ServedModel {
        &self.model
    }

    pub fn tokenizer(&self) -> &crate::tokenizer::Tokenizer {
        &self.tokenizer
    }

    /// Renders `messages` with the model's chat template.
    pub fn render_chat(
        &self,
        messages: &[crate::tokenizer::ChatMessage],
        opts: &crate::tokenizer::RenderOptions,
    ) -> Result<String, EngineError> {
        let template = self.chat_template.as_ref().ok_or_else(|| {
            EngineError::InvalidRequest(
                "this model has no chat template; use /v1/completions".into(),
            )
        })?;
        template.render(messages, opts)
    }

    pub fn stats(&self) -> EngineStats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// True once the engine finished warm-up and accepts work.
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    /// Asks the engine thread to abort everything and stop.
    pub fn shutdown(&self) {
        let _ = self.shared.commands.send(EngineCommand::Shutdown);
    }
}

/// The event stream of one request. Dropping it before `Finished` aborts the request.
pub struct RequestStream {
    id: RequestId,
    events: mpsc::UnboundedReceiver<GenerateEvent>,
    shared: Arc<Shared>,
    finished: bool,
}

impl RequestStream {
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The next event; `None` after `Finished`/`Error` or if the engine stopped.
    pub async fn next(&mut self) -> Option<GenerateEvent> {
        let ev = self.events.recv().await;
        if matches!(
            ev,
            None | Some(GenerateEvent::Finished { .. } | GenerateEvent::Error(_))
        ) {
            self.finished = true;
        }
        ev
    }

    /// Blocking variant for non-async callers (CLI, agent).
    pub fn blocking_next(&mut self) -> Option<GenerateEvent> {
        let ev = self.events.blocking_recv();
        if matches!(
            ev,
            None | Some(GenerateEvent::Finished { .. } | GenerateEvent::Error(_))
        ) {
            self.finished = true;
        }
        ev
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.shared.commands.send(EngineCommand::Abort(self.id));
        }
    }
}
