//! Request parsing and validation: accepted shapes, and for every rejection the `param` it
//! names (what a client sees in `error.param`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use arle_api::parse::{CHAT_FIELDS, CHAT_UNSUPPORTED, COMPLETION_FIELDS, COMPLETION_UNSUPPORTED};
use arle_api::{
    parse_chat_request, parse_completion_request, ChatRole, MessageContent, Prompt, PromptInput,
    RequestError, StopSequences,
};
use serde_json::{json, Value};

fn chat(v: Value) -> Result<arle_api::ChatCompletionRequest, RequestError> {
    parse_chat_request(v.to_string().as_bytes())
}

fn completion(v: Value) -> Result<arle_api::CompletionRequest, RequestError> {
    parse_completion_request(v.to_string().as_bytes())
}

fn base_chat() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn chat_err_param(v: Value) -> Option<String> {
    chat(v).expect_err("request should be rejected").param
}

fn completion_err_param(v: Value) -> Option<String> {
    completion(v).expect_err("request should be rejected").param
}

#[test]
fn minimal_chat_parses_with_defaults() {
    let r = chat(base_chat()).unwrap();
    assert_eq!(r.model, "m");
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].role, ChatRole::User);
    assert_eq!(
        r.messages[0].content,
        Some(MessageContent::Text("hi".into()))
    );
    assert_eq!(r.max_completion_tokens(), None);
    assert_eq!(r.n, None);
}

#[test]
fn chat_full_parameter_set_parses() {
    let v = json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
            {"role": "user", "content": "go", "name": "bob"}
        ],
        "max_tokens": 10, "max_completion_tokens": 7, "temperature": 0.5, "top_p": 0.9,
        "top_k": 40, "min_p": 0.05, "presence_penalty": 0.1, "frequency_penalty": -0.1,
        "repetition_penalty": 1.1, "seed": -3, "stop": ["a", "b"], "stop_token_ids": [2],
        "n": 2, "logprobs": true, "top_logprobs": 3, "stream": true,
        "stream_options": {"include_usage": true}, "ignore_eos": true, "user": "u"
    });
    let r = chat(v).unwrap();
    assert_eq!(r.max_completion_tokens(), Some(7));
    assert_eq!(r.messages[1].content.as_ref().unwrap().to_text(), "ab");
    assert_eq!(r.messages[1].role.template_name(), "system");
    assert_eq!(
        r.stop,
        Some(StopSequences::Many(vec!["a".into(), "b".into()]))
    );
    assert_eq!(r.seed, Some(-3));
    assert_eq!(r.stream_options.unwrap().include_usage, Some(true));
}

#[test]
fn max_tokens_is_used_when_max_completion_tokens_is_absent() {
    let r = chat(with(base_chat(), "max_tokens", json!(5))).unwrap();
    assert_eq!(r.max_completion_tokens(), Some(5));
}

#[test]
fn unknown_chat_field_is_named() {
    let e = chat(with(base_chat(), "temprature", json!(1))).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("temprature"));
    assert_eq!(e.code.as_deref(), Some("unknown_parameter"));
    assert!(e.message.contains("temprature"), "{}", e.message);
}

#[test]
fn every_unsupported_chat_param_is_named_when_set() {
    for (name, _) in CHAT_UNSUPPORTED {
        let e = chat(with(base_chat(), name, json!([{"type": "x"}]))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(*name));
        assert_eq!(e.code.as_deref(), Some("unsupported_parameter"), "{name}");
    }
    for (name, _) in COMPLETION_UNSUPPORTED {
        let v = json!({"model": "m", "prompt": "x", *name: {"a": 1}});
        assert_eq!(completion_err_param(v).as_deref(), Some(*name));
    }
}

#[test]
fn empty_unsupported_params_are_accepted() {
    for value in [json!(null), json!([]), json!({}), json!(false)] {
        let v = with(
            with(base_chat(), "tools", value.clone()),
            "logit_bias",
            value,
        );
        assert!(chat(v).is_ok());
    }
    assert_eq!(
        chat_err_param(with(base_chat(), "store", json!(true))).as_deref(),
        Some("store")
    );
}

