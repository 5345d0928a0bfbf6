//! `EngineLlm` on the real SmolLM2 GGUF: each turn's prompt is the previous turn's prompt
//! followed by its output and the new message, so the engine's prefix cache serves the earlier
//! turns (cached tokens > 0); cancellation stops a generation early; tools reach a template
//! without tool support through the Hermes instructions in the system message.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use arle_agent::{
    tool_instructions, Agent, AgentConfig, CancelFlag, EngineLlm, Llm, LlmFinish, LlmRequest,
    SilentObserver, ToolKind,
};
use arle_engine::tokenizer::ChatMessage;
use arle_engine::{start_engine, EngineConfig, EngineHandle, SamplingParams};

fn smollm2_gguf() -> PathBuf {
    if let Some(p) = std::env::var_os("ARLE_SMOLLM2_GGUF") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-test-assets.sh",
        p.display()
    );
    p
}

fn engine() -> EngineHandle {
    start_engine(EngineConfig {
        model_path: smollm2_gguf(),
        served_model_name: "smollm2".into(),
        kv_cache_tokens: Some(4096),
        max_num_seqs: 2,
        ..EngineConfig::default()
    })
    .unwrap()
}

fn greedy(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens: Some(max_tokens),
        ..SamplingParams::default()
    }
}

#[test]
fn second_turn_extends_the_first_and_hits_the_prefix_cache() {
    let handle = engine();
    let mut llm = EngineLlm::new(handle.clone(), greedy(24));
    let cancel = CancelFlag::new();
    let mut messages = vec![ChatMessage::new("user", "Name three colours.")];
    let mut streamed = String::new();
    let first = llm
        .complete(
            &LlmRequest {
                messages: &messages,
                tools: None,
            },
            &mut |t| streamed.push_str(t),
            &cancel,
        )
        .unwrap();
    assert_eq!(streamed, first.text);
    assert!(!first.text.is_empty());
    messages.push(ChatMessage::new("assistant", first.text.clone()));
    messages.push(ChatMessage::new("user", "And three animals?"));
    let second = llm
        .complete(
            &LlmRequest {
                messages: &messages,
                tools: None,
            },
            &mut |_| {},
            &cancel,
        )
        .unwrap();
    let p1 = first.prompt_token_ids.as_ref().unwrap();
    let p2 = second.prompt_token_ids.as_ref().unwrap();
    assert!(
        p2.starts_with(p1),
        "turn 2's prompt does not extend turn 1's"
    );
    assert!(p2.len() > p1.len() + 4);
    assert_eq!(first.usage.cached_tokens, 0);
    assert!(
        second.usage.cached_tokens >= p1.len() / 16 * 16,
        "cached {} of a {}-token shared prefix",
        second.usage.cached_tokens,
        p1.len()
    );
    assert_eq!(
        first.usage.completion_tokens,
        first.response_token_ids.unwrap().len()
    );
    handle.shutdown();
}

#[test]
fn cancel_stops_generation() {
    let handle = engine();
    let mut llm = EngineLlm::new(handle.clone(), greedy(400));
    let cancel = CancelFlag::new();
    let messages = [ChatMessage::new(
        "user",
        "Write a very long story about the sea.",
    )];
    let mut pieces = 0;
    let response = llm
        .complete(
            &LlmRequest {
                messages: &messages,
                tools: None,
            },
            &mut |_| {
                pieces += 1;
                if pieces == 5 {
                    cancel.cancel();
                }
            },
            &cancel,
        )
        .unwrap();
    assert_eq!(response.finish, LlmFinish::Cancelled);
    assert!(
        response.usage.completion_tokens < 20,
        "{}",
        response.usage.completion_tokens
    );
    handle.shutdown();
}

#[test]
fn tools_reach_a_template_without_tool_support() {
    let handle = engine();
    let mut llm = EngineLlm::new(handle.clone(), greedy(8));
    let tools: Vec<_> = ToolKind::ALL.into_iter().map(ToolKind::schema).collect();
    let messages = [ChatMessage::new("user", "hi")];
    let prompt = llm
        .render(&LlmRequest {
            messages: &messages,
            tools: Some(&tools),
        })
        .unwrap();
    assert!(prompt.contains(&tool_instructions(&tools)), "{prompt}");
    assert!(prompt.contains("\"name\":\"shell\""));
    let plain = llm
        .render(&LlmRequest {
            messages: &messages,
            tools: None,
        })
        .unwrap();
    assert!(!plain.contains("<tool_call>"));
    // And a full agent turn runs end to end on the real model.
    let mut agent = Agent::new(Box::new(llm), None, AgentConfig::default());
    let out = agent
        .send("Say hello.", &mut SilentObserver, &CancelFlag::new())
        .unwrap();
    assert_eq!(out.model_calls, 1);
    assert!(out.usage.completion_tokens > 0);
    handle.shutdown();
}
