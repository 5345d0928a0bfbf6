#!/usr/bin/env bash
# Issue 6 benchmarks in ONE GPU call: the card's roofline, P1-P4 with our binary on
# --load-format dummy, and the HF transformers peer on the same shapes; one table last.
# Build here:  cargo build --release -p arle-cli --features cuda && mkdir -p .gpu &&
#              cp target/release/arle .gpu/arle && strip .gpu/arle   (carry .gpu)
# On the GPU machine: bash bench/gpu_bench.sh   (logs and JSON under $OUT)
# Knobs (env): MODELS (default "llama3.1-8b qwen3-4b qwen3.5-2b"), SECTIONS (default
# "p1 p2 p3 p4 hf"; "llamacpp" adds the llama.cpp CUDA peer (P1, P3, P2 on the first model;
# build it here with bench/build_llamacpp_cuda.sh and carry .gpu-llamacpp); "p1eager" adds P1 without CUDA graphs; "layers" decodes the shape cut to 1
# and half its layers, for the per-layer cost), P2_N/P2_IN/P2_OUT (ours, default 1000/1000/1000 for the first model, then
# P2_N_OTHER), P2_SEQS (max-num-seqs, 256), KV_TOKENS (our KV pool, 600000), P4_C ("1 16 64"),
# P4_MNBT (the P4 server's --max-num-batched-tokens, 8192).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$(mktemp -d)}"
bin="${ARLE_BIN:-$root/.gpu/arle}"
[ -f "$bin.gz" ] && [ ! -x "$bin" ] && gunzip -kf "$bin.gz" && chmod +x "$bin"
models="${MODELS:-llama3.1-8b qwen3-4b qwen3.5-2b}"
sections="${SECTIONS:-p1 p2 p3 p4 hf}"
want() { [[ " $sections " == *" $1 "* ]]; }
export ARLE_KERNEL_CACHE="${ARLE_KERNEL_CACHE:-/tmp/arle-kernels}"
cfgdir=/tmp/arle-bench-models
card="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
echo "card: $card" | tee "$out/card.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,power.limit --format=csv >>"$out/card.txt"
python3 "$root/bench/hf_peer.py" configs --out "$cfgdir" >/dev/null
python3 "$root/bench/hf_peer.py" roofline | tail -1 >"$out/roofline.json"
cat "$out/roofline.json"
hbm=$(python3 -c "import json;print(json.load(open('$out/roofline.json'))['hbm_copy_gbps'])")
peak=$(python3 -c "import json;print(json.load(open('$out/roofline.json'))['bf16_gemm_tflops'])")
common=(--backend cuda --load-format dummy --json)
first=1
for m in $models; do
  dir="$cfgdir/$m"
  if want p1; then
    timeout 300 "$bin" bench decode --model "$dir" "${common[@]}" --input-len 128 --output-len 512 \
      --num-iters 3 --hbm-gbps "$hbm" >"$out/$m.p1.json" 2>"$out/$m.p1.log" || echo "$m P1 failed (see $m.p1.log)"
  fi
  if want p1eager; then # the same P1 without CUDA graphs (what the graphs buy)
    timeout 300 "$bin" bench decode --model "$dir" "${common[@]}" --enforce-eager --input-len 128 \
      --output-len 512 --num-iters 3 --hbm-gbps "$hbm" >"$out/$m.p1eager.json" 2>"$out/$m.p1eager.log" ||
      echo "$m P1 eager failed (see $m.p1eager.log)"
  fi
  if want layers; then # per-layer cost: the same shape cut to 1 and half its layers (graphs on)
    full=$(python3 -c "import json;print(json.load(open('$dir/config.json'))['num_hidden_layers'])")
    for l in 1 $(( full / 2 )); do
      cut="/tmp/arle-bench-cut/$m-L$l"; mkdir -p "$cut"; cp "$dir"/* "$cut"/ 2>/dev/null
      python3 -c "import json;p='$cut/config.json';c=json.load(open(p));c['num_hidden_layers']=$l;json.dump(c,open(p,'w'))"
      timeout 120 "$bin" bench decode --model "$cut" "${common[@]}" --input-len 128 --output-len 256 \
        --num-iters 2 >"$out/$m.layers$l.json" 2>"$out/$m.layers$l.log" || echo "$m $l layers failed"
    done
  fi
  if want p3; then
    timeout 300 "$bin" bench prefill --model "$dir" "${common[@]}" --input-len 4096 --num-iters 3 \
      --peak-tflops "$peak" >"$out/$m.p3.json" 2>"$out/$m.p3.log" || echo "$m P3 failed (see $m.p3.log)"
  fi
  if want p2; then
    n=${P2_N:-1000}; [ $first = 1 ] || n=${P2_N_OTHER:-256}
    timeout 420 "$bin" bench throughput --model "$dir" "${common[@]}" --num-prompts "$n" \
      --input-len "${P2_IN:-1000}" --output-len "${P2_OUT:-1000}" --max-num-seqs "${P2_SEQS:-256}" \
      --max-num-batched-tokens 8192 --kv-cache-tokens "${KV_TOKENS:-600000}" \
      >"$out/$m.p2.json" 2>"$out/$m.p2.log" || echo "$m P2 failed (see $m.p2.log)"
  fi
  if want p4 && [ $first = 1 ]; then
    vocab=$(python3 -c "import json;print(json.load(open('$dir/config.json'))['vocab_size'])")
    "$bin" serve --model "$dir" --backend cuda --load-format dummy --port 8123 --max-num-seqs 64 \
      --max-num-batched-tokens "${P4_MNBT:-8192}" --kv-cache-tokens 200000 >"$out/$m.p4.server.log" 2>&1 &
    spid=$!
    for _ in $(seq 240); do curl -sf http://127.0.0.1:8123/readyz >/dev/null && break; sleep 0.5; done
    for c in ${P4_C:-1 16 64}; do
      np=$(( c * 4 < 16 ? 16 : c * 4 ))
      timeout 300 "$bin" bench serve --base-url http://127.0.0.1:8123 --num-prompts "$np" \
        --input-len 1000 --output-len 200 --max-concurrency "$c" --vocab-size "$vocab" --json \
        >"$out/$m.p4.c$c.json" 2>"$out/$m.p4.c$c.log" || echo "$m P4 c=$c failed"
    done
    kill "$spid"; wait "$spid" 2>/dev/null
  fi
  if want hf; then
    which=p1,p3; [ $first = 1 ] && which=p1,p3,p2
    timeout 400 python3 "$root/bench/hf_peer.py" peer --model "$dir" --which "$which" \
      >"$out/$m.hf.json.log" 2>"$out/$m.hf.err" || echo "$m HF peer failed (see $m.hf.err)"
    tail -1 "$out/$m.hf.json.log" >"$out/$m.hf.json"
  fi
  if want llamacpp; then # llama.cpp CUDA (bench/build_llamacpp_cuda.sh built it; carry .gpu-llamacpp)
    which=p1,p3; [ $first = 1 ] && which=p1,p3,p2
    timeout 1500 python3 "$root/bench/llamacpp_cuda_peer.py" --model "$dir" --name "$m" --which "$which" \
      >"$out/$m.lcpp.json.log" 2>"$out/$m.lcpp.err" || echo "$m llama.cpp peer failed (see $m.lcpp.err)"
    tail -1 "$out/$m.lcpp.json.log" >"$out/$m.lcpp.json"
  fi
  first=0
done
python3 - "$out" "$card" $models <<'PY'
import json, os, sys
out, card, models = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except Exception:
        return None
roof = load("roofline.json") or {}
hbm, peak = roof.get("hbm_copy_gbps"), roof.get("bf16_gemm_tflops")
rows = [("roofline", "HBM copy GB/s", f"{hbm:.0f}" if hbm else "-", "", "", "", ""),
        ("roofline", "bf16 GEMM TFLOP/s", f"{peak:.0f}" if peak else "-", "", "", "", "")]
f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
for m in models:
    p1, p2, p3, hf, p1e, lc = (load(f"{m}.{s}.json") for s in ("p1", "p2", "p3", "hf", "p1eager", "lcpp"))
    hf, lc = hf or {}, lc or {}
    for name in sorted(n for n in os.listdir(out) if n.startswith(f"{m}.layers") and n.endswith(".json")):
        lj = load(name)
        if lj:
            layers = name[len(m) + 7:-5]
            rows.append((m, f"decode tok/s, {layers} layers (per-layer cost)", "",
                         f(lj["decode_tok_s"]["median"]), "", "", ""))
    if p1e:
        rows.append((m, "P1 decode tok/s, --enforce-eager", f(p1e.get("roofline_tok_s")),
                     f(p1e["decode_tok_s"]["median"]), f(p1e.get("roofline_ratio"), 3), "", ""))
    if p1:
        rows.append((m, "P1 decode tok/s", f(p1.get("roofline_tok_s")), f(p1["decode_tok_s"]["median"]),
                     f(p1.get("roofline_ratio"), 3), f(hf.get("p1_decode_tok_s")), f(lc.get("p1_decode_tok_s"))))
    if p3:
        roof_ms = p3["flops"] / (peak * 1e12) * 1e3 if p3.get("flops") and peak else None
        rows.append((m, "P3 prefill 4096 ms", f(roof_ms), f(p3["prefill_ms"]["median"]),
                     "MFU " + f(p3.get("mfu"), 3), f(hf.get("p3_prefill_ms")), f(lc.get("p3_prefill_ms"))))
    if p2:
        h2, l2 = hf.get("p2") or {}, lc.get("p2") or {}
        peer = lambda d: f(d.get("output_tok_s")) + (f" ({d.get('batch')}x{d.get('in')}/{d.get('out')})" if d.get("output_tok_s") else "")
        rows.append((m, f"P2 out tok/s ({p2['num_prompts']}x{p2['input_len']}/{p2['output_len']})", "",
                     f(p2["output_tok_s"]), "", peer(h2), peer(l2)))
    for c in (1, 16, 64):
        p4 = load(f"{m}.p4.c{c}.json")
        if p4:
            rows.append((m, f"P4 c={c} TTFT/TPOT/ITL p50 ms", "",
                         f"{p4['ttft_ms']['median']:.1f}/{p4['tpot_ms']['median']:.2f}/{p4['itl_ms']['median']:.2f}",
                         f"ITL p99 {p4['itl_ms']['p99']:.2f}", "", ""))
print(f"\ncard: {card}   (every number below is from this card, this run)")
hdr = ("model", "metric", "roofline", "ours", "ratio", "HF", "llama.cpp")
w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(7)]
for r in [hdr] + rows:
    print("  ".join(str(x).ljust(w[i]) for i, x in enumerate(r)))
PY
