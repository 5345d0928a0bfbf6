//! Agent-loop tests with a scripted `Llm` test double: tool call -> result -> final answer,
//! malformed-call recovery, the max-turns stop, tool timeout and output truncation, declined
//! calls, plain chat, the trace file and save/load.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arle_agent::tools::sandbox::SandboxBackend;
use arle_agent::{
    Agent, AgentConfig, AgentError, AgentObserver, CancelFlag, Llm, LlmFinish, LlmRequest,
    LlmResponse, LlmUsage, SilentObserver, StopReason, ToolCall, ToolConfig, ToolRegistry,
    ToolResult, TraceWriter,
};
use arle_engine::tokenizer::ChatMessage;

/// Replies with the scripted texts in order (the last one repeats), in 3-byte chunks, and
/// records every conversation it was asked to continue.
struct ScriptedLlm {
    replies: VecDeque<String>,
    seen: Arc<Mutex<Vec<Vec<ChatMessage>>>>,
}

impl ScriptedLlm {
    fn new(replies: &[&str]) -> (Self, Arc<Mutex<Vec<Vec<ChatMessage>>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let llm = Self {
            replies: replies.iter().map(|s| s.to_string()).collect(),
            seen: seen.clone(),
        };
        (llm, seen)
    }
}

impl Llm for ScriptedLlm {
    fn model_name(&self) -> String {
        "scripted".into()
    }

    fn complete(
        &mut self,
        request: &LlmRequest<'_>,
        on_text: &mut dyn FnMut(&str),
        _cancel: &CancelFlag,
    ) -> Result<LlmResponse, AgentError> {
        self.seen.lock().unwrap().push(request.messages.to_vec());
        let text = if self.replies.len() > 1 {
            self.replies.pop_front().unwrap()
        } else {
            self.replies.front().cloned().unwrap()
        };
        let bytes: Vec<char> = text.chars().collect();
        for chunk in bytes.chunks(3) {
            on_text(&chunk.iter().collect::<String>());
        }
        let prompt_len = request.messages.len() * 10;
        Ok(LlmResponse {
            prompt_token_ids: Some((0..prompt_len as u32).collect()),
            response_token_ids: Some((0..text.len() as u32).collect()),
            usage: LlmUsage {
                prompt_tokens: prompt_len,
                completion_tokens: text.len(),
                cached_tokens: prompt_len / 2,
            },
            text,
            finish: LlmFinish::Stop,
            native_tool_calls: Vec::new(),
        })
    }
}

struct Setup {
    _work: tempfile::TempDir,
    _tmp: tempfile::TempDir,
    tools: ToolRegistry,
}

fn tools(timeout: Duration, max_output_bytes: usize) -> Setup {
    let work = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let tools = ToolRegistry::new(ToolConfig {
        work_dir: work.path().to_path_buf(),
        tmp_dir: tmp.path().to_path_buf(),
        timeout,
        max_output_bytes,
        sandbox: SandboxBackend::None,
    });
    Setup {
        _work: work,
        _tmp: tmp,
        tools,
    }
}

fn shell_call(command: &str) -> String {
    format!(
        "<tool_call>\n{}\n</tool_call>",
        serde_json::json!({"name": "shell", "arguments": {"command": command}})
    )
}

#[derive(Default)]
struct Recorder {
    shown: String,
    results: Vec<ToolResult>,
    malformed: usize,
    approve: bool,
}

impl AgentObserver for Recorder {
    fn on_text(&mut self, text: &str) {
        self.shown.push_str(text);
    }
    fn approve(&mut self, _call: &ToolCall) -> bool {
        self.approve
    }
    fn on_tool_result(&mut self, _call: &ToolCall, result: &ToolResult) {
        self.results.push(result.clone());
    }
    fn on_malformed_call(&mut self, _raw: &str, _error: &str) {
        self.malformed += 1;
    }
}

