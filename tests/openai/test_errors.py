"""Every error case: status, OpenAI error body ({"error": {message, type, param, code}}) and,
where the protocol needs them, headers (401 WWW-Authenticate, 405 Allow, 429 Retry-After)."""

import json
import threading
import time

import openai
import pytest
import requests

from conftest import API_KEY

MSG = [{"role": "user", "content": "hi"}]


def post(server, path, body, headers=None, raw=None):
    h = {"Content-Type": "application/json", **server.headers(), **(headers or {})}
    data = raw if raw is not None else json.dumps(body)
    return requests.post(server.base + path, data=data, headers=h, timeout=60)


def error_of(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    e = body["error"]
    assert set(e) >= {"message", "type", "param", "code"}, body
    assert isinstance(e["message"], str) and e["message"]
    assert "x-request-id" in r.headers
    return e


def chat_body(model_id, **kw):
    return {"model": model_id, "messages": MSG, "max_tokens": 4, **kw}


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"audio": {"voice": "x"}}, "audio"),
        ({"modalities": ["audio"]}, "modalities"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"web_search_options": {"search_context_size": "low"}}, "web_search_options"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 0}, "n"),
        ({"n": 17}, "n"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
         "messages[0].content[0].type"),
        ({"stop_token_ids": [10_000_000]}, "stop_token_ids"),
    ],
)
def test_chat_bad_params_name_the_param(server, model_id, extra, param):
    e = error_of(post(server, "/v1/chat/completions", chat_body(model_id, **extra)), 400)
    assert e["type"] == "invalid_request_error"
    assert e["param"] == param, e


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"best_of": 2}, "best_of"),
        ({"suffix": "tail"}, "suffix"),
        ({"logprobs": 21}, "logprobs"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": [10_000_000]}, "prompt"),
        ({"messages": MSG}, "messages"),
    ],
)
def test_completion_bad_params_name_the_param(server, model_id, extra, param):
    body = {"model": model_id, "prompt": "x", "max_tokens": 2, **extra}
    e = error_of(post(server, "/v1/completions", body), 400)
    assert e["param"] == param, e


def test_sdk_raises_bad_request_with_param(client, model_id):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model_id, messages=MSG, extra_body={"frobnicate": True})
    assert info.value.status_code == 400
    assert info.value.body["param"] == "frobnicate"


def test_malformed_json(server):
    e = error_of(post(server, "/v1/chat/completions", None, raw='{"model": "x", '), 400)
    assert e["code"] == "invalid_json" and e["param"] is None


def test_wrong_content_type(server, model_id):
    r = requests.post(server.base + "/v1/chat/completions", data=json.dumps(chat_body(model_id)),
                      headers={"Content-Type": "text/plain"}, timeout=30)
    assert error_of(r, 415)["code"] == "unsupported_media_type"


def test_body_over_16_mib(server, model_id):
    big = {"model": model_id, "messages": [{"role": "user", "content": "a" * (16 * 1024 * 1024 + 10)}]}
    assert error_of(post(server, "/v1/chat/completions", big), 413)["code"] == "payload_too_large"


def test_unknown_model(server, client):
    e = error_of(post(server, "/v1/chat/completions", chat_body("no-such-model")), 404)
    assert (e["param"], e["code"]) == ("model", "model_not_found")
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-model", prompt="x", max_tokens=1)
    assert error_of(requests.get(server.base + "/v1/models/no-such-model", timeout=10), 404)["code"] == "model_not_found"


def test_missing_model(server):
    e = error_of(post(server, "/v1/chat/completions", {"messages": MSG}), 400)
    assert e["param"] == "model"


def test_context_length_exceeded(server, model_id):
    max_len = requests.get(server.base + "/v1/models", timeout=10).json()["data"][0]["max_model_len"]
    e = error_of(post(server, "/v1/chat/completions", chat_body(model_id, max_tokens=max_len)), 400)
    assert e["code"] == "context_length_exceeded" and e["param"] == "messages"
    long_prompt = "hello " * (max_len + 10)
    e = error_of(post(server, "/v1/completions", {"model": model_id, "prompt": long_prompt, "max_tokens": 1}), 400)
    assert e["code"] == "context_length_exceeded" and e["param"] == "prompt"


def test_method_not_allowed(server):
    r = requests.get(server.base + "/v1/chat/completions", timeout=10)
    e = error_of(r, 405)
    assert r.headers["Allow"] == "POST"
    assert e["code"] == "method_not_allowed"
    r = requests.post(server.base + "/v1/models", json={}, timeout=10)
    error_of(r, 405)
    assert "GET" in r.headers["Allow"]


def test_unknown_route(server):
    assert error_of(requests.get(server.base + "/v1/nothing", timeout=10), 404)["code"] == "unknown_url"


def test_auth(auth_server, model_id):
    url = auth_server.base + "/v1/chat/completions"
    body = json.dumps(chat_body(model_id))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        r = requests.post(url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=30)
        e = error_of(r, 401)
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert e["type"] == "authentication_error" and e["code"] == "invalid_api_key"
    for path in ("/v1/models", "/metrics", "/v1/stats"):
        error_of(requests.get(auth_server.base + path, timeout=10), 401)
        assert requests.get(auth_server.base + path, headers=auth_server.headers(), timeout=10).status_code == 200
    for path in ("/healthz", "/readyz"):
        assert requests.get(auth_server.base + path, timeout=10).status_code == 200
    ok = auth_server.client().chat.completions.create(model=model_id, messages=MSG, max_tokens=2)
    assert ok.choices
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=auth_server.base + "/v1", api_key="nope", max_retries=0).models.list()


def test_overload_is_429_with_retry_after(make_server, model_id):
    """One running sequence, one waiting slot: a third request is refused."""
    s = make_server(["--max-num-seqs", "1", "--max-waiting-requests", "1"])
    c = s.client()
    # Long enough that the first request is still running when the third arrives, even on a GPU
    # (SmolLM2 decodes ~700 tok/s there); the streams are closed (aborted) at the end.
    long = dict(model=model_id, messages=MSG, max_tokens=3000, stream=True, extra_body={"ignore_eos": True})
    streams = []
    threads = []

    def hold():
        # The test closes the streams (and stops the server) under these readers: a waiting
        # request may not even have its response yet.
        try:
            stream = c.chat.completions.create(**long)
            streams.append(stream)
            for _ in stream:
                pass
        except Exception:  # noqa: BLE001
            pass

    def start_and_wait_for(stat):
        # One request at a time: two sent together race for the single waiting slot (the
        # second is refused while the first is still waiting to be admitted).
        t = threading.Thread(target=hold, daemon=True)
        t.start()
        threads.append(t)
        deadline = time.time() + 60
        while time.time() < deadline and s.stats()[stat] < 1:
            time.sleep(0.02)
        assert s.stats()[stat] >= 1, stat

    start_and_wait_for("running_requests")
    start_and_wait_for("waiting_requests")
    r = post(s, "/v1/chat/completions", chat_body(model_id))
    e = error_of(r, 429)
    assert r.headers["Retry-After"].isdigit()
    assert e["code"] == "rate_limit_exceeded"
    for stream in streams:
        stream.close()
