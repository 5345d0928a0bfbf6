//! Blocking client for streaming `POST /v1/completions`, timing every SSE chunk.
//!
//! One call = one request; callers run many on threads. TTFT is the time from sending to the
//! first chunk that carries a token; each later token chunk adds one inter-token latency (the
//! closing chunk with only `finish_reason` does not).
//! Invariant: a request counts as successful only if the stream ended with `data: [DONE]`
//! and produced at least one choice chunk; anything else is returned as an error string, never
//! a panic, so one bad request cannot stop a benchmark.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// What to send as `prompt`.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptInput {
    /// Exact token ids (lengths are exact, no tokenizer involved).
    Tokens(Vec<u32>),
    Text(String),
}

/// One benchmark request.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRequest {
    pub prompt: PromptInput,
    pub output_len: usize,
}

/// The measured result of one request.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RequestOutcome {
    pub success: bool,
    pub error: Option<String>,
    /// From the usage chunk, else the token count of a token-id prompt.
    pub prompt_tokens: usize,
    /// From the usage chunk, else the number of choice chunks.
    pub output_tokens: usize,
    pub ttft_ms: f64,
    /// Gaps between consecutive choice chunks.
    pub itl_ms: Vec<f64>,
    pub e2el_ms: f64,
}

impl RequestOutcome {
    /// Time per output token after the first; `None` with fewer than two tokens.
    pub fn tpot_ms(&self) -> Option<f64> {
        (self.output_tokens > 1)
            .then(|| (self.e2el_ms - self.ttft_ms) / (self.output_tokens - 1) as f64)
    }
}

/// One parsed SSE line.
#[derive(Debug, PartialEq)]
pub enum SseItem {
    /// A chunk with a choice that carries text or is not the closing one (one token, or a few
    /// when text was held back).
    Choice,
    /// The final usage chunk: (prompt_tokens, completion_tokens).
    Usage(usize, usize),
    Done,
    Error(String),
    /// Blank lines, comments, chunks without choices or usage.
    Other,
}

/// Parses one line of the event stream.
pub fn parse_sse_line(line: &str) -> SseItem {
    let Some(data) = line.strip_prefix("data:") else {
        return SseItem::Other;
    };
    let data = data.trim();
    if data == "[DONE]" {
        return SseItem::Done;
    }
    let value: Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => return SseItem::Error(format!("bad SSE chunk ({e}): {data}")),
    };
    if let Some(err) = value.get("error") {
        return SseItem::Error(err.to_string());
    }
    if let Some(choice) = value["choices"].as_array().and_then(|c| c.first()) {
        // The closing chunk (finish_reason set, no text) carries no token.
        let has_text = choice["text"].as_str().is_some_and(|t| !t.is_empty());
        return if has_text || choice["finish_reason"].is_null() {
            SseItem::Choice
        } else {
            SseItem::Other
        };
    }
    match (
        value["usage"]["prompt_tokens"].as_u64(),
        value["usage"]["completion_tokens"].as_u64(),
    ) {
        (Some(p), Some(c)) => SseItem::Usage(p as usize, c as usize),
        _ => SseItem::Other,
    }
}

/// Talks to one OpenAI-compatible server.
pub struct CompletionClient {
    agent: ureq::Agent,
    base_url: String,
    api_key: Option<String>,
}

impl CompletionClient {
    pub fn new(base_url: &str, api_key: Option<String>, timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(timeout)
            .max_idle_connections_per_host(1024)
            .build();
        Self {
            agent,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
        }
    }

    fn with_auth(&self, req: ureq::Request) -> ureq::Request {
        match &self.api_key {
            Some(key) => req.set("Authorization", &format!("Bearer {key}")),
            None => req,
        }
    }

    /// The first id listed by `GET /v1/models`.
    pub fn first_model_id(&self) -> Result<String, String> {
        let req = self.with_auth(self.agent.get(&format!("{}/v1/models", self.base_url)));
        let body: Value = req
            .call()
            .map_err(|e| e.to_string())?
            .into_json()
            .map_err(|e| e.to_string())?;
        body["data"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("/v1/models listed no model: {body}"))
    }

