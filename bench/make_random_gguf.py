#!/usr/bin/env python3
"""A GGUF file of random weights at the shapes of an HF `config.json`, for the llama.cpp peer.

The llama.cpp peer of `bench/gpu_bench.sh` needs the same shapes as our `--load-format dummy`
models, as GGUF. This writes one from the config alone with the `gguf` package (llama.cpp's own
writer): architecture `llama` (LlamaForCausalLM) or `qwen3` (Qwen3ForCausalLM), 2-D weights in
F16 or BF16 (2 bytes each, as our bf16), 1-D norm weights in F32 (as llama.cpp's converter
writes them), and a SentencePiece-style vocabulary of placeholder tokens (the three specials,
the 256 byte tokens llama.cpp looks up, then `t<i>`) so the file loads; benchmarks feed token
ids, never text.

Invariants: tensor names and shapes are the ones llama.cpp's loader checks for the
architecture; values are seeded (normal * 0.02, norms 1.0), so the file is reproducible. Llama 3
RoPE scaling is left out (`rope_freqs` changes no cost). Memory: the tensors are written one at
a time from a repeated random block, so peak memory is about one tensor.

    python3 bench/make_random_gguf.py CONFIG_DIR_OR_JSON OUT.gguf [--type f16|bf16]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

try:
    import gguf
except ImportError:  # the GPU machine has no network: bench/gpu_bench.sh carries the wheel
    sys.exit("make_random_gguf.py needs the `gguf` package (pip install gguf)")

ARCHS = {"LlamaForCausalLM": "llama", "Qwen3ForCausalLM": "qwen3"}
BLOCK = 1 << 22  # elements of the random block every tensor repeats


def load_config(path: Path) -> dict:
    if path.is_dir():
        path = path / "config.json"
    return json.loads(path.read_text())


class Weights:
    """Seeded random tensors in the file's 2-byte type, one at a time."""

    def __init__(self, dtype: str, seed: int = 0):
        rng = np.random.default_rng(seed)
        block = (rng.standard_normal(BLOCK, dtype=np.float32) * 0.02).astype(np.float32)
        if dtype == "f16":
            self.block = block.astype(np.float16)
            self.qtype = gguf.GGMLQuantizationType.F16
        else:  # bf16: the top 16 bits of the f32 (values are small; truncation is fine here)
            self.block = (block.view(np.uint32) >> 16).astype(np.uint16)
            self.qtype = gguf.GGMLQuantizationType.BF16

    def matrix(self, rows: int, cols: int) -> np.ndarray:
        n = rows * cols
        reps = -(-n // BLOCK)
        return np.tile(self.block, reps)[:n].reshape(rows, cols)


def vocabulary(n: int) -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256  # UNKNOWN, CONTROL, CONTROL, BYTE
    if n < len(tokens):
        raise SystemExit(f"vocab_size {n} is smaller than the {len(tokens)} fixed tokens")
    tokens += [f"t{i}" for i in range(len(tokens), n)]
    types += [1] * (n - len(types))  # NORMAL
    return tokens, [0.0] * n, types


def write(config: dict, out: Path, dtype: str) -> None:
    arch_name = (config.get("architectures") or [""])[0]
    arch = ARCHS.get(arch_name)
    if arch is None:
        raise SystemExit(f"unsupported architecture {arch_name!r} (known: {sorted(ARCHS)})")
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim") or hidden // heads
    ffn = config["intermediate_size"]
    layers = config["num_hidden_layers"]
    vocab = config["vocab_size"]
    tied = config.get("tie_word_embeddings", False)

    w = gguf.GGUFWriter(str(out), arch)
    w.add_name(f"random {arch_name} ({out.stem})")
    w.add_context_length(config.get("max_position_embeddings", 4096))
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    w.add_vocab_size(vocab)
    w.add_file_type(1 if dtype == "f16" else 32)  # MOSTLY_F16 / MOSTLY_BF16
    tokens, scores, types = vocabulary(vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    rnd = Weights(dtype)
    # numpy shape (rows, cols) = HF [out_features, in_features]; gguf reverses it on disk.
    tensors: list[tuple[str, int, int | None]] = [("token_embd.weight", vocab, hidden)]
    for i in range(layers):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_q.weight", heads * head_dim, hidden),
            (p + "attn_k.weight", kv_heads * head_dim, hidden),
            (p + "attn_v.weight", kv_heads * head_dim, hidden),
            (p + "attn_output.weight", hidden, heads * head_dim),
            (p + "ffn_gate.weight", ffn, hidden),
            (p + "ffn_up.weight", ffn, hidden),
            (p + "ffn_down.weight", hidden, ffn),
            (p + "attn_norm.weight", hidden, None),
            (p + "ffn_norm.weight", hidden, None),
        ]
        if arch == "qwen3":
            tensors += [(p + "attn_q_norm.weight", head_dim, None),
                        (p + "attn_k_norm.weight", head_dim, None)]
    tensors.append(("output_norm.weight", hidden, None))
    if not tied:
        tensors.append(("output.weight", vocab, hidden))

    # Headers first (shapes only), then each tensor's bytes streamed in order.
    for name, rows, cols in tensors:
        if cols is None:
            w.add_tensor_info(name, (rows,), np.dtype(np.float32), rows * 4,
                              raw_dtype=gguf.GGMLQuantizationType.F32)
        else:
            w.add_tensor_info(name, (rows, cols), np.dtype(np.float16), rows * cols * 2,
                              raw_dtype=rnd.qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, rows, cols in tensors:
        norm = cols is None
        w.write_tensor_data(np.ones(rows, dtype=np.float32) if norm else rnd.matrix(rows, cols))
    w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path, help="model folder with config.json, or the json itself")
    ap.add_argument("out", type=Path)
    ap.add_argument("--type", choices=["f16", "bf16"], default="f16")
    a = ap.parse_args()
    write(load_config(a.config), a.out, a.type)
    print(f"wrote {a.out} ({a.out.stat().st_size / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
