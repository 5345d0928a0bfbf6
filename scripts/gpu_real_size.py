#!/usr/bin/env python3
"""Real-size random-weight models: our bf16 CUDA logits vs HF transformers' bf16 logits (issue 5).

Runs on the GPU machine (python3 there has torch + transformers; no network), called by
scripts/gpu-check.sh with the `dump_logits` example binary carried in .gpu/:
    python3 scripts/gpu_real_size.py --bin .gpu/dump_logits --work /tmp/realsize [--models qwen3-4b,qwen3_5-2b]

For each model: build the config below with a fixed seed directly on the GPU in bf16, perturb the
norm weights (HF init makes them the identity, which would not test them), save it as bf16
safetensors (what our loader reads), draw 3 prompts of 520 random token ids, and record HF's bf16
logits (eager attention; Qwen3.5's Gated DeltaNet runs HF's torch chunked form) and, as the noise
floor of bf16 itself, HF's f32 logits of the same weights. Then run our binary on the saved folder
(a full pass, and a 500-token prefill followed by 20 one-token decode steps) and compare:
max-abs logit difference and top-1 agreement. Gate: top-1 >= 98% on decisive rows, and max-abs
<= 5e-2 (issue 5) widened to 1.25x HF's own bf16-vs-f32 max-abs on that prompt where that is
larger: at 24-36 layers of random bf16 weights HF's own bf16 logits differ from its f32 ones by
~0.3 (H200, 2026-11-26), so no bf16 implementation meets an absolute 5e-2 there.
Prints one `REALSIZE ...` line per comparison; exits 1 if any fails.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

MAX_ABS = 5e-2
MIN_TOP1 = 0.98
PROMPT_LEN = 520
DECODE_FROM = 500
N_PROMPTS = 3


def qwen3_4b():
    return transformers.Qwen3Config(
        vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6,
        rope_theta=1e6, max_position_embeddings=40960, tie_word_embeddings=True,
    )


def qwen3_5_2b():
    # A Qwen3.5 dense shape of ~2.4B parameters: 24 layers, 3 Gated DeltaNet : 1 gated attention.
    return transformers.Qwen3_5TextConfig(
        vocab_size=248320, hidden_size=2048, intermediate_size=6144, num_hidden_layers=24,
        num_attention_heads=8, num_key_value_heads=2, head_dim=256, rms_norm_eps=1e-6,
        linear_num_key_heads=16, linear_num_value_heads=16, linear_key_head_dim=128,
        linear_value_head_dim=128, linear_conv_kernel_dim=4, full_attention_interval=4,
        max_position_embeddings=32768, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25,
                         "mrope_section": [11, 11, 10], "mrope_interleaved": True},
    )


def shrink(make):
    # The same architecture at a toy size: dry-runs this script on a CPU (`--device cpu`).
    def tiny():
        cfg = make()
        for k, v in dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                         linear_key_head_dim=16, linear_value_head_dim=16,
                         linear_num_key_heads=2, linear_num_value_heads=4).items():
            if hasattr(cfg, k):
                setattr(cfg, k, v)
        if hasattr(cfg, "layer_types"):
            cfg.layer_types = cfg.layer_types[:4]
        return cfg
    return tiny


MODELS = {"qwen3-4b": qwen3_4b, "qwen3_5-2b": qwen3_5_2b,
          "qwen3-tiny": shrink(qwen3_4b), "qwen3_5-tiny": shrink(qwen3_5_2b)}
DEVICE = "cuda"


def build(name, work):
    torch.manual_seed(0)
    cfg = MODELS[name]()
    with torch.device(DEVICE):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="eager")
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
    n_params = sum(p.numel() for p in model.parameters())
    out = os.path.join(work, name)
    model.save_pretrained(out)
    return model.eval(), out, n_params


def hf_logits(model, prompts):
    with torch.no_grad():
        return [model(torch.tensor([ids], device=DEVICE)).logits[0].float().cpu().numpy() for ids in prompts]


def read_ours(path, vocab):
    return np.fromfile(path, dtype="<f4").reshape(-1, vocab)


def compare(label, ours, want, max_abs=MAX_ABS):
    """Gate: max-abs <= MAX_ABS, and top-1 agreement >= MIN_TOP1 on the *decisive* rows: rows
    whose reference top-2 margin exceeds 2 * MAX_ABS. Random-weight logits are nearly flat, so
    many rows are near-ties that the allowed max-abs may legitimately swap (HF's own bf16 vs f32
    logits, printed as the noise floor, disagree on them too); all-row agreement is printed."""
    d = float(np.max(np.abs(ours - want)))
    same = ours.argmax(-1) == want.argmax(-1)
    top2 = np.sort(want, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > 2 * MAX_ABS
    rows, n_dec = want.shape[0], int(decisive.sum())
    agree_dec = int(same[decisive].sum())
    ok = d <= max_abs and (n_dec == 0 or agree_dec / n_dec >= MIN_TOP1)
    print(f"REALSIZE {label:<38} rows {rows:>4} max-abs {d:.3e} (gate {max_abs:.2e}) "
          f"top-1 {int(same.sum())}/{rows} decisive {agree_dec}/{n_dec} {'PASS' if ok else 'FAIL'}",
          flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", default="/tmp/realsize")
    ap.add_argument("--models", default="qwen3-4b,qwen3_5-2b")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    # The f32 floor must be f32: no TF32 in matmuls or cuDNN convolutions (GDN's conv1d).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.work, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name(0) if DEVICE == 'cuda' else 'cpu'}", flush=True)
    all_ok = True
    for name in args.models.split(","):
        t0 = time.time()
        model, folder, n_params = build(name, args.work)
        vocab = model.config.vocab_size
        rng = np.random.default_rng(1234)
        prompts = [rng.integers(0, vocab, PROMPT_LEN).tolist() for _ in range(N_PROMPTS)]
        ids_path = os.path.join(args.work, f"{name}_ids.json")
        with open(ids_path, "w") as f:
            json.dump(prompts, f)
        want = hf_logits(model, prompts)
        model = model.float()
        floor = hf_logits(model, prompts)
        del model
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
        print(f"{name}: {n_params / 1e9:.2f}B params, HF built+ran in {time.time() - t0:.1f}s; "
              f"logit std {float(np.std(want[0])):.3f}", flush=True)
        noise = [float(np.max(np.abs(want[i] - floor[i]))) for i in range(N_PROMPTS)]
        for i in range(N_PROMPTS):
            compare(f"{name} HF bf16 vs HF f32 (noise) p{i}", want[i], floor[i], max_abs=float("inf"))
        out = os.path.join(args.work, f"{name}_ours")
        t0 = time.time()
        r = subprocess.run([args.bin, "--model", folder, "--device", DEVICE, "--ids", ids_path,
                            "--out", out, "--decode-from", str(DECODE_FROM)])
        print(f"{name}: ours ran in {time.time() - t0:.1f}s (exit {r.returncode})", flush=True)
        if r.returncode != 0:
            all_ok = False
            continue
        for i in range(N_PROMPTS):
            # Gate: within the 5e-2 or, where HF's own bf16 error is larger (36-layer
            # random models: ~0.3), within 1.25x of it; ours vs the f32 logits printed too.
            gate = max(MAX_ABS, 1.25 * noise[i])
            full = read_ours(f"{out}/full_{i}.f32", vocab)
            all_ok &= compare(f"{name} full pass p{i}", full, want[i], gate)
            all_ok &= compare(f"{name} prefill {DECODE_FROM}+decode p{i}",
                              read_ours(f"{out}/decode_{i}.f32", vocab), want[i][DECODE_FROM - 1:], gate)
            compare(f"{name} full pass p{i} vs HF f32", full, floor[i], max_abs=float("inf"))
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
