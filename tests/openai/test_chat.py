"""Chat completions through the official openai SDK: plain, streaming, n, stop, logprobs, seeds."""

import math

MESSAGES = [{"role": "user", "content": "Name three colors of the rainbow."}]


def greedy(client, model_id, **kw):
    args = dict(model=model_id, messages=MESSAGES, temperature=0, max_tokens=24)
    args.update(kw)
    return client.chat.completions.create(**args)


def test_chat_basic(client, model_id):
    r = greedy(client, model_id)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == model_id
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0 and c.message.role == "assistant"
    assert c.message.content and isinstance(c.message.content, str)
    assert c.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0
    assert 0 < r.usage.completion_tokens <= 24
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens >= 0


def test_chat_max_tokens_gives_length(client, model_id):
    r = greedy(client, model_id, max_tokens=3, extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    r2 = greedy(client, model_id, max_tokens=None, max_completion_tokens=3, extra_body={"ignore_eos": True})
    assert r2.usage.completion_tokens == 3
    assert r2.choices[0].message.content == r.choices[0].message.content


def test_chat_stream_matches_non_stream(client, model_id):
    full = greedy(client, model_id)
    chunks = list(greedy(client, model_id, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [full.choices[0].finish_reason]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
    assert usage_chunks[0].usage.completion_tokens == full.usage.completion_tokens
    assert all(c.id == chunks[0].id and c.object == "chat.completion.chunk" for c in chunks)


def test_chat_stream_without_usage_has_no_usage_chunk(client, model_id):
    chunks = list(greedy(client, model_id, stream=True, max_tokens=4))
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_chat_n2(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=MESSAGES, n=2, temperature=1.0, seed=7, max_tokens=16)
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert 2 <= r.usage.completion_tokens <= 32
    assert r.choices[0].message.content != r.choices[1].message.content
    stream = client.chat.completions.create(
        model=model_id, messages=MESSAGES, n=2, temperature=1.0, seed=7, max_tokens=16, stream=True
    )
    texts = {0: "", 1: ""}
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
    assert texts == {c.index: c.message.content for c in r.choices}


def test_chat_stop_string(client, model_id):
    full = greedy(client, model_id, max_tokens=32).choices[0].message.content
    words = [w for w in full.split() if len(w) > 2]
    assert len(words) >= 2, full
    stop = words[1]
    r = greedy(client, model_id, max_tokens=32, stop=[stop, "zzqx"])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == full[: full.index(stop)]


def test_chat_logprobs(client, model_id):
    r = greedy(client, model_id, max_tokens=8, logprobs=True, top_logprobs=3, extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens == 8
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        tops = [t.logprob for t in entry.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        # Greedy: the chosen token is the most likely one.
        assert entry.token == entry.top_logprobs[0].token
        assert math.isclose(entry.logprob, tops[0], abs_tol=1e-4)
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token or entry.token.startswith("bytes:")
    assert "".join(e.token for e in content) == r.choices[0].message.content
    none = greedy(client, model_id, max_tokens=4)
    assert none.choices[0].logprobs is None


def test_chat_seed_reproducible(client, model_id):
    def sample(seed):
        return client.chat.completions.create(
            model=model_id, messages=MESSAGES, temperature=1.0, seed=seed, max_tokens=24,
            extra_body={"ignore_eos": True},
        ).choices[0].message.content

    a, b = sample(1234), sample(1234)
    assert a == b
    assert any(sample(s) != a for s in (1, 2, 3))


def test_chat_extra_sampling_params(client, model_id):
    r = greedy(client, model_id, max_tokens=8, extra_body={"top_k": 1, "min_p": 0.1, "repetition_penalty": 1.1,
                                                            "stop_token_ids": [0]}, user="someone")
    assert r.choices[0].message.content is not None


def test_chat_multi_turn_with_system_and_parts(client, model_id):
    r = client.chat.completions.create(
        model=model_id, temperature=0, max_tokens=8,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Count to three."},
        ],
    )
    assert r.usage.prompt_tokens > 10
