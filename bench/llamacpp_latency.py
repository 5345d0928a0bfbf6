#!/usr/bin/env python3
"""llama.cpp reference for `arle bench latency`: prefill tok/s of a 512-token prompt and decode
tok/s over 128 generated tokens, single request, greedy, EOS ignored.

Same measurement as ours: each repetition (after warm-up) uses fresh random token ids and an
empty KV cache; TTFT = eval(prompt) + greedy pick of the first token; decode = the remaining
output_len - 1 single-token evals (each followed by a greedy pick), so
prefill tok/s = input_len / TTFT and decode tok/s = (output_len - 1) / (E2E - TTFT).
llama.cpp's own perf counters (llama_perf_context: t_p_eval_ms / t_eval_ms) are reported too,
and tok per CPU-second of each phase (time.process_time, all threads), which is what stays
comparable when other processes share the cores. llama.cpp here is built with OpenMP, whose
workers spin while waiting; on an oversubscribed machine set OMP_WAIT_POLICY=passive.

Setup (llama-cpp-python compiles llama.cpp from the sdist for this CPU, GGML_NATIVE=ON):
    python3 -m venv /tmp/llamacpp/venv
    /tmp/llamacpp/venv/bin/pip install numpy llama-cpp-python==0.3.36
Run:
    /tmp/llamacpp/venv/bin/python bench/llamacpp_latency.py \
        --model .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf --threads 2 [--json]
"""

import argparse
import json
import statistics
import time

import numpy as np
import llama_cpp
from llama_cpp import Llama


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="GGUF file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--input-len", type=int, default=512)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--num-iters", type=int, default=5)
    p.add_argument("--num-warmup", type=int, default=1)
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--n-batch", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def greedy(llm):
    # logits of the last evaluated position: [n_vocab] (llama-cpp-python keeps no copy of them
    # unless logits_all, so read llama.cpp's output buffer directly)
    ptr = llm._ctx.get_logits_ith(-1)
    return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))))


def one_request(llm, prompt_ids, output_len):
    llm.reset()  # n_tokens = 0: the next eval overwrites the KV cache from position 0
    llama_cpp.llama_perf_context_reset(llm.ctx)
    cpu_start = time.process_time()  # all threads of this process (OpenMP workers included)
    start = time.perf_counter()
    llm.eval(prompt_ids)
    tok = greedy(llm)
    ttft = time.perf_counter() - start
    cpu_first = time.process_time()
    for _ in range(output_len - 1):
        llm.eval([tok])
        tok = greedy(llm)
    e2e = time.perf_counter() - start
    cpu_end = time.process_time()
    perf = llama_cpp.llama_perf_context(llm.ctx)
    return {
        "ttft_ms": ttft * 1e3,
        "e2e_ms": e2e * 1e3,
        "prefill_cpu_ms": (cpu_first - cpu_start) * 1e3,
        "decode_cpu_ms": (cpu_end - cpu_first) * 1e3,
        "perf_prompt_ms": perf.t_p_eval_ms,
        "perf_prompt_tokens": perf.n_p_eval,
        "perf_decode_ms": perf.t_eval_ms,
        "perf_decode_tokens": perf.n_eval,
    }


def summary(xs):
    return {
        "mean": statistics.fmean(xs),
        "median": statistics.median(xs),
        "min": min(xs),
        "max": max(xs),
    }


def main():
    a = parse_args()
    llm = Llama(
        model_path=a.model,
        n_ctx=a.n_ctx,
        n_batch=a.n_batch,
        n_ubatch=a.n_batch,
        n_threads=a.threads,
        n_threads_batch=a.threads,
        seed=a.seed,
        verbose=False,
    )
    rng = np.random.default_rng(a.seed)
    vocab = llm.n_vocab()
    samples = []
    for i in range(a.num_warmup + a.num_iters):
        ids = rng.integers(0, vocab, size=a.input_len).tolist()
        llm._ctx.kv_cache_clear()  # eval also drops positions >= n_tokens; be explicit
        s = one_request(llm, ids, a.output_len)
        if i >= a.num_warmup:
            samples.append(s)
    prefill = [a.input_len / (s["ttft_ms"] / 1e3) for s in samples]
    decode = [(a.output_len - 1) / ((s["e2e_ms"] - s["ttft_ms"]) / 1e3) for s in samples]
    perf_prefill = [s["perf_prompt_tokens"] / (s["perf_prompt_ms"] / 1e3) for s in samples]
    perf_decode = [s["perf_decode_tokens"] / (s["perf_decode_ms"] / 1e3) for s in samples]
    prefill_cpu = [a.input_len / (s["prefill_cpu_ms"] / 1e3) for s in samples]
    decode_cpu = [(a.output_len - 1) / (s["decode_cpu_ms"] / 1e3) for s in samples]
    report = {
        "engine": "llama.cpp via llama-cpp-python " + llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode(),
        "model": a.model,
        "threads": a.threads,
        "input_len": a.input_len,
        "output_len": a.output_len,
        "num_iters": a.num_iters,
        "prefill_tok_s": summary(prefill),
        "decode_tok_s": summary(decode),
        "perf_counter_prefill_tok_s": summary(perf_prefill),
        "perf_counter_decode_tok_s": summary(perf_decode),
        "ttft_ms": summary([s["ttft_ms"] for s in samples]),
        "e2e_ms": summary([s["e2e_ms"] for s in samples]),
        "prefill_tok_per_cpu_s": summary(prefill_cpu),
        "decode_tok_per_cpu_s": summary(decode_cpu),
        "samples": samples,
    }
    if a.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['engine']}  threads {a.threads}  input {a.input_len} tok  "
          f"output {a.output_len} tok  iters {a.num_iters}")
    print(f"{'metric':<24} {'mean':>10} {'median':>10} {'min':>10} {'max':>10}")
    for name, key in [("prefill tok/s", "prefill_tok_s"), ("decode tok/s", "decode_tok_s"),
                      ("prefill tok/s (perf)", "perf_counter_prefill_tok_s"),
                      ("decode tok/s (perf)", "perf_counter_decode_tok_s"),
                      ("TTFT ms", "ttft_ms"), ("E2E ms", "e2e_ms"),
                      ("prefill tok/cpu-s", "prefill_tok_per_cpu_s"),
                      ("decode tok/cpu-s", "decode_tok_per_cpu_s")]:
        s = report[key]
        print(f"{name:<24} {s['mean']:>10.2f} {s['median']:>10.2f} {s['min']:>10.2f} "
              f"{s['max']:>10.2f}")


if __name__ == "__main__":
    main()
