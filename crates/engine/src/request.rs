//! What a client asks the engine for, and what it streams back. Plain data.

/// Sampling and stopping parameters of one request (one completion choice).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 1.0 disables.
    pub top_p: f32,
    /// `None` disables.
    pub top_k: Option<usize>,
    /// 0.0 disables.
    pub min_p: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// 1.0 disables (HF/vLLM multiplicative form over prompt + output tokens).
    pub repetition_penalty: f32,
    /// Same seed and params ⇒ same tokens.
    pub seed: Option<u64>,
    /// `None`: up to the model's context limit.
    pub max_tokens: Option<usize>,
    /// Generation stops before any of these strings; the stop string is not returned.
    pub stop: Vec<String>,
    pub stop_token_ids: Vec<u32>,
    pub ignore_eos: bool,
    /// `Some(n)`: return the sampled token's logprob and the top `n` alternatives.
    pub logprobs: Option<usize>,
    /// Return logprobs of the prompt tokens (completions `echo` + `logprobs`).
    pub prompt_logprobs: Option<usize>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: None,
            min_p: 0.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repetition_penalty: 1.0,
            seed: None,
            max_tokens: None,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            logprobs: None,
            prompt_logprobs: None,
        }
    }
}

/// One generation request.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    pub prompt_token_ids: Vec<u32>,
    pub params: SamplingParams,
}

/// A token's log-probability with its top alternatives (token id, logprob), best first.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token_id: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// EOS, a stop token or a stop string.
    Stop,
    /// max_tokens or the context limit.
    Length,
    /// Aborted by the client or shutdown.
    Abort,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
}

/// Streamed back to the submitter, in this order: `Started`, `Token`*, `Finished` (or `Error`).
#[derive(Clone, Debug, PartialEq)]
pub enum GenerateEvent {
    Started {
        prompt_tokens: usize,
        cached_tokens: usize,
        /// Per prompt token (the first has none), when `prompt_logprobs` was asked.
        prompt_logprobs: Option<Vec<Option<TokenLogprob>>>,
    },
    Token {
        token_id: u32,
        /// Newly decodable text (may be empty while a multi-byte char or a possible stop
        /// string is held back).
        text: String,
        logprob: Option<TokenLogprob>,
    },
    Finished {
        reason: FinishReason,
        /// Text released at the end (held-back text that turned out not to be a stop).
        text: String,
        usage: Usage,
    },
    Error(String),
}
