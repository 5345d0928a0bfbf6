#!/usr/bin/env bash
# Builds the llama.cpp CUDA peer HERE (the CPU machine: no GPU is needed to compile) for
# `SECTIONS=llamacpp bench/gpu_bench.sh`, and puts what the GPU machine needs under
# .gpu-llamacpp (ignored by git; carry it in a call of its own, beside .gpu):
# llama-batched-bench.xz, libcudart.so.13, the `gguf` wheel (bench/make_random_gguf.py imports
# it from there) and VERSION.
#
# The GPU machine has no network and, on the cards lent so far, no usable nvcc; PyPI's CUDA 13.0
# wheels do carry one (nvidia-cuda-nvcc 13.0.88 ships bin/nvcc, nvidia-nvvm ships cicc), so the
# toolkit is assembled from pinned wheels: nvcc, nvvm, crt, cudart, cccl, cublas (headers and
# link libraries). Pinned to 13.0.x: the GPU machine's driver is 580 (CUDA 13.0). llama.cpp is the
# source that llama-cpp-python 0.3.36's sdist vendors (the version our CPU peer uses), built for
# sm_90 (H100 and H200) only, static ggml, no CUDA VMM (so only libcudart/libcublas are needed
# at run time; the GPU machine has libcublas.so.13 under /usr/local/cuda).
#
# Work dir: $LLAMACPP_WORK (default /tmp/llamacpp-cuda). Took 24 min on this 2-core machine
# (the CUDA template instances); a rebuild reuses the ninja tree.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${LLAMACPP_WORK:-/tmp/llamacpp-cuda}"
dest="$root/.gpu-llamacpp"
sdist_version=0.3.36
mkdir -p "$work/wheels" "$work/cuda" "$dest"

cd "$work/wheels"
for w in nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14 gguf==0.19.0; do
  ls "$(echo "${w%%==*}" | tr - _)"-"${w##*==}"-*.whl >/dev/null 2>&1 ||
    python3 -m pip download --no-deps -q "$w" -d .
done
for f in nvidia_*.whl; do unzip -q -o "$f" -d "$work/cuda"; done
cu="$work/cuda/nvidia/cu13"
# nvcc.profile looks for include/ and lib/ under targets/x86_64-linux, as in a toolkit install.
mkdir -p "$cu/targets/x86_64-linux"
ln -sfn ../../include "$cu/targets/x86_64-linux/include"
ln -sfn ../../lib "$cu/targets/x86_64-linux/lib"
for l in cudart cublas cublasLt; do ln -sf "lib$l.so.13" "$cu/lib/lib$l.so"; done

if [ ! -d "$work/src" ]; then
  url=$(curl -s "https://pypi.org/pypi/llama-cpp-python/$sdist_version/json" | python3 -c \
    "import json,sys;print([u['url'] for u in json.load(sys.stdin)['urls'] if u['packagetype']=='sdist'][0])")
  case "$url" in http*) ;; *) url="https://pypi.org/packages/${url#../../packages/}" ;; esac
  curl -sfL -o "$work/sdist.tar.gz" "$url"
  mkdir -p "$work/src" && tar xzf "$work/sdist.tar.gz" -C "$work/src" --strip-components=1
fi
command -v cmake >/dev/null && command -v ninja >/dev/null || python3 -m pip install -q cmake ninja

llama="$work/src/vendor/llama.cpp"
export PATH="$cu/bin:$PATH"
cmake -S "$llama" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER="$cu/bin/nvcc" \
  -DCUDAToolkit_ROOT="$cu" -DGGML_CUDA_NO_VMM=ON -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >"$work/cmake.log"
ninja -C "$work/build" -j"$(nproc)" llama-batched-bench

# One tool covers P1, P3 and P2 (llama-batched-bench); stripped it is ~69 MB, xz ~41 MB, which
# fits the 64 MiB carry beside the tracked tree (llama-bench would need a second carry).
rm -f "$dest/llama-bench" "$dest/llama-batched-bench"
strip -o "$work/llama-batched-bench" "$work/build/bin/llama-batched-bench"
xz -T0 -6 -c "$work/llama-batched-bench" >"$dest/llama-batched-bench.xz"
cp -L "$cu/lib/libcudart.so.13" "$dest/"
cp "$work/wheels"/gguf-0.19.0-*.whl "$dest/gguf.whl"
commit=$(grep -o 'ggml commit: *[0-9a-f]*' "$work/cmake.log" | awk '{print $3}' || true)
echo "llama.cpp from llama-cpp-python $sdist_version sdist (ggml commit ${commit:-?}), CUDA 13.0.88 nvcc, sm_90" \
  >"$dest/VERSION"
ls -la "$dest"
