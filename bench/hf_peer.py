#!/usr/bin/env python3
"""Issue 6 benchmarks, the Python side (run on the GPU machine by bench/gpu_bench.sh).

Subcommands (each prints one JSON object on its last stdout line):
  configs  --out DIR         writes DIR/<name>/config.json for the benchmark shapes
                             (llama3.1-8b, qwen3-4b, qwen3.5-2b); our binary and HF both read them.
  roofline                   the card's two ceilings, measured now: HBM copy bandwidth (torch
                             device-to-device copy of 4 GiB, bytes read + written / time) and the
                             bf16 GEMM peak (torch.matmul 8192^3, random inputs).
  peer --model DIR [...]     HF transformers on the same shape, random init on the GPU in bf16
                             (sdpa attention): P1 model.generate of 512 new tokens after a
                             128-token prompt (static cache, greedy, EOS ignored); P3 one forward
                             of 4096 tokens; P2 one batched generate of --p2-batch x (--p2-in in /
                             --p2-out out). Timed with torch.cuda.synchronize around the region,
                             after a warm-up; the median of --iters runs.
Every JSON object carries the card name (torch.cuda.get_device_name).
"""
import argparse
import json
import os
import statistics
import sys
import time

LLAMA_8B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "rms_norm_eps": 1e-5, "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
    "hidden_act": "silu", "bos_token_id": 128000, "eos_token_id": 128001,
    "torch_dtype": "bfloat16",
}
QWEN3_4B = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
    "vocab_size": 151936, "hidden_size": 2560, "intermediate_size": 9728,
    "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "rms_norm_eps": 1e-6, "max_position_embeddings": 40960,
    "rope_theta": 1000000.0, "tie_word_embeddings": True, "attention_bias": False,
    "hidden_act": "silu", "bos_token_id": 151643, "eos_token_id": 151645,
    "torch_dtype": "bfloat16",
}
# A Qwen3.5 dense shape of ~2.4B parameters (the shape scripts/gpu_real_size.py uses): 24 layers,
# 3 Gated DeltaNet : 1 gated full attention.
QWEN3_5_2B = {
    "architectures": ["Qwen3_5ForCausalLM"], "model_type": "qwen3_5_text",
    "vocab_size": 248320, "hidden_size": 2048, "intermediate_size": 6144,
    "num_hidden_layers": 24, "num_attention_heads": 8, "num_key_value_heads": 2,
    "head_dim": 256, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768,
    "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 6,
    "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_num_key_heads": 16,
    "linear_num_value_heads": 16, "linear_value_head_dim": 128,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0,
                        "partial_rotary_factor": 0.25, "mrope_section": [11, 11, 10],
                        "mrope_interleaved": True},
    "tie_word_embeddings": False, "attention_bias": False, "hidden_act": "silu",
    "bos_token_id": None, "eos_token_id": 248044, "torch_dtype": "bfloat16",
}
SHAPES = {"llama3.1-8b": LLAMA_8B, "qwen3-4b": QWEN3_4B, "qwen3.5-2b": QWEN3_5_2B}


def emit(obj):
    print(json.dumps(obj), flush=True)


def cmd_configs(args):
    for name, cfg in SHAPES.items():
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
    emit({"configs": sorted(SHAPES), "dir": args.out})


def timed(torch, fn, iters, warmup=1):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cmd_roofline(args):
    import torch
    card = torch.cuda.get_device_name(0)
    n = (4 << 30) // 2  # 4 GiB of bf16
    src = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    t = timed(torch, lambda: dst.copy_(src), iters=20, warmup=3)
    hbm_gbps = 2 * n * 2 / t / 1e9  # bytes read + bytes written
    del src, dst
    m = 8192
    gemm = []
    for _ in range(3):  # rotate inputs so no run sees the previous one's cache
        gemm.append((torch.randn(m, m, device="cuda", dtype=torch.bfloat16),
                     torch.randn(m, m, device="cuda", dtype=torch.bfloat16)))
    out = torch.empty(m, m, device="cuda", dtype=torch.bfloat16)
    k = [0]

    def mm():
        a, b = gemm[k[0] % 3]
        k[0] += 1
        torch.matmul(a, b, out=out)
    t = timed(torch, mm, iters=30, warmup=5)
    tflops = 2 * m ** 3 / t / 1e12
    emit({"bench": "roofline", "card": card, "hbm_copy_gbps": hbm_gbps,
          "bf16_gemm_tflops": tflops})