#[test]
fn tool_call_then_result_then_final_answer() {
    let s = tools(Duration::from_secs(10), 4096);
    let first = format!("Let me look.\n{}", shell_call("echo hello-from-tool"));
    let (llm, seen) = ScriptedLlm::new(&[&first, "The tool printed hello-from-tool."]);
    let mut agent = Agent::new(Box::new(llm), Some(s.tools.clone()), AgentConfig::default());
    let mut rec = Recorder {
        approve: true,
        ..Default::default()
    };
    let out = agent
        .send("run echo", &mut rec, &CancelFlag::new())
        .unwrap();
    assert_eq!(out.stop, StopReason::Answered);
    assert_eq!(out.model_calls, 2);
    assert_eq!(out.final_text, "The tool printed hello-from-tool.");
    assert_eq!(out.tool_calls.len(), 1);
    let result = &out.tool_calls[0].result;
    assert_eq!(result.exit_code, Some(0));
    assert!(
        result.content.contains("hello-from-tool"),
        "{}",
        result.content
    );
    // The second model call saw: user, assistant(tool_calls), tool(result).
    let seen = seen.lock().unwrap();
    let second = &seen[1];
    let roles: Vec<_> = second.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool"]);
    let call = &second[1].tool_calls.as_ref().unwrap()[0];
    assert_eq!(call["function"]["name"], "shell");
    assert_eq!(second[2].tool_call_id.as_deref(), call["id"].as_str());
    // The streamed text hid the call markup.
    assert!(rec.shown.contains("Let me look."));
    assert!(!rec.shown.contains("tool_call"), "{}", rec.shown);
    assert_eq!(agent.stats().model_calls, 2);
    assert_eq!(agent.stats().tool_calls, 1);
    assert!(agent.stats().cached_tokens > 0);
}

#[test]
fn malformed_call_is_returned_to_the_model() {
    let s = tools(Duration::from_secs(10), 4096);
    let bad = "<tool_call>{\"name\": \"shell\", \"arguments\": {\"command\": \"ls\"</tool_call>";
    let (llm, seen) = ScriptedLlm::new(&[bad, "Sorry, here is the answer: 4."]);
    let mut agent = Agent::new(Box::new(llm), Some(s.tools.clone()), AgentConfig::default());
    let mut rec = Recorder::default();
    let out = agent.send("2+2?", &mut rec, &CancelFlag::new()).unwrap();
    assert_eq!(out.stop, StopReason::Answered);
    assert_eq!(out.malformed_calls, 1);
    assert_eq!(rec.malformed, 1);
    assert!(out.tool_calls.is_empty());
    let seen = seen.lock().unwrap();
    let last = seen[1].last().unwrap();
    assert_eq!(last.role, "user");
    let text = last.content.as_ref().unwrap().joined_text();
    assert!(
        text.contains("[tool-call error]") && text.contains("invalid JSON"),
        "{text}"
    );
}

