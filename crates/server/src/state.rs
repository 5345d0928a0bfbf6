//! [`AppState`]: what every handler shares: the engine handle, the config, the compiled chat
//! template, metrics, and the id the model is served under.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arle_engine::handle::EngineHandle;
use arle_engine::tokenizer::ChatTemplate;

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::metrics::Metrics;

/// Cheap to clone; all clones share one [`StateInner`].
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

pub struct StateInner {
    pub engine: EngineHandle,
    pub config: ServerConfig,
    pub metrics: Arc<Metrics>,
    /// `config.served_model_name`, or the engine's model id when that is empty.
    pub model_id: String,
    /// `None` when the model ships no chat template (chat completions then answer 400).
    pub chat_template: Option<ChatTemplate>,
    /// Unix seconds at start (the `created` of `/v1/models`).
    pub created_unix: u64,
}

impl AppState {
    /// Compiles the chat template once.
    pub fn new(config: ServerConfig, engine: EngineHandle) -> Result<Self, ServerError> {
        let chat_template = engine.tokenizer().chat_template()?;
        let model_id = if config.served_model_name.is_empty() {
            engine.model().id.clone()
        } else {
            config.served_model_name.clone()
        };
        Ok(Self {
            inner: Arc::new(StateInner {
                engine,
                config,
                metrics: Arc::new(Metrics::default()),
                model_id,
                chat_template,
                created_unix: unix_now(),
            }),
        })
    }
}

impl Deref for AppState {
    type Target = StateInner;

    fn deref(&self) -> &StateInner {
        &self.inner
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
