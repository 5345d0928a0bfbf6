//! The agent crate's one error type. Tool failures are not errors: they become tool results the
//! model reads; these are failures of the agent itself (model backend, I/O, configuration).

/// Errors of the agent loop, its LLM clients, tools setup and the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The in-process engine refused or failed a request.
    #[error("engine: {0}")]
    Engine(#[from] arle_engine::EngineError),
    /// The HTTP model server failed or answered something we cannot read.
    #[error("model server: {0}")]
    Http(String),
    /// A local file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The sandbox could not be set up for a tool process.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// A saved conversation or trace could not be (de)serialised.
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Wraps an `io::Error` with what we were doing.
pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
    let context = context.into();
    move |source| AgentError::Io { context, source }
}