def build_model(torch, model_dir):
    import transformers
    cfg = transformers.AutoConfig.from_pretrained(model_dir)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    model.eval()
    # Small random weights (HF init already uses normal(0, 0.02)); norms stay at their defaults.
    return model, cfg


def cmd_peer(args):
    import torch
    card = torch.cuda.get_device_name(0)
    name = os.path.basename(os.path.normpath(args.model))
    t0 = time.perf_counter()
    model, cfg = build_model(torch, args.model)
    torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    vocab = cfg.vocab_size
    res = {"bench": "hf_peer", "card": card, "model": name, "load_s": load_s,
           "transformers": __import__("transformers").__version__, "torch": torch.__version__}
    g = torch.Generator(device="cuda").manual_seed(1)

    def ids(b, n):
        return torch.randint(0, vocab, (b, n), device="cuda", generator=g)

    def generate(prompt, new, cache):
        kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False,
                  pad_token_id=0, eos_token_id=None)
        if cache:
            kw["cache_implementation"] = cache
        with torch.inference_mode():
            return model.generate(prompt, attention_mask=torch.ones_like(prompt), **kw)

    if "p1" in args.which:
        prompt = ids(1, 128)
        cache = None if "qwen3_5" in cfg.model_type else "static"
        try:
            t = timed(torch, lambda: generate(prompt, args.p1_out, cache), iters=args.iters)
        except Exception as e:  # static cache unsupported: fall back to the dynamic one
            res["p1_static_cache_error"] = str(e)[:200]
            cache = None
            t = timed(torch, lambda: generate(prompt, args.p1_out, cache), iters=args.iters)
        t_prefill = timed(torch, lambda: generate(prompt, 1, cache), iters=args.iters)
        res["p1_cache"] = cache or "dynamic"
        res["p1_decode_tok_s"] = (args.p1_out - 1) / (t - t_prefill)
        res["p1_e2e_s"] = t
    if "p3" in args.which:
        x = ids(1, args.p3_len)

        def fwd():
            with torch.inference_mode():
                model(x, logits_to_keep=1)
        t = timed(torch, fwd, iters=args.iters)
        res["p3_prefill_ms"] = t * 1e3
        res["p3_tok_s"] = args.p3_len / t
    if "p2" in args.which:
        b = args.p2_batch
        try:
            prompt = ids(b, args.p2_in)
            t = timed(torch, lambda: generate(prompt, args.p2_out, None), iters=1, warmup=0)
            res["p2"] = {"batch": b, "in": args.p2_in, "out": args.p2_out, "elapsed_s": t,
                         "output_tok_s": b * args.p2_out / t,
                         "total_tok_s": b * (args.p2_in + args.p2_out) / t}
        except torch.cuda.OutOfMemoryError as e:
            res["p2"] = {"batch": b, "error": "out of memory: " + str(e)[:120]}
    emit(res)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("configs")
    c.add_argument("--out", required=True)
    sub.add_parser("roofline")
    p = sub.add_parser("peer")
    p.add_argument("--model", required=True)
    p.add_argument("--which", default="p1,p3,p2")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--p1-out", type=int, default=512)
    p.add_argument("--p3-len", type=int, default=4096)
    p.add_argument("--p2-batch", type=int, default=64)
    p.add_argument("--p2-in", type=int, default=1000)
    p.add_argument("--p2-out", type=int, default=200)
    args = ap.parse_args()
    {"configs": cmd_configs, "roofline": cmd_roofline, "peer": cmd_peer}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
