//! `arle-engine`: tokenizer and chat templates, sampling, stop handling, the model runner and
//! the engine thread behind [`EngineHandle`].
//!
//! - [`start_engine`] loads a model and spawns the engine thread; [`EngineHandle`] talks to it.
//! - [`runner`]: one scheduled step → one batched forward over the paged KV cache.
//! - `engine_loop` / `sequence`: the thread's loop and per-request state (private).
//! - `phase_timing`: `ARLE_ENGINE_TIMING`, per-phase step times of the engine thread.

pub mod config;
pub mod device_sampling;
mod engine_loop;
pub mod error;
pub mod handle;
mod memory_plan;
mod phase_timing;
pub mod request;
pub mod runner;
pub mod sampling;
mod sequence;
mod start;
pub mod step_graphs;
pub mod stop;
pub mod tokenizer;

pub use config::EngineConfig;
pub use error::EngineError;
pub use handle::{EngineHandle, EngineStats, RequestId, RequestStream, ServedModel};
pub use request::{
    FinishReason, GenerateEvent, GenerateRequest, SamplingParams, TokenLogprob, Usage,
};
pub use start::{start_engine, start_engine_with_model, EngineModel};