    /// Sends one greedy, EOS-ignoring streaming completion and times it.
    pub fn complete(&self, model: &str, request: &BenchRequest) -> RequestOutcome {
        let prompt = match &request.prompt {
            PromptInput::Tokens(ids) => json!(ids),
            PromptInput::Text(text) => json!(text),
        };
        let body = json!({
            "model": model,
            "prompt": prompt,
            "max_tokens": request.output_len,
            "temperature": 0.0,
            "ignore_eos": true,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        let url = format!("{}/v1/completions", self.base_url);
        let start = Instant::now();
        let mut outcome = RequestOutcome {
            prompt_tokens: match &request.prompt {
                PromptInput::Tokens(ids) => ids.len(),
                PromptInput::Text(_) => 0,
            },
            ..RequestOutcome::default()
        };
        let response = match self.with_auth(self.agent.post(&url)).send_json(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                outcome.error = Some(format!("HTTP {code}: {text}"));
                return outcome;
            }
            Err(e) => {
                outcome.error = Some(e.to_string());
                return outcome;
            }
        };
        if let Err(e) = read_stream(response, start, &mut outcome) {
            outcome.error = Some(e);
        }
        outcome.e2el_ms = start.elapsed().as_secs_f64() * 1e3;
        outcome.success = outcome.error.is_none();
        outcome
    }
}

/// Reads SSE lines until `[DONE]`, filling in timings and token counts.
fn read_stream(
    response: ureq::Response,
    start: Instant,
    outcome: &mut RequestOutcome,
) -> Result<(), String> {
    let reader = BufReader::new(response.into_reader());
    let mut last_chunk: Option<Instant> = None;
    let mut choice_chunks = 0;
    let mut usage_tokens = None;
    for line in reader.lines() {
        let line = line.map_err(|e| format!("reading the stream: {e}"))?;
        match parse_sse_line(&line) {
            SseItem::Choice => {
                let now = Instant::now();
                match last_chunk {
                    None => outcome.ttft_ms = (now - start).as_secs_f64() * 1e3,
                    Some(prev) => outcome.itl_ms.push((now - prev).as_secs_f64() * 1e3),
                }
                last_chunk = Some(now);
                choice_chunks += 1;
            }
            SseItem::Usage(prompt, completion) => {
                outcome.prompt_tokens = prompt;
                usage_tokens = Some(completion);
            }
            SseItem::Done => {
                if choice_chunks == 0 {
                    return Err("the stream ended without any token".into());
                }
                outcome.output_tokens = usage_tokens.unwrap_or(choice_chunks);
                return Ok(());
            }
            SseItem::Error(e) => return Err(e),
            SseItem::Other => {}
        }
    }
    Err("the stream ended before [DONE]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openai_completion_chunks() {
        let chunk = r#"data: {"id":"c","object":"text_completion","choices":[{"index":0,"text":"hi","finish_reason":null}],"usage":null}"#;
        assert_eq!(parse_sse_line(chunk), SseItem::Choice);
        let held_back = r#"data: {"choices":[{"index":0,"text":"","finish_reason":null}]}"#;
        assert_eq!(parse_sse_line(held_back), SseItem::Choice);
        let last_with_text =
            r#"data: {"choices":[{"index":0,"text":"x","finish_reason":"length"}]}"#;
        assert_eq!(parse_sse_line(last_with_text), SseItem::Choice);
        let closing = r#"data: {"choices":[{"index":0,"text":"","finish_reason":"length"}]}"#;
        assert_eq!(parse_sse_line(closing), SseItem::Other);
        let usage = r#"data: {"id":"c","choices":[],"usage":{"prompt_tokens":512,"completion_tokens":128,"total_tokens":640}}"#;
        assert_eq!(parse_sse_line(usage), SseItem::Usage(512, 128));
        assert_eq!(parse_sse_line("data: [DONE]"), SseItem::Done);
        assert_eq!(parse_sse_line(""), SseItem::Other);
        assert_eq!(parse_sse_line(": keep-alive"), SseItem::Other);
        assert!(matches!(
            parse_sse_line(r#"data: {"error":{"message":"boom"}}"#),
            SseItem::Error(m) if m.contains("boom")
        ));
        assert!(matches!(
            parse_sse_line("data: {not json"),
            SseItem::Error(_)
        ));
    }

    #[test]
    fn tpot_excludes_the_first_token() {
        let o = RequestOutcome {
            output_tokens: 11,
            ttft_ms: 100.0,
            e2el_ms: 600.0,
            ..RequestOutcome::default()
        };
        assert_eq!(o.tpot_ms(), Some(50.0));
        let single = RequestOutcome {
            output_tokens: 1,
            ..o
        };
        assert_eq!(single.tpot_ms(), None);
    }
}
