//! [`ServerConfig`]: where to listen, the API key, the served model name and body limits.

/// 16 MiB: the largest accepted request body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// When set, every route except `/healthz` and `/readyz` needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// The id clients send in `model`; empty uses the engine's model id.
    pub served_model_name: String,
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8000,
            api_key: None,
            served_model_name: String::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}
