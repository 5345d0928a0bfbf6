//! `HttpLlm` against a scripted local HTTP server (loopback only): the request it sends
//! (model, messages with tool-call arguments as JSON strings, tools, auth header, stream) and
//! the SSE stream it reads (content deltas, tool-call fragments by index, usage, `[DONE]`).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use arle_agent::{CancelFlag, HttpLlm, HttpSampling, Llm, LlmFinish, LlmRequest, ToolKind};
use arle_engine::tokenizer::ChatMessage;
use serde_json::{json, Value as Json};

/// Serves one request per reply in `replies` (full HTTP response text); sends back
/// (request line + headers, body) of each.
fn serve(replies: Vec<String>) -> (String, mpsc::Receiver<(String, Json)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for reply in replies {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            stream.write_all(reply.as_bytes()).unwrap();
            drop(stream);
            tx.send((head, serde_json::from_slice(&body).unwrap()))
                .unwrap();
        }
    });
    (url, rx)
}

fn sse_reply(lines: Vec<String>) -> String {
    let mut out = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
    );
    for line in lines {
        out.push_str(&format!("data: {line}\n\n"));
    }
    out
}

fn serve_once(sse: Vec<String>) -> (String, mpsc::Receiver<(String, Json)>) {
    serve(vec![sse_reply(sse)])
}

fn chunk(delta: Json, finish: Option<&str>) -> String {
    json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string()
}

#[test]
fn streams_text_tool_calls_and_usage() {
    let sse = vec![
        chunk(json!({"role": "assistant", "content": "Hel"}), None),
        chunk(json!({"content": "lo"}), None),
        chunk(json!({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "shell", "arguments": "{\"comm"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "and\": \"ls\"}"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "python", "arguments": "{}"}}]}), Some("tool_calls")),
        json!({"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 16}}}).to_string(),
        "[DONE]".to_string(),
    ];
    let (url, rx) = serve_once(sse);
    let mut llm = HttpLlm::connect(
        &format!("{url}/v1"),
        Some("sekrit".into()),
        Some("m1".into()),
        HttpSampling {
            max_tokens: Some(64),
            temperature: Some(0.0),
            ..Default::default()
        },
    )
    .unwrap();
    let mut history = vec![ChatMessage::new("user", "list files")];
    history.push(ChatMessage {
        role: "assistant".into(),
        content: None,
        name: None,
        tool_calls: Some(vec![json!({"id": "c0", "type": "function", "function": {"name": "shell", "arguments": {"command": "pwd"}}})]),
        tool_call_id: None,
    });
    history.push(ChatMessage {
        role: "tool".into(),
        content: Some(arle_engine::tokenizer::MessageContent::Text("/tmp".into())),
        name: None,
        tool_calls: None,
        tool_call_id: Some("c0".into()),
    });
    let tools: Vec<_> = ToolKind::ALL.into_iter().map(ToolKind::schema).collect();
    let mut streamed = Vec::new();
    let response = llm
        .complete(
            &LlmRequest {
                messages: &history,
                tools: Some(&tools),
            },
            &mut |t| streamed.push(t.to_string()),
            &CancelFlag::new(),
        )
        .unwrap();
    assert_eq!(streamed, ["Hel", "lo"]);
    assert_eq!(response.text, "Hello");
    assert_eq!(response.finish, LlmFinish::Stop);
    assert_eq!(response.usage.prompt_tokens, 30);
    assert_eq!(response.usage.completion_tokens, 9);
    assert_eq!(response.usage.cached_tokens, 16);
    assert_eq!(response.native_tool_calls.len(), 2);
    assert_eq!(response.native_tool_calls[0].id, "call_a");
    assert_eq!(
        response.native_tool_calls[0].arguments,
        json!({"command": "ls"})
    );
    assert_eq!(response.native_tool_calls[1].name, "python");
    assert!(response.prompt_token_ids.is_none());

    let (head, body) = rx.recv().unwrap();
    assert!(head.starts_with("POST /v1/chat/completions "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer sekrit"),
        "{head}"
    );
    assert_eq!(body["model"], "m1");
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["tools"][0]["function"]["name"], "shell");
    let args = &body["messages"][1]["tool_calls"][0]["function"]["arguments"];
    assert_eq!(
        args.as_str()
            .map(|s| serde_json::from_str::<Json>(s).unwrap()),
        Some(json!({"command": "pwd"}))
    );
    assert_eq!(body["messages"][2]["tool_call_id"], "c0");
}

#[test]
fn server_without_tool_support_gets_tools_as_text() {
    let error =
        json!({"error": {"message": "The parameter `tools` is not supported", "param": "tools"}})
            .to_string();
    let rejected = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{error}",
        error.len()
    );
    let ok = sse_reply(vec![
        chunk(
            json!({"content": "<tool_call>{\"name\": \"shell\", \"arguments\": {}}</tool_call>"}),
            Some("stop"),
        ),
        "[DONE]".into(),
    ]);
    let (url, rx) = serve(vec![rejected, ok]);
    let mut llm = HttpLlm::connect(&url, None, Some("m".into()), HttpSampling::default()).unwrap();
    let tools: Vec<_> = ToolKind::ALL.into_iter().map(ToolKind::schema).collect();
    let history = vec![
        ChatMessage::new("user", "go"),
        ChatMessage {
            role: "assistant".into(),
            content: None,
            name: None,
            tool_calls: Some(vec![
                json!({"id": "c0", "type": "function", "function": {"name": "shell", "arguments": {"command": "pwd"}}}),
            ]),
            tool_call_id: None,
        },
        ChatMessage {
            role: "tool".into(),
            content: Some(arle_engine::tokenizer::MessageContent::Text("/tmp".into())),
            name: None,
            tool_calls: None,
            tool_call_id: Some("c0".into()),
        },
    ];
    let response = llm
        .complete(
            &LlmRequest {
                messages: &history,
                tools: Some(&tools),
            },
            &mut |_| {},
            &CancelFlag::new(),
        )
        .unwrap();
    assert!(response.text.contains("<tool_call>"));
    assert!(response.native_tool_calls.is_empty());
    let (_, first) = rx.recv().unwrap();
    assert!(first.get("tools").is_some());
    let (_, second) = rx.recv().unwrap();
    assert!(second.get("tools").is_none());
    let msgs = second["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    assert!(msgs[0]["content"].as_str().unwrap().contains("<tools>"));
    assert!(msgs[2]["content"].as_str().unwrap().contains("<tool_call>"));
    assert!(msgs[2].get("tool_calls").is_none());
    assert_eq!(msgs[3]["role"], "user");
    assert!(msgs[3]["content"]
        .as_str()
        .unwrap()
        .contains("<tool_response>\n/tmp"));
}