#[test]
fn image_content_part_is_named() {
    let v = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}}
    ]}]});
    let e = chat(v).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].content[1].type"));
    assert!(e.message.contains("image_url"), "{}", e.message);
}

#[test]
fn type_errors_name_the_field_path() {
    assert_eq!(
        chat_err_param(with(base_chat(), "temperature", json!("hot"))).as_deref(),
        Some("temperature")
    );
    let v = json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]});
    assert_eq!(chat_err_param(v).as_deref(), Some("messages[0].role"));
    let v = json!({"model": "m", "messages": [{"content": "x"}]});
    assert_eq!(chat_err_param(v).as_deref(), Some("messages[0].role"));
    let v = json!({"model": "m", "messages": [{"role": "user", "content": "x", "extra": 1}]});
    assert!(chat_err_param(v).unwrap().starts_with("messages[0]"));
}

#[test]
fn missing_required_fields_are_named() {
    assert_eq!(
        chat_err_param(json!({"messages": []})).as_deref(),
        Some("model")
    );
    assert_eq!(
        chat_err_param(json!({"model": "m"})).as_deref(),
        Some("messages")
    );
    assert_eq!(
        completion_err_param(json!({"model": "m"})).as_deref(),
        Some("prompt")
    );
}

#[test]
fn malformed_json_and_non_objects_are_rejected() {
    for body in [&b"{\"model\": "[..], b"[1,2]", b"", b"null"] {
        let e = parse_chat_request(body).unwrap_err();
        assert_eq!(e.param, None);
        assert_eq!(e.code.as_deref(), Some("invalid_json"));
    }
}

#[test]
fn chat_ranges_are_checked() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("temperature", json!(2.5), "temperature"),
        ("temperature", json!(-0.1), "temperature"),
        ("top_p", json!(0.0), "top_p"),
        ("top_p", json!(1.5), "top_p"),
        ("top_k", json!(-2), "top_k"),
        ("min_p", json!(1.5), "min_p"),
        ("presence_penalty", json!(3), "presence_penalty"),
        ("frequency_penalty", json!(-3), "frequency_penalty"),
        ("repetition_penalty", json!(0), "repetition_penalty"),
        ("n", json!(0), "n"),
        ("n", json!(17), "n"),
        ("max_tokens", json!(0), "max_tokens"),
        ("max_completion_tokens", json!(0), "max_completion_tokens"),
        ("max_tokens", json!(-1), "max_tokens"),
        ("stop", json!([""]), "stop"),
        ("stop", json!(vec!["x"; 17]), "stop"),
        (
            "stream_options",
            json!({"include_usage": true}),
            "stream_options",
        ),
        ("messages", json!([]), "messages"),
    ];
    for (key, value, param) in cases {
        let got = chat_err_param(with(base_chat(), key, value.clone()));
        assert_eq!(got.as_deref(), Some(param), "{key} = {value}");
    }
    let v = with(
        with(base_chat(), "logprobs", json!(true)),
        "top_logprobs",
        json!(21),
    );
    assert_eq!(chat_err_param(v).as_deref(), Some("top_logprobs"));
    let v = with(base_chat(), "top_logprobs", json!(2));
    assert_eq!(chat_err_param(v).as_deref(), Some("top_logprobs"));
    let v = json!({"model": "m", "messages": [{"role": "user"}]});
    assert_eq!(chat_err_param(v).as_deref(), Some("messages[0].content"));
}

#[test]
fn range_edges_are_accepted() {
    for (key, value) in [
        ("temperature", json!(0)),
        ("temperature", json!(2)),
        ("top_p", json!(1)),
        ("top_k", json!(-1)),
        ("top_k", json!(0)),
        ("n", json!(16)),
        ("stop", json!("x")),
        ("stop", json!(vec!["x"; 16])),
    ] {
        assert!(
            chat(with(base_chat(), key, value.clone())).is_ok(),
            "{key} = {value}"
        );
    }
}

