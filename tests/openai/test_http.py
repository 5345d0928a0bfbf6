"""Plain HTTP surface: models list, health/readiness, X-Request-Id, /metrics and /v1/stats."""

import re

import requests


def test_models_list(server, client, model_id):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids == [model_id]
    r = requests.get(server.base + "/v1/models", timeout=10).json()
    assert r["object"] == "list" and r["data"][0]["object"] == "model"
    assert r["data"][0]["max_model_len"] > 0
    assert client.models.retrieve(model_id).id == model_id


def test_health_and_ready(server):
    assert requests.get(server.base + "/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(server.base + "/readyz", timeout=10).json() == {"status": "ready"}


def test_request_id(server, model_id):
    r = requests.get(server.base + "/v1/models", headers={"X-Request-Id": "abc-123_x.y"}, timeout=10)
    assert r.headers["X-Request-Id"] == "abc-123_x.y"
    generated = requests.get(server.base + "/v1/models", headers={"X-Request-Id": "bad id!"}, timeout=10)
    rid = generated.headers["X-Request-Id"]
    assert rid != "bad id!" and re.fullmatch(r"[A-Za-z0-9._-]{1,128}", rid)
    too_long = requests.get(server.base + "/healthz", headers={"X-Request-Id": "a" * 129}, timeout=10)
    assert too_long.headers["X-Request-Id"] != "a" * 129
    for r in (requests.get(server.base + "/nope", timeout=10),
              requests.post(server.base + "/v1/chat/completions", json={"model": model_id,
                            "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}, timeout=60)):
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", r.headers["X-Request-Id"])


METRIC_NAMES = [
    "arle_http_requests_total",
    "arle_time_to_first_token_seconds_bucket",
    "arle_inter_token_latency_seconds_bucket",
    "arle_e2e_request_latency_seconds_count",
    "arle_num_requests_waiting",
    "arle_num_requests_running",
    "arle_kv_blocks_used",
    "arle_kv_blocks_free",
    "arle_prefix_cache_hit_tokens_total",
]


def metric(text, name):
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def test_metrics(server, client, model_id):
    client.completions.create(model=model_id, prompt="Hello", max_tokens=4, temperature=0,
                              extra_body={"ignore_eos": True})
    r = requests.get(server.base + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    for name in METRIC_NAMES:
        assert name in r.text, name
    assert metric(r.text, "arle_e2e_request_latency_seconds_count") >= 1
    assert metric(r.text, "arle_inter_token_latency_seconds_count") >= 3
    assert re.search(r'arle_http_requests_total\{route="/v1/completions",method="POST",status="200"\} [1-9]', r.text)


def test_stats(server):
    s = server.stats()
    for key in ("waiting_requests", "running_requests", "kv_blocks_total", "kv_blocks_free", "kv_blocks_used",
                "kv_blocks_cached", "prefix_cache_hit_tokens_total", "model", "ready"):
        assert key in s, key
    assert s["kv_blocks_total"] > 0 and s["ready"] is True
