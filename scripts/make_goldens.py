#!/usr/bin/env python3
"""Golden fixtures for the Rust model tests (MODEL-SPECS §9): tiny random HF checkpoints + reference
activations/logits, plus RoPE inverse frequencies for every scaling type we implement.

Regenerate (CPU, transformers 5.24.0, torch 2.x, no fla / causal-conv1d installed):
    /tmp/ref/venv/bin/python scripts/make_goldens.py crates/models/tests/fixtures/golden
(an optional second argument, e.g. `qwen3_5,qwen3_5_moe`, regenerates only those models)

Writes, per model in {llama, qwen3, qwen3_5, qwen3_5_moe}:
    <out>/<model>/config.json, model.safetensors   (f32 checkpoint, save_pretrained)
    <out>/<model>/golden_f32.safetensors            (see README.md beside the fixtures)
    <out>/<model>/golden_bf16.safetensors           (logits only, from a bf16 reload)
and <out>/rope_inv_freq.json (inv_freq for default/linear/llama3/yarn configs).
The hybrid models (qwen3_5, qwen3_5_moe) also dump the Gated DeltaNet states after the prefill P
(`cache.{i}.conv_state` [1, conv_dim, K], `cache.{i}.recurrent_state` [1, Hv, Dk, Dv]) and the
linear-attention / MoE module activations of MODEL-SPECS §9.3.
"""

import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    DynamicCache,
    LlamaConfig,
    Qwen3_5MoeTextConfig,
    Qwen3_5TextConfig,
    Qwen3Config,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

T = 150  # tokens in the golden prompt
P = 100  # prefill length before decode / continuation
SEED = 1234

CONFIGS = {
    "llama": lambda: LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        max_position_embeddings=1024,
    ),
    "qwen3": lambda: Qwen3Config(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        rms_norm_eps=1e-6,
        rope_theta=1e6,
        tie_word_embeddings=True,
    ),
}

# Hybrid models (MODEL-SPECS §9.1): Gated DeltaNet + gated attention (+ MoE).
HYBRID_COMMON = dict(
    vocab_size=512,
    hidden_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    rms_norm_eps=1e-6,
    linear_num_key_heads=2,
    linear_num_value_heads=4,
    linear_key_head_dim=16,
    linear_value_head_dim=24,
    linear_conv_kernel_dim=4,
    tie_word_embeddings=False,
)
HYBRID_ROPE = {"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25,
               "mrope_section": [2, 1, 1], "mrope_interleaved": True}
CONFIGS["qwen3_5"] = lambda: Qwen3_5TextConfig(
    **HYBRID_COMMON,
    intermediate_size=128,
    layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
    rope_parameters=dict(HYBRID_ROPE),
)
CONFIGS["qwen3_5_moe"] = lambda: Qwen3_5MoeTextConfig(
    **HYBRID_COMMON,
    layer_types=["linear_attention", "full_attention", "linear_attention", "full_attention"],
    rope_parameters=dict(HYBRID_ROPE),
    num_experts=8,
    num_experts_per_tok=3,
    moe_intermediate_size=32,
    shared_expert_intermediate_size=48,
)
# Extra modules recorded for the hybrids only (llama/qwen3 fixtures stay as they were).
HYBRID_OUTPUTS = [
    "linear_attn.in_proj_qkv",
    "linear_attn.norm",
    "linear_attn.out_proj",
    "mlp.gate",
    "mlp.experts",
    "mlp.shared_expert",
]
HYBRID_INPUTS = ["linear_attn.norm", "linear_attn.out_proj"]
# Redundant for the hybrids (fixture size): input_layernorm.out is `layers.{i}.in` through one
# norm, and linear_attn.norm.out is out_proj.in reshaped.
HYBRID_SKIP = {"input_layernorm", "linear_attn.norm"}

# Module outputs (and inputs) recorded per layer, HF names relative to `model.layers.{i}`.
LAYER_OUTPUTS = [
    "input_layernorm",
    "self_attn.q_proj",
    "self_attn.q_norm",
    "self_attn.k_norm",
    "mlp",
]
LAYER_INPUTS = ["self_attn.o_proj"]


def perturb(model):
    """MODEL-SPECS §9.2 step 2: make every weight matter (HF init leaves norms at identity)."""
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("dt_bias"):
                p.add_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith("A_log"):
                pass
            else:
                p.mul_(3.0)


def flat2d(t):
    """[1, T, ...] -> [T, prod(...)] f32 (heads flattened head-major)."""
    t = t.detach().float()
    if t.dim() >= 3 and t.shape[0] == 1:
        t = t[0]
    return t.reshape(t.shape[0], -1).clone()


