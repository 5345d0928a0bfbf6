#!/usr/bin/env python3
"""Greedy-generation reference for crates/engine/tests/smollm2_hf_parity.rs, made by HF transformers.

Regenerate (needs transformers>=5, torch, gguf, accelerate, and the SmolLM2 GGUF from scripts/fetch-test-assets.sh):
    /tmp/ref/venv/bin/python scripts/make_smollm2_reference.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Loads the GGUF in transformers (weights dequantized to float32, tokenizer converted from the GGUF metadata),
renders each chat case with the GGUF's chat template (add_generation_prompt=True), tokenizes it without
special tokens, and greedy-decodes up to MAX_NEW_TOKENS tokens one step at a time (stopping after EOS, as
`generate` does). Per step it records the chosen id, the top-2 logit margin and the top-5 ids/logits, so the
Rust test can tell steps where the argmax is decided by a near-tie (activation precision) from real mismatches.

Writes crates/engine/tests/fixtures/smollm2/hf_greedy.json.
"""

import importlib.metadata
import json
import os
import platform
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "engine", "tests", "fixtures", "smollm2", "hf_greedy.json")
GGUF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
MAX_NEW_TOKENS = 48
TOP_K = 5

CASES = [
    ("capital", [{"role": "user", "content": "What is the capital of France?"}]),
    ("photosynthesis", [{"role": "user", "content": "Explain photosynthesis in two sentences."}]),
    ("python_code", [{"role": "user", "content": "Write a Python function that returns the sum of a list."}]),
    (
        "system_pirate",
        [
            {"role": "system", "content": "You are a pirate. Always answer like a pirate."},
            {"role": "user", "content": "How do I make a cup of tea?"},
        ],
    ),
    (
        "multi_turn",
        [
            {"role": "user", "content": "My name is Alice and I like cats."},
            {"role": "assistant", "content": "Nice to meet you, Alice! Cats are wonderful companions."},
            {"role": "user", "content": "What is my name, and which animal do I like?"},
        ],
    ),
    ("unicode", [{"role": "user", "content": "Translate to English: « Où est la gare ? » 🚂 Merci beaucoup !"}]),
    ("math", [{"role": "user", "content": "What is 12 times 7? Show your reasoning."}]),
    ("story", [{"role": "user", "content": "Tell me a short story about a robot who learns to paint."}]),
]


def main():
    directory, name = os.path.split(os.path.abspath(GGUF))
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.eval()
    eos_ids = model.generation_config.eos_token_id
    if eos_ids is None:
        eos_ids = tokenizer.eos_token_id
    eos_ids = sorted({eos_ids} if isinstance(eos_ids, int) else set(eos_ids))

    cases = []
    for case_name, messages in CASES:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        steps = []
        with torch.no_grad():
            out = model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
            for _ in range(MAX_NEW_TOKENS):
                logits = out.logits[0, -1].float()
                top = torch.topk(logits, TOP_K)
                token = int(top.indices[0])
                steps.append(
                    {
                        "id": token,
                        "margin": float(top.values[0] - top.values[1]),
                        "top_ids": [int(i) for i in top.indices],
                        "top_logits": [round(float(v), 5) for v in top.values],
                    }
                )
                if token in eos_ids:
                    break
                out = model(
                    input_ids=torch.tensor([[token]]),
                    past_key_values=out.past_key_values,
                    use_cache=True,
                )
        generated = [s["id"] for s in steps]
        print(f"{case_name}: {len(prompt_ids)} prompt ids -> {tokenizer.decode(generated)!r}")
        cases.append(
            {
                "name": case_name,
                "messages": messages,
                "prompt_text": text,
                "prompt_ids": prompt_ids,
                "generated_ids": generated,
                "generated_text": tokenizer.decode(generated, skip_special_tokens=True),
                "stopped_at_eos": bool(generated and generated[-1] in eos_ids),
                "steps": steps,
            }
        )

    fixture = {
        "meta": {
            "model_file": name,
            "dtype": "float32",
            "max_new_tokens": MAX_NEW_TOKENS,
            "eos_token_ids": eos_ids,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "gguf": importlib.metadata.version("gguf"),
            "accelerate": importlib.metadata.version("accelerate"),
            "python": platform.python_version(),
            "generator": "scripts/make_smollm2_reference.py",
        },
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
