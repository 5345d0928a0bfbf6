#!/usr/bin/env bash
# Runs every GPU test of arle-kernels on the GPU machine and prints the parity table last.
# The GPU machine has no Rust toolchain: build the test binary here first and carry it:
#   cargo test -p arle-kernels --release --features gpu-tests --no-run
#   mkdir -p .gpu && cp "$(ls -t target/release/deps/gpu_parity-* | grep -v '\.d$' | head -1)" .gpu/gpu_parity
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
"$bin" --nocapture --test-threads=1 2>&1 | tee "$out/gpu_parity.log"
echo "first run (compiles every kernel): $(( ($(date +%s%N) - start) / 1000000 )) ms"
start=$(date +%s%N)
"$bin" --test-threads=1 >"$out/gpu_parity_cached.log" 2>&1
echo "second run (kernel cache hit): $(( ($(date +%s%N) - start) / 1000000 )) ms; $(grep "test result" "$out/gpu_parity_cached.log")"