def record_hooks(model, out, hybrid=False):
    handles = []
    outputs = LAYER_OUTPUTS + (HYBRID_OUTPUTS if hybrid else [])
    if hybrid:
        outputs = [rel for rel in outputs if rel not in HYBRID_SKIP]
    inputs = LAYER_INPUTS + (HYBRID_INPUTS if hybrid else [])
    n_layers = model.config.num_hidden_layers

    def hook_layer(i):
        def fn(_mod, args, kwargs, output):
            x = args[0] if args else kwargs["hidden_states"]
            y = output[0] if isinstance(output, tuple) else output
            out[f"model.layers.{i}.in"] = flat2d(x)
            out[f"model.layers.{i}.out"] = flat2d(y)

        return fn

    for i in range(n_layers):
        layer = model.model.layers[i]
        handles.append(layer.register_forward_hook(hook_layer(i), with_kwargs=True))
        for rel in outputs + inputs:
            try:
                mod = layer.get_submodule(rel)
            except AttributeError:
                continue
            key = f"model.layers.{i}.{rel}"
            if rel in inputs:

                def fn(_m, args, _o, key=key):
                    out[key + ".in"] = flat2d(args[0])

                handles.append(mod.register_forward_hook(fn))
            if rel in outputs:

                def fn(_m, _a, o, key=key):
                    o = o[0] if isinstance(o, tuple) else o
                    out[key + ".out"] = flat2d(o)

                handles.append(mod.register_forward_hook(fn))

    def norm_fn(_m, _a, o):
        out["model.norm.out"] = flat2d(o)

    handles.append(model.model.norm.register_forward_hook(norm_fn))
    return handles


def logits_runs(model, ids, with_cache_dump, p=P):
    """Returns dict with logits.full, logits.prefill_then_decode, logits.prefill_then_continue.
    The two incremental variants keep rows p..T only (rows 0..p are the prefill = logits.full)."""
    res = {}
    t_len = ids.shape[1]
    with torch.no_grad():
        res["logits.full"] = flat2d(model(ids, use_cache=False).logits)

        cache = DynamicCache(config=model.config)
        model(ids[:, :p], past_key_values=cache, use_cache=True)
        if with_cache_dump:
            for i, layer in enumerate(cache.layers):
                if hasattr(layer, "conv_states"):  # linear attention (Gated DeltaNet)
                    conv = layer.conv_states[0]
                    rec = layer.recurrent_states[0]
                    # clone: decode steps update these tensors in place
                    res[f"cache.{i}.conv_state"] = conv.detach().float().clone()
                    res[f"cache.{i}.recurrent_state"] = rec.detach().float().clone()
                    continue
                res[f"cache.{i}.keys"] = layer.keys.detach().float().contiguous()
                res[f"cache.{i}.values"] = layer.values.detach().float().contiguous()
        rows = []
        for t in range(p, t_len):
            rows.append(model(ids[:, t : t + 1], past_key_values=cache, use_cache=True).logits[0, -1])
        res["logits.prefill_then_decode"] = torch.stack(rows).float().contiguous()

        cache = DynamicCache(config=model.config)
        model(ids[:, :p], past_key_values=cache, use_cache=True)
        cont = model(ids[:, p:], past_key_values=cache, use_cache=True).logits
        res["logits.prefill_then_continue"] = flat2d(cont)
    return res


def save_checkpoint(name, config, out_dir):
    model_dir = os.path.join(out_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    perturb(model)
    model.save_pretrained(model_dir)
    # Keep the folder to what the Rust loader reads.
    for extra in ("generation_config.json",):
        p = os.path.join(model_dir, extra)
        if os.path.exists(p):
            os.remove(p)
    return model_dir, model.config.vocab_size


def make_model(name, out_dir):
    model_dir, vocab_size = save_checkpoint(name, CONFIGS[name](), out_dir)
    g = torch.Generator().manual_seed(SEED + 2)
    ids = torch.randint(0, vocab_size, (1, T), generator=g)
    hybrid = name.startswith("qwen3_5")
    # MoE: HF's default experts implementation sums the top-k contributions in f32 (§5.2).
    extra = {"experts_implementation": "grouped_mm"} if name == "qwen3_5_moe" else {}

    # f32: primary gate, with per-module activations.
    m32 = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager", **extra
    ).eval()
    golden = {"input_ids": ids[0].to(torch.int64).contiguous()}
    acts = {}
    handles = record_hooks(m32, acts, hybrid=hybrid)
    with torch.no_grad():
        m32(ids, use_cache=False)
    for h in handles:
        h.remove()
    golden.update(acts)
    golden.update(logits_runs(m32, ids, with_cache_dump=True))
    golden["rope.inv_freq"] = m32.model.rotary_emb.inv_freq.detach().float().contiguous()
    save_file(golden, os.path.join(model_dir, "golden_f32.safetensors"))

    # bf16: logits only (for the CUDA backend's tolerance tests).
    m16 = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.bfloat16, attn_implementation="eager", **extra
    ).eval()
    g16 = {"input_ids": ids[0].to(torch.int64).contiguous()}
    for k, v in logits_runs(m16, ids, with_cache_dump=False).items():
        g16[k] = v.to(torch.bfloat16).contiguous()
    save_file(g16, os.path.join(model_dir, "golden_bf16.safetensors"))
    print(f"{name}: {sum(p.numel() for p in m32.parameters())} params -> {model_dir}")