#[test]
fn max_turns_stops_a_model_that_keeps_calling() {
    let s = tools(Duration::from_secs(10), 4096);
    let (llm, seen) = ScriptedLlm::new(&[&shell_call("echo again")]);
    let config = AgentConfig {
        max_turns: 3,
        ..Default::default()
    };
    let mut agent = Agent::new(Box::new(llm), Some(s.tools.clone()), config);
    let out = agent
        .send("loop", &mut SilentObserver, &CancelFlag::new())
        .unwrap();
    assert_eq!(out.stop, StopReason::MaxTurns);
    assert_eq!(out.model_calls, 3);
    assert_eq!(out.tool_calls.len(), 3);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[test]
fn tool_timeout_kills_the_process() {
    let s = tools(Duration::from_millis(300), 4096);
    let (llm, _) = ScriptedLlm::new(&[&shell_call("echo start; sleep 30; echo never"), "done"]);
    let mut agent = Agent::new(Box::new(llm), Some(s.tools.clone()), AgentConfig::default());
    let started = Instant::now();
    let out = agent
        .send("sleep", &mut SilentObserver, &CancelFlag::new())
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let result = &out.tool_calls[0].result;
    assert!(result.timed_out);
    assert_eq!(result.exit_code, None);
    assert!(result.content.contains("timed out"), "{}", result.content);
    assert!(result.content.contains("start") && !result.content.contains("never"));
    assert_eq!(out.stop, StopReason::Answered);
}

#[test]
fn long_output_is_truncated_and_says_so() {
    let s = tools(Duration::from_secs(10), 100);
    let (llm, _) = ScriptedLlm::new(&[&shell_call("head -c 10000 /dev/zero | tr '\\0' x"), "ok"]);
    let mut agent = Agent::new(Box::new(llm), Some(s.tools.clone()), AgentConfig::default());
    let out = agent
        .send("big", &mut SilentObserver, &CancelFlag::new())
        .unwrap();
    let result = &out.tool_calls[0].result;
    assert!(result.truncated);
    let run = "x".repeat(100);
    assert!(result.content.contains(&run) && !result.content.contains(&format!("{run}x")));
    assert!(
        result.content.contains("9900 more bytes"),
        "{}",
        result.content
    );
}

#[test]
fn declined_calls_do_not_run() {
    let s = tools(Duration::from_secs(10), 4096);
    let marker = s.tools.config().work_dir.join("ran");
    let cmd = format!("touch {}", marker.display());
    let (llm, _) = ScriptedLlm::new(&[&shell_call(&cmd), "fine"]);
    let mut agent = Agent::new(Box::new(llm), Some(s.tools.clone()), AgentConfig::default());
    let mut rec = Recorder::default();
    let out = agent.send("touch", &mut rec, &CancelFlag::new()).unwrap();
    assert!(!marker.exists());
    assert!(out.tool_calls[0].result.content.contains("declined"));
}

#[test]
fn without_tools_markup_is_plain_text() {
    let reply = shell_call("rm -rf /");
    let (llm, _) = ScriptedLlm::new(&[&reply]);
    let mut agent = Agent::new(Box::new(llm), None, AgentConfig::default());
    let mut rec = Recorder::default();
    let out = agent.send("hi", &mut rec, &CancelFlag::new()).unwrap();
    assert_eq!(out.stop, StopReason::Answered);
    assert_eq!(out.model_calls, 1);
    assert!(out.tool_calls.is_empty());
    assert_eq!(rec.shown, reply);
}

#[test]
fn trace_lines_have_ids_and_generated_mask() {
    let s = tools(Duration::from_secs(10), 4096);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.jsonl");
    let (llm, _) = ScriptedLlm::new(&[&shell_call("echo t"), "final"]);
    let mut agent = Agent::new(Box::new(llm), Some(s.tools.clone()), AgentConfig::default());
    agent.set_trace(TraceWriter::create(&path).unwrap());
    agent
        .send("x", &mut SilentObserver, &CancelFlag::new())
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["model_call"], i);
        let prompt = line["prompt_token_ids"].as_array().unwrap().len();
        let response = line["response_token_ids"].as_array().unwrap().len();
        let mask = line["generated_mask"].as_array().unwrap();
        assert_eq!(
            line["token_ids"].as_array().unwrap().len(),
            prompt + response
        );
        assert_eq!(mask.len(), prompt + response);
        assert!(mask[..prompt].iter().all(|m| m == 0));
        assert!(mask[prompt..].iter().all(|m| m == 1));
    }
    assert_eq!(lines[0]["tool_calls"][0]["function"]["name"], "shell");
    assert!(lines[0]["tool_results"][0]["content"]
        .as_str()
        .unwrap()
        .contains('t'));
    assert_eq!(lines[1]["response_text"], "final");
}

#[test]
fn save_and_load_round_trip() {
    let (llm, _) = ScriptedLlm::new(&["hello there"]);
    let mut agent = Agent::new(Box::new(llm), None, AgentConfig::default());
    agent
        .send("hi", &mut SilentObserver, &CancelFlag::new())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conv.json");
    agent.save(&path).unwrap();
    let saved = agent.messages().to_vec();
    agent.reset();
    assert!(agent.messages().is_empty());
    agent.load(&path).unwrap();
    assert_eq!(agent.messages(), saved.as_slice());
    assert_eq!(saved.len(), 2);
}
