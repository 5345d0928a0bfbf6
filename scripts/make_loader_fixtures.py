#!/usr/bin/env python3
"""Fixtures for crates/models/tests/loader_*.rs (GGUF reader and GGUF->HF weight mapping).

Regenerate (needs numpy, gguf==0.19, transformers==5.24 and the SmolLM2 GGUF from
scripts/fetch-test-assets.sh):
    python scripts/make_loader_fixtures.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes into crates/models/tests/fixtures/loader/:
- all_types.gguf + all_types.json: a small GGUF written by the reference `gguf` writer with every
  metadata value type (incl. nested arrays), custom alignment and F32/F16/BF16/Q8_0 tensors; the
  json holds the written values and the tensor directory/values as read back by `gguf.GGUFReader`.
- hf_configs.json: config.json variants (legacy rope_theta/rope_scaling incl. the `type` alias,
  v5 rope_parameters, eos lists, defaults) and the fields transformers' config classes derive.
- smollm2_qk_rows.json: rows of blk.{0,29}.attn_{q,k}.weight from the real SmolLM2 GGUF,
  dequantised by `gguf.quants.dequantize` and un-permuted by transformers'
  `LlamaTensorProcessor._reverse_permute_weights` (HF's own GGUF loader), i.e. the HF q_proj/k_proj rows.
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGUFValueType as VT
from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates", "models", "tests", "fixtures", "loader")


def write_all_types():
    path = os.path.join(OUT, "all_types.gguf")
    w = gguf.GGUFWriter(path, arch="testarch")
    w.data_alignment = 64
    w.add_uint32("general.alignment", 64)
    kv = [
        ("t.u8", 200, VT.UINT8, None),
        ("t.i8", -100, VT.INT8, None),
        ("t.u16", 60000, VT.UINT16, None),
        ("t.i16", -30000, VT.INT16, None),
        ("t.u32", 4000000000, VT.UINT32, None),
        ("t.i32", -2000000000, VT.INT32, None),
        ("t.u64", 18446744073709551615, VT.UINT64, None),
        ("t.i64", -9223372036854775808, VT.INT64, None),
        ("t.f32", -2.5, VT.FLOAT32, None),
        ("t.f64", 2.86102294921875e-06, VT.FLOAT64, None),
        ("t.bool_true", True, VT.BOOL, None),
        ("t.bool_false", False, VT.BOOL, None),
        ("t.string", "h\u00e9llo w\u00f6rld \u2603", VT.STRING, None),
        ("t.empty_string", "", VT.STRING, None),
        ("t.arr_u32", [1, 2, 4294967295], VT.ARRAY, VT.UINT32),
        ("t.arr_i64", [-1, 0, 7], VT.ARRAY, VT.INT64),
        ("t.arr_f32", [0.5, -0.25, 1024.0], VT.ARRAY, VT.FLOAT32),
        ("t.arr_bool", [True, False, True], VT.ARRAY, VT.BOOL),
        ("t.arr_str", ["a", "", "\u00fcber", "<|im_end|>"], VT.ARRAY, VT.STRING),
        ("t.nested", [[1, 2], [3], [-4, 5, 6]], VT.ARRAY, VT.ARRAY),
    ]
    for key, val, vt, sub in kv:
        w.add_key_value(key, val, vt, sub_type=sub)
    rng = np.random.default_rng(0)
    a = (rng.integers(-64, 64, size=(3, 4)) / 8).astype(np.float32)
    b = (rng.integers(-64, 64, size=(2, 32)) / 8).astype(np.float16)
    c = (rng.integers(-64, 64, size=(2, 64)) / 8).astype(np.float32)
    d = (rng.integers(-64, 64, size=(4, 3, 2)) / 8).astype(np.float32)
    w.add_tensor("a.weight", a)
    w.add_tensor("b.weight", b)
    w.add_tensor("c.q8_0", gguf.quants.quantize(c, gguf.GGMLQuantizationType.Q8_0),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("d.bf16", gguf.quants.quantize(d, gguf.GGMLQuantizationType.BF16),
                 raw_dtype=gguf.GGMLQuantizationType.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    r = gguf.GGUFReader(path)
    # Check the reader agrees with what we wrote (flat values), so the json is trustworthy.
    for key, val, vt, sub in kv:
        if key == "t.nested":
            continue
        got = r.fields[key].contents()
        assert got == val, (key, got, val)
    tensors = []
    for t in r.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float32)
        tensors.append({
            "name": t.name,
            "shape": [int(x) for x in reversed(t.shape.tolist())],
            "type_id": int(t.tensor_type),
            "offset": int(t.data_offset),
            "num_bytes": int(t.n_bytes),
            "values": [float(x) for x in values],
        })
    meta = [{"key": k, "type": vt.name, "sub_type": sub.name if sub else None, "value": v}
            for k, v, vt, sub in kv]
    # The writer infers the element type of nested arrays from the Python values.
    for m in meta:
        if m["sub_type"] == "ARRAY":
            m["inner_sub_type"] = VT.get_type(m["value"][0][0]).name
    with open(os.path.join(OUT, "all_types.json"), "w") as f:
        json.dump({"version": 3, "alignment": 64, "metadata": meta, "tensors": tensors}, f, indent=1)


def write_qk_rows(gguf_path):
    r = gguf.GGUFReader(gguf_path)
    n_head = int(r.fields["llama.attention.head_count"].contents())
    n_kv = int(r.fields["llama.attention.head_count_kv"].contents())
    proc = LlamaTensorProcessor(config={"num_attention_heads": n_head, "num_key_value_heads": n_kv})
    by_name = {t.name: t for t in r.tensors}
    out = []
    for layer in (0, 29):
        for part, hf in (("attn_q", "q_proj"), ("attn_k", "k_proj")):
            name = f"blk.{layer}.{part}.weight"
            t = by_name[name]
            w = gguf.quants.dequantize(t.data, t.tensor_type)  # [rows, cols]
            w = proc.process(w, name).weights
            rows = sorted({0, 1, 2, 31, 32, 33, 63, 64, 65, 127, w.shape[0] - 1})
            out.append({
                "hf_name": f"model.layers.{layer}.self_attn.{hf}.weight",
                "shape": list(w.shape),
                "rows": {str(i): [float(x) for x in w[i].astype(np.float32)] for i in rows},
            })
    with open(os.path.join(OUT, "smollm2_qk_rows.json"), "w") as f:
        json.dump(out, f)


CONFIG_CASES = {
    "smollm2_135m": {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 49152,
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "hidden_act": "silu",
        "rms_norm_eps": 1e-05, "rope_theta": 100000, "rope_scaling": None,
        "tie_word_embeddings": True, "max_position_embeddings": 8192, "bos_token_id": 1,
        "eos_token_id": 2, "pad_token_id": 2, "torch_dtype": "bfloat16",
    },
    "llama_minimal": {"model_type": "llama"},
    "llama_linear_type_alias": {
        "model_type": "llama", "hidden_size": 256, "num_attention_heads": 4,
        "rope_theta": 5000.0, "rope_scaling": {"type": "linear", "factor": 2.0},
    },
    "llama3_scaled": {
        "model_type": "llama", "hidden_size": 512, "num_attention_heads": 8,
        "num_key_value_heads": 2, "head_dim": 64, "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "max_position_embeddings": 131072, "eos_token_id": [128001, 128008, 128009],
        "bos_token_id": 128000, "attention_bias": True, "mlp_bias": True,
    },
    "qwen3_v5_yarn": {
        "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024,
        "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
        "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-06,
        "rope_parameters": {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                            "original_max_position_embeddings": 32768},
        "max_position_embeddings": 40960, "tie_word_embeddings": True,
        "bos_token_id": 151643, "eos_token_id": 151645,
    },
    "qwen3_minimal": {"model_type": "qwen3"},
}


def write_hf_configs():
    from transformers import CONFIG_MAPPING
    out = {}
    for name, d in CONFIG_CASES.items():
        c = CONFIG_MAPPING[d["model_type"]](**{k: v for k, v in d.items() if k != "model_type"})
        eos = c.eos_token_id
        out[name] = {
            "config_json": d,
            "hf": {
                "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
                "intermediate_size": c.intermediate_size,
                "num_hidden_layers": c.num_hidden_layers,
                "num_attention_heads": c.num_attention_heads,
                "num_key_value_heads": c.num_key_value_heads, "head_dim": c.head_dim,
                "rms_norm_eps": c.rms_norm_eps, "rope_parameters": dict(c.rope_parameters),
                "tie_word_embeddings": c.tie_word_embeddings,
                "attention_bias": c.attention_bias, "mlp_bias": getattr(c, "mlp_bias", False),
                "max_position_embeddings": c.max_position_embeddings,
                "bos_token_id": c.bos_token_id,
                "eos_token_ids": [] if eos is None else (eos if isinstance(eos, list) else [eos]),
            },
        }
    with open(os.path.join(OUT, "hf_configs.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write_all_types()
    write_hf_configs()
    default = os.path.join(HERE, "..", ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    write_qk_rows(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ARLE_SMOLLM2_GGUF", default))
