#!/usr/bin/env bash
# Runs every GPU test of arle-kernels on the GPU machine and prints the parity table last.
# The GPU machine has no Rust toolchain: build the test binary here first and carry it:
#   cargo test -p arle-kernels --release --features gpu-tests --no-run
#   mkdir -p .gpu && cp "$(ls -t target/release/deps/gpu_parity-* | grep -v '\.d$' | head -1)" .gpu/gpu_parity
# Optional, when present in .gpu/ (issue 5, CUDA backend through the engine):
#   .gpu/gpu_golden   cargo test -p arle-models --release --features gpu-tests --test gpu_golden --no-run
#                     (copy target/release/deps/gpu_golden-<hash>); tiny llama/qwen3 HF goldens on GPU
#   .gpu/arle + .gpu/smollm2-2l.gguf   cargo build --release -p arle-cli --features cuda, and
#                     scripts/truncate_gguf.py (SmolLM2 Q4_1 cut to 2 blocks, fits the carry):
#                     `arle run` greedy on --backend cpu and --backend cuda, texts compared
# then on the GPU machine (device tool, carry [".gpu"]):  scripts/gpu-check.sh
# NVRTC and headers come from the CUDA install (CUDA_HOME, default /usr/local/cuda); kernels are
# cached under ARLE_KERNEL_CACHE (default here: a temp dir, so every run compiles from scratch).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${ARLE_GPU_TEST_BIN:-$root/.gpu/gpu_parity}"
test -x "$bin" || { echo "no test binary at $bin (see the header of this script)" >&2; exit 1; }
export ARLE_KERNEL_CACHE="${ARLE_KERNEL_CACHE:-$(mktemp -d)/kernels}"
out="${OUT:-$(mktemp -d)}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
start=$(date +%s%N)
"$bin" --nocapture --test-threads=1 2>&1 | tee "$out/gpu_parity.log" || true
echo "first run (compiles every kernel): $(( ($(date +%s%N) - start) / 1000000 )) ms"
start=$(date +%s%N)
"$bin" --test-threads=1 >"$out/gpu_parity_cached.log" 2>&1
echo "second run (kernel cache hit): $(( ($(date +%s%N) - start) / 1000000 )) ms; $(grep "test result" "$out/gpu_parity_cached.log")"

summary=()
golden="$root/.gpu/gpu_golden"
if [ -x "$golden" ]; then
  (cd "$root/crates/models" && "$golden" --nocapture --test-threads=1) 2>&1 | tee "$out/gpu_golden.log" || true
  summary+=("$(grep -oE 'GOLDEN .*' "$out/gpu_golden.log" || echo 'GOLDEN: no result lines')")
  summary+=("gpu_golden: $(grep 'test result' "$out/gpu_golden.log" || echo 'did not finish')")
fi
arle="$root/.gpu/arle"
if [ -f "$arle.gz" ] && [ ! -x "$arle" ]; then gunzip -k "$arle.gz" && chmod +x "$arle"; fi
gguf="$root/.gpu/smollm2-2l.gguf"
if [ -x "$arle" ] && [ -f "$gguf" ]; then
  prompt="Write one sentence about the sea."
  for backend in cpu cuda; do
    start=$(date +%s%N)
    "$arle" run --backend "$backend" --model "$gguf" --no-tools --temperature 0 --max-tokens 24 \
      --prompt "$prompt" >"$out/run_$backend.txt" 2>"$out/run_$backend.err" || true
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    summary+=("arle run --backend $backend (${ms} ms): $(tr '\n' ' ' <"$out/run_$backend.txt" | head -c 200)")
    tail -3 "$out/run_$backend.err"
  done
  if cmp -s "$out/run_cpu.txt" "$out/run_cuda.txt"; then
    summary+=("arle run: cpu and cuda greedy texts IDENTICAL")
  else
    summary+=("arle run: cpu and cuda greedy texts DIFFER (bf16 vs f32; see above)")
  fi
fi
echo "==== summary ===="
grep -E "checks, [0-9]+ failed" "$out/gpu_parity.log" || true
printf '%s\n' "${summary[@]}"