# A small llama exercising what the main fixture does not: q/k/v/o and MLP biases, an untied
# lm_head, GQA 4:1 and llama3 rope scaling with a medium-frequency band. Logits only.
VARIANT_T, VARIANT_P = 64, 40
VARIANTS = {
    "llama_variant": lambda: LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        rms_norm_eps=1e-5,
        attention_bias=True,
        mlp_bias=True,
        tie_word_embeddings=False,
        max_position_embeddings=256,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 32},
    ),
}


def make_variant(name, out_dir):
    model_dir, vocab_size = save_checkpoint(name, VARIANTS[name](), out_dir)
    g = torch.Generator().manual_seed(SEED + 3)
    ids = torch.randint(0, vocab_size, (1, VARIANT_T), generator=g)
    m32 = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    golden = {"input_ids": ids[0].to(torch.int64).contiguous()}
    golden.update(logits_runs(m32, ids, with_cache_dump=False, p=VARIANT_P))
    golden["rope.inv_freq"] = m32.model.rotary_emb.inv_freq.detach().float().contiguous()
    save_file(golden, os.path.join(model_dir, "golden_f32.safetensors"))
    print(f"{name}: {sum(p.numel() for p in m32.parameters())} params -> {model_dir}")


ROPE_CASES = [
    {"name": "default", "head_dim": 64, "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0}},
    {"name": "default_partial", "head_dim": 256,
     "rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25}},
    {"name": "linear", "head_dim": 64, "rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}},
    {"name": "llama3", "head_dim": 128,
     "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}},
    {"name": "llama3_32", "head_dim": 64,
     "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}},
    {"name": "yarn", "head_dim": 128,
     "rope_parameters": {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                         "original_max_position_embeddings": 32768}},
    {"name": "yarn_no_truncate", "head_dim": 64,
     "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0, "beta_fast": 16.0,
                         "beta_slow": 2.0, "original_max_position_embeddings": 2048, "truncate": False}},
]


def make_rope(out_dir):
    cases = []
    for case in ROPE_CASES:
        params = dict(case["rope_parameters"])
        cfg = LlamaConfig(
            hidden_size=case["head_dim"] * 4,
            num_attention_heads=4,
            head_dim=case["head_dim"],
            max_position_embeddings=131072,
            rope_parameters=params,
        )
        rope_type = params["rope_type"]
        if rope_type == "default" and "partial_rotary_factor" in params:
            # Llama's default ignores partial_rotary_factor; Qwen3.5's honours it.
            from transformers import Qwen3_5TextConfig
            from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5TextRotaryEmbedding

            cfg = Qwen3_5TextConfig(head_dim=case["head_dim"], rope_parameters=dict(params))
            inv_freq, scaling = Qwen3_5TextRotaryEmbedding.compute_default_rope_parameters(cfg)
        elif rope_type == "default":
            from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

            inv_freq, scaling = LlamaRotaryEmbedding.compute_default_rope_parameters(cfg)
        else:
            inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](cfg)
        cases.append(
            {
                "name": case["name"],
                "head_dim": case["head_dim"],
                "rope_parameters": case["rope_parameters"],
                "attention_scaling": float(scaling),
                # f32 values as exact bit patterns (JSON floats would round-trip through f64 fine,
                # but bits make "bit-exact" checks unambiguous).
                "inv_freq_bits": [int(b) for b in inv_freq.float().view(torch.int32).tolist()],
            }
        )
    with open(os.path.join(out_dir, "rope_inv_freq.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "cases": cases}, f)
        f.write("\n")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "crates/models/tests/fixtures/golden"
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else None  # e.g. qwen3_5,qwen3_5_moe
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    for name in CONFIGS:
        if only is None or name in only:
            make_model(name, out_dir)
    if only is not None:
        return
    for name in VARIANTS:
        make_variant(name, out_dir)
    make_rope(out_dir)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
