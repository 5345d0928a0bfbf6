"""Random Qwen3.5 hybrid checkpoint for bench/hybrid_multiturn.rs (not committed: ~100 MB f32).

hidden 256, 8 layers (Gated DeltaNet x3 + gated attention, repeated), vocab 4096, f32 safetensors,
written with HF transformers from a config alone (no download).
Run: /tmp/ref/venv/bin/python bench/hybrid_multiturn_model.py [.cache/models/qwen3_5-bench]
"""
import os
import sys

import torch
from transformers import AutoModelForCausalLM, Qwen3_5TextConfig

out_dir = sys.argv[1] if len(sys.argv) > 1 else ".cache/models/qwen3_5-bench"
config = Qwen3_5TextConfig(
    vocab_size=4096,
    hidden_size=256,
    intermediate_size=768,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=64,
    rms_norm_eps=1e-6,
    linear_num_key_heads=4,
    linear_num_value_heads=8,
    linear_key_head_dim=32,
    linear_value_head_dim=32,
    linear_conv_kernel_dim=4,
    tie_word_embeddings=False,
    layer_types=["linear_attention"] * 3 + ["full_attention"] + ["linear_attention"] * 3
    + ["full_attention"],
    rope_parameters={"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25,
                     "mrope_section": [4, 2, 2], "mrope_interleaved": True},
)
torch.manual_seed(7)
model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
os.makedirs(out_dir, exist_ok=True)
model.save_pretrained(out_dir)
gen = os.path.join(out_dir, "generation_config.json")
if os.path.exists(gen):
    os.remove(gen)
print(out_dir)
