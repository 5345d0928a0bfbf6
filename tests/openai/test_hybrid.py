"""Hybrid-model (Qwen3.5: Gated DeltaNet + gated attention) prefix reuse through the server.

The tiny random-weight qwen3_5 golden checkpoint (vocab 512) is served with the SmolLM2 tokenizer
files beside it; prompts are token ids < 512 sent to /v1/completions, so the tokenizer only
detokenizes. A two-turn conversation (turn 2 extends turn 1's prompt) must report cached tokens on
turn 2 for a prompt well under 528 tokens, and give the same greedy output as a server with prefix
caching off.
"""

import random
import shutil

import pytest

from conftest import ROOT

GOLDEN = ROOT / "crates/models/tests/fixtures/golden/qwen3_5"
TOKENIZER = ROOT / "crates/engine/tests/fixtures/tokenizer/smollm2_hf"


@pytest.fixture(scope="module")
def hybrid_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("qwen3_5_tiny")
    for f in ("config.json", "model.safetensors"):
        shutil.copy(GOLDEN / f, d / f)
    for f in TOKENIZER.iterdir():
        shutil.copy(f, d / f.name)
    return d


def complete(client, model, prompt_ids, n_tokens=16):
    r = client.completions.create(model=model, prompt=prompt_ids, max_tokens=n_tokens, temperature=0)
    return r.choices[0].text, r.usage


def test_two_turn_conversation_reuses_the_hybrid_state(make_server, hybrid_model):
    rng = random.Random(7)
    turn1 = [rng.randrange(3, 512) for _ in range(150)]
    turn2 = turn1 + [rng.randrange(3, 512) for _ in range(90)]
    assert len(turn2) < 528

    warm = make_server(model=hybrid_model)
    model = warm.client().models.list().data[0].id
    _, usage1 = complete(warm.client(), model, turn1)
    text2, usage2 = complete(warm.client(), model, turn2)
    cached = usage2.prompt_tokens_details.cached_tokens
    assert usage1.prompt_tokens_details.cached_tokens == 0
    assert cached >= 128, f"turn 2 should resume from a snapshot, got {cached} cached tokens"
    assert cached % 16 == 0 and cached < len(turn2)

    cold = make_server(["--no-prefix-caching"], model=hybrid_model)
    cold_text, cold_usage = complete(cold.client(), model, turn2)
    assert cold_usage.prompt_tokens_details.cached_tokens == 0
    assert text2 == cold_text
