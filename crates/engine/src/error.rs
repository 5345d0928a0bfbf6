//! The one error type of this crate.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] arle_models::ModelError),
    #[error(transparent)]
    Tensor(#[from] arle_tensor::TensorError),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    /// The request can never run (e.g. prompt + max_tokens exceed the context).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The bounded queue is full; retry later.
    #[error("engine overloaded: {0} requests waiting")]
    Overloaded(usize),
    #[error("engine has shut down")]
    Shutdown,
    /// A broken internal invariant (a bug), reported instead of panicking.
    #[error("internal error: {0}")]
    Internal(String),
    /// A logits row that cannot be sampled (empty, no finite value) or an unusable RNG.
    #[error("sampling: {0}")]
    Sampling(String),
}
