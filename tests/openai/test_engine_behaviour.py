"""Serving behaviour that needs the real engine: disconnect frees KV pages, prefix reuse,
batch invariance, graceful shutdown."""

import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import requests

LONG_PREFIX = " ".join(f"Fact {i}: the number {i} squared is {i * i}." for i in range(60))


def wait_idle(server, timeout_s=20):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        s = server.stats()
        if s["running_requests"] == 0 and s["waiting_requests"] == 0:
            return s
        time.sleep(0.05)
    raise AssertionError(f"engine still busy: {server.stats()}")


def pages_held(stats):
    """Pages held by requests. `kv_blocks_cached` pages keep reusable prefixes but belong to no
    request; they count as not held whether or not the engine includes them in `kv_blocks_free`."""
    used = stats["kv_blocks_total"] - stats["kv_blocks_free"]
    return 0 if used in (0, stats["kv_blocks_cached"]) else used


def test_disconnect_frees_pages(server, client, model_id):
    before = wait_idle(server)
    stream = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Tell me a long story."}],
        max_tokens=2000, stream=True, extra_body={"ignore_eos": True},
    )
    got = 0
    for chunk in stream:
        got += 1
        if got >= 5:
            break
    mid = server.stats()
    assert mid["running_requests"] >= 1
    assert mid["kv_blocks_total"] - mid["kv_blocks_free"] > 0
    assert mid["kv_blocks_total"] == before["kv_blocks_total"]
    stream.close()
    after = wait_idle(server)
    assert pages_held(after) == 0, after


def test_prefix_reuse(server, client, model_id):
    messages = [{"role": "system", "content": LONG_PREFIX}, {"role": "user", "content": "What is 7 squared?"}]
    hits_before = _hit_tokens(server)
    first = client.chat.completions.create(model=model_id, messages=messages, temperature=0, max_tokens=16)
    second = client.chat.completions.create(model=model_id, messages=messages, temperature=0, max_tokens=16)
    assert first.usage.prompt_tokens > 256
    assert second.usage.prompt_tokens_details.cached_tokens > 0
    assert second.choices[0].message.content == first.choices[0].message.content
    other = client.chat.completions.create(
        model=model_id, messages=[messages[0], {"role": "user", "content": "What is 9 squared?"}],
        temperature=0, max_tokens=4)
    assert other.usage.prompt_tokens_details.cached_tokens > 200
    assert _hit_tokens(server) >= hits_before + second.usage.prompt_tokens_details.cached_tokens


def _hit_tokens(server):
    text = requests.get(server.base + "/metrics", timeout=10).text
    return float(re.search(r"^arle_prefix_cache_hit_tokens_total (\S+)$", text, re.M).group(1))


PROMPTS = [
    "The quick brown fox",
    "Once upon a time",
    "def fibonacci(n):",
    "The three primary colors are",
    "In 1492, Columbus",
    "Water boils at",
    "My favourite food is",
    "import numpy as np\n",
]


def test_batch_invariance(client, model_id):
    def run(prompt):
        r = client.completions.create(model=model_id, prompt=prompt, temperature=0, max_tokens=24,
                                      extra_body={"ignore_eos": True})
        return r.choices[0].text

    alone = [run(p) for p in PROMPTS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(run, PROMPTS))
    assert together == alone


def test_sigterm_with_stream_in_flight_exits_zero(make_server, model_id):
    s = make_server()
    stream = s.client().chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Count forever."}], max_tokens=3000,
        stream=True, extra_body={"ignore_eos": True})
    it = iter(stream)
    next(it)
    s.proc.send_signal(signal.SIGTERM)
    try:
        code = s.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("infer did not exit within 30 s of SIGTERM")
    assert code == 0
    try:
        requests.get(s.base + "/healthz", timeout=2)
        raise AssertionError("server still answering after SIGTERM")
    except requests.ConnectionError:
        pass