#[test]
fn completion_prompt_shapes() {
    let cases = [
        (json!("hello"), vec![PromptInput::Text("hello".into())]),
        (
            json!(["a", "b"]),
            vec![PromptInput::Text("a".into()), PromptInput::Text("b".into())],
        ),
        (json!([1, 2, 3]), vec![PromptInput::Tokens(vec![1, 2, 3])]),
        (
            json!([[1], [2, 3]]),
            vec![
                PromptInput::Tokens(vec![1]),
                PromptInput::Tokens(vec![2, 3]),
            ],
        ),
    ];
    for (prompt, inputs) in cases {
        let r = completion(json!({"model": "m", "prompt": prompt})).unwrap();
        assert_eq!(r.prompt.inputs(), inputs);
    }
    let r = completion(json!({"model": "m", "prompt": [5]})).unwrap();
    assert_eq!(r.prompt, Prompt::Tokens(vec![5]));
}

#[test]
fn completion_rejections_are_named() {
    let base = json!({"model": "m", "prompt": "x"});
    let cases: Vec<(&str, Value, &str)> = vec![
        ("best_of", json!(2), "best_of"),
        ("suffix", json!("tail"), "suffix"),
        ("logprobs", json!(21), "logprobs"),
        ("logprobs", json!(true), "logprobs"),
        ("prompt", json!(""), "prompt"),
        ("prompt", json!([]), "prompt"),
        ("prompt", json!(["a", ""]), "prompt"),
        ("prompt", json!([[1], []]), "prompt"),
        ("prompt", json!(["a", 1]), "prompt"),
        ("prompt", json!([-1]), "prompt"),
        ("functions", json!([{}]), "functions"),
        ("n", json!(16), "prompt"),
    ];
    for (key, value, param) in cases {
        let mut v = with(base.clone(), key, value.clone());
        if key == "n" {
            v["prompt"] = json!(vec!["p"; 9]);
        }
        assert_eq!(
            completion_err_param(v).as_deref(),
            Some(param),
            "{key} = {value}"
        );
    }
    let ok = json!({"model": "m", "prompt": "x", "best_of": 1, "suffix": null, "echo": true, "logprobs": 0});
    assert!(completion(ok).is_ok());
}

/// The key lists used for the unknown-field check must equal the struct fields.
#[test]
fn field_lists_match_the_structs() {
    let full_chat = json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1,
        "max_completion_tokens": 1, "temperature": 1, "top_p": 1, "top_k": 1, "min_p": 0,
        "presence_penalty": 0, "frequency_penalty": 0, "repetition_penalty": 1, "seed": 1,
        "stop": "s", "stop_token_ids": [1], "n": 1, "logprobs": true, "top_logprobs": 1,
        "stream": true, "stream_options": {}, "ignore_eos": true, "user": "u"
    });
    let parsed = serde_json::to_value(chat(full_chat).unwrap()).unwrap();
    let keys: BTreeSet<&str> = parsed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, CHAT_FIELDS.iter().copied().collect());

    let full_completion = json!({
        "model": "m", "prompt": "p", "max_tokens": 1, "temperature": 1, "top_p": 1, "top_k": 1,
        "min_p": 0, "presence_penalty": 0, "frequency_penalty": 0, "repetition_penalty": 1,
        "seed": 1, "stop": "s", "stop_token_ids": [1], "n": 1, "logprobs": 1, "echo": true,
        "stream": true, "stream_options": {}, "ignore_eos": true, "user": "u", "best_of": 1,
        "suffix": ""
    });
    let parsed = serde_json::to_value(completion(full_completion).unwrap()).unwrap();
    let keys: BTreeSet<&str> = parsed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, COMPLETION_FIELDS.iter().copied().collect());
}

#[test]
fn error_body_has_openai_shape() {
    let e = chat(with(base_chat(), "tools", json!([{"type": "function"}]))).unwrap_err();
    let body = serde_json::to_value(e.to_body()).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "tools");
    assert_eq!(body["error"]["code"], "unsupported_parameter");
    assert!(body["error"]["message"].as_str().unwrap().contains("tools"));
}
