//! `arle-engine`: tokenizer and chat templates, sampling, stop handling, the model runner and
//! the engine thread behind [`EngineHandle`].

pub mod error;
pub mod request;
pub mod sampling;
pub mod stop;
pub mod tokenizer;

pub use error::EngineError;
pub use request::{
    FinishReason, GenerateEvent, GenerateRequest, SamplingParams, TokenLogprob, Usage,
};
