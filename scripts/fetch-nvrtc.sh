#!/usr/bin/env bash
# Puts NVRTC (the CUDA run-time compiler) and the CUDA headers it needs, from the PyPI wheels pinned
# to CUDA 13.0.x, into <repo>/.cache/nvrtc (or $ARLE_NVRTC_PREFIX). No GPU and no CUDA toolkit are
# needed: the arle-kernels test `nvrtc_compiles_every_kernel` uses this prefix to compile every .cu
# file for sm_90 on a CPU-only machine (CI). Keep the pins at 13.0.x: PTX/CUBIN from a newer NVRTC
# is refused by the 13.0 driver on the GPU machine.
# Layout after the run: $prefix/nvidia/cu13/{include,lib}, with lib/libnvrtc.so -> libnvrtc.so.13.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${ARLE_NVRTC_PREFIX:-$root/.cache/nvrtc}"
lib="$prefix/nvidia/cu13/lib"
if [[ -f "$lib/libnvrtc.so.13" && -f "$prefix/nvidia/cu13/include/cuda_bf16.h" ]]; then
  echo "nvrtc present: $prefix"
  exit 0
fi
mkdir -p "$prefix"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88 -d "$tmp"
for wheel in "$tmp"/*.whl; do
  python3 -m zipfile -e "$wheel" "$prefix"
done
ln -sf libnvrtc.so.13 "$lib/libnvrtc.so"
test -f "$lib/libnvrtc.so.13" || { echo "libnvrtc.so.13 missing under $lib" >&2; exit 1; }
test -f "$prefix/nvidia/cu13/include/cuda_bf16.h" || { echo "cuda_bf16.h missing" >&2; exit 1; }
echo "nvrtc fetched: $prefix"
