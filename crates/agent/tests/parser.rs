//! Tool-call parser tests on the formats real models emit (Hermes/Qwen, Llama-3, Mistral),
//! several calls per message, malformed calls, and every way of splitting a message into
//! stream chunks.

#![allow(clippy::unwrap_used)]

use arle_agent::{parse_tool_calls, ParsedCall, ToolCall, ToolCallStream};
use serde_json::json;

fn calls(text: &str) -> Vec<ToolCall> {
    parse_tool_calls(text)
        .calls
        .into_iter()
        .map(|c| match c {
            ParsedCall::Call(c) => c,
            ParsedCall::Malformed { raw, error } => panic!("malformed {raw}: {error}"),
        })
        .collect()
}

// Qwen2.5 / Hermes 2 Pro: the format of their chat templates' tool-call instructions.
const QWEN_TWO_CALLS: &str = "I'll check both cities.\n<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": {\"location\": \"San Francisco, CA, USA\", \"unit\": \"celsius\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_temperature_date\", \"arguments\": {\"location\": \"San Francisco, CA, USA\", \"date\": \"2024-10-01\", \"unit\": \"celsius\"}}\n</tool_call>";

// Llama 3.1/3.2 JSON tool calling (custom tools): a bare JSON object with "parameters".
const LLAMA3_CALL: &str =
    "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 3}}";

#[test]
fn hermes_qwen_two_calls_with_text() {
    let parsed = parse_tool_calls(QWEN_TWO_CALLS);
    assert_eq!(parsed.content, "I'll check both cities.");
    let got = calls(QWEN_TWO_CALLS);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].name, "get_current_temperature");
    assert_eq!(got[0].arguments["unit"], "celsius");
    assert_eq!(got[1].name, "get_temperature_date");
    assert_eq!(got[1].arguments["date"], "2024-10-01");
    assert_ne!(got[0].id, got[1].id);
}

#[test]
fn hermes_arguments_as_json_string() {
    let text = "<tool_call>{\"name\": \"shell\", \"arguments\": \"{\\\"command\\\": \\\"ls\\\"}\"}</tool_call>";
    assert_eq!(calls(text)[0].arguments, json!({"command": "ls"}));
}

#[test]
fn llama3_json_call_and_python_tag_and_semicolons() {
    let got = calls(LLAMA3_CALL);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "get_weather");
    assert_eq!(got[0].arguments, json!({"city": "Paris", "days": 3}));

    let tagged = format!("<|python_tag|>{LLAMA3_CALL}; {{\"name\": \"shell\", \"parameters\": {{\"command\": \"date\"}}}}");
    let got = calls(&tagged);
    assert_eq!(
        got.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["get_weather", "shell"]
    );
    assert_eq!(parse_tool_calls(&tagged).content, "");
}

#[test]
fn mistral_tool_calls_array() {
    let text = "[TOOL_CALLS][{\"name\": \"shell\", \"arguments\": {\"command\": \"ls\"}}, {\"name\": \"python\", \"arguments\": {\"code\": \"print(1)\"}}]";
    let got = calls(text);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].arguments["code"], "print(1)");
}

#[test]
fn plain_text_and_plain_json_are_not_calls() {
    assert!(parse_tool_calls("The answer is 4.").calls.is_empty());
    let json_answer = "{\"city\": \"Paris\", \"population\": 2100000}";
    let parsed = parse_tool_calls(json_answer);
    assert!(parsed.calls.is_empty());
    assert_eq!(parsed.content, json_answer);
}

#[test]
fn malformed_calls_are_reported_not_fatal() {
    let cases = [
        "<tool_call>{\"name\": \"shell\", \"arguments\": {\"command\": \"ls\"</tool_call>",
        "<tool_call>{\"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": \"shell\", \"arguments\": [1, 2]}</tool_call>",
        "<tool_call>{\"name\": \"shell\", \"arguments\": {\"command\": \"ls\"}}",
        "{\"name\": \"shell\", \"parameters\": {\"command\": ",
        "<|python_tag|>not json",
    ];
    for text in cases {
        let parsed = parse_tool_calls(text);
        assert_eq!(parsed.calls.len(), 1, "{text}");
        assert!(
            matches!(parsed.calls[0], ParsedCall::Malformed { .. }),
            "{text}: {parsed:?}"
        );
    }
    // A good call next to a bad one keeps the good one.
    let mixed =
        "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call><tool_call>{oops}</tool_call>";
    let parsed = parse_tool_calls(mixed);
    assert!(matches!(&parsed.calls[0], ParsedCall::Call(c) if c.name == "a"));
    assert!(matches!(parsed.calls[1], ParsedCall::Malformed { .. }));
}

/// Streams `text` in chunks of `size` bytes (on char boundaries); returns (shown text, parsed).
fn stream(text: &str, size: usize) -> (String, arle_agent::ParsedMessage) {
    let mut parser = ToolCallStream::new();
    let mut shown = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = size.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        shown.push_str(&parser.push(&rest[..cut]));
        rest = &rest[cut..];
    }
    let (tail, parsed) = parser.finish();
    shown.push_str(&tail);
    (shown, parsed)
}

#[test]
fn streaming_any_chunking_gives_the_same_calls_and_hides_markup() {
    let samples = [
        QWEN_TWO_CALLS,
        LLAMA3_CALL,
        "Plain answer with a < sign and <b>tags</b> — ünïcode.",
        "Before <tool_call>{\"name\": \"shell\", \"arguments\": {\"command\": \"ls\"}}</tool_call> after",
        "<|python_tag|>{\"name\": \"shell\", \"parameters\": {\"command\": \"ls\"}}",
        "{\"answer\": 42}",
    ];
    for text in samples {
        let whole = parse_tool_calls(text);
        for size in 1..=text.len() {
            let (shown, parsed) = stream(text, size);
            assert_eq!(parsed, whole, "{text:?} in chunks of {size}");
            assert!(
                !shown.contains("<tool_call>") && !shown.contains("python_tag"),
                "{shown:?}"
            );
            assert!(
                !shown.contains("\"arguments\"") && !shown.contains("\"parameters\""),
                "{shown:?}"
            );
            let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(
                squash(&shown),
                squash(&whole.content),
                "{text:?} in chunks of {size}"
            );
        }
    }
}
