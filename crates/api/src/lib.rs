//! `arle-api`: the OpenAI wire types (serde only), shared by the server and the agent.
//!
//! Job: describe the JSON of `/v1/chat/completions`, `/v1/completions`, `/v1/models` and
//! error bodies, and turn raw request bodies into validated requests ([`parse`]).
//! Invariants: a request that [`parse`] accepts is within every documented range; every
//! field the client sent is either honoured or rejected with a [`RequestError`] naming it
//! (never silently ignored). No dependency on the engine.

pub mod chat;
pub mod common;
pub mod completions;
pub mod error;
pub mod parse;
mod validate;

pub use chat::{
    ChatChoice, ChatChunkChoice, ChatCompletionChunk, ChatCompletionRequest,
    ChatCompletionResponse, ChatDelta, ChatLogprobs, ChatMessage, ChatRole, ChatTokenLogprob,
    ContentPart, MessageContent, ResponseMessage, ToolCall, ToolCallFunction, TopLogprob,
};
pub use common::{
    FinishReason, ModelCard, ModelList, PromptTokensDetails, StopSequences, StreamOptions, Usage,
};
pub use completions::{
    CompletionChoice, CompletionLogprobs, CompletionRequest, CompletionResponse, Prompt,
    PromptInput,
};
pub use error::{ErrorBody, ErrorObject, RequestError};
pub use parse::{parse_chat_request, parse_completion_request};
