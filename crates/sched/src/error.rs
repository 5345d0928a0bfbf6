//! The crate's one error type. "Does not fit now" is never an error (it is `Ok(None)`); errors
//! are misuse (bad config, unknown or duplicate ids) or broken internal invariants.

use crate::{BlockId, RequestId, StateSlotId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    #[error("invalid scheduler config: {0}")]
    InvalidConfig(&'static str),
    #[error("request {0:?} already exists")]
    DuplicateRequest(RequestId),
    #[error("request {0:?} has an empty prompt")]
    EmptyPrompt(RequestId),
    #[error(
        "request {id:?}: prompt of {prompt_tokens} tokens exceeds max_model_len {max_model_len}"
    )]
    PromptTooLong {
        id: RequestId,
        prompt_tokens: usize,
        max_model_len: usize,
    },
    #[error("unknown request {0:?}")]
    UnknownRequest(RequestId),
    #[error("block {0:?} is out of range or the reserved null block")]
    InvalidBlock(BlockId),
    #[error("block {0:?} is released but not in use")]
    BlockNotInUse(BlockId),
    #[error("a page of {num_tokens} tokens cannot be cached as a {kind} page")]
    InvalidPage {
        num_tokens: usize,
        kind: &'static str,
    },
    #[error("request {id:?} holds {num_blocks} pages, too few for {num_tokens} tokens")]
    MissingPages {
        id: RequestId,
        num_blocks: usize,
        num_tokens: usize,
    },
    #[error("state slot {0:?} is out of range")]
    InvalidStateSlot(StateSlotId),
    #[error("state slot {0:?} is released but not in use")]
    StateSlotNotInUse(StateSlotId),
    #[error("request {0:?} got a sampled token but was not scheduled to sample")]
    UnexpectedSample(RequestId),
    #[error("request {0:?} was scheduled to sample but got no sampled token")]
    MissingSample(RequestId),
    #[error("internal scheduler invariant broken: {0}")]
    Internal(&'static str),
}
