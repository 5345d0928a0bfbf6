#!/usr/bin/env bash
# Runs every GPU check on the GPU machine (no Rust toolchain there) and prints a short table last.
# Build here and carry `.gpu/` (see scripts/gpu-build.sh, which builds and strips everything below):
#   .gpu/gpu_parity          kernel op parity (arle-kernels, feature gpu-tests); every other
#                            arle-kernels GPU binary (.gpu/gpu_moe, ...) runs in the same section
#   .gpu/gpu_golden          tiny HF goldens through the CUDA backend (arle-models, gpu-tests)
#   .gpu/engine/<test>       arle-engine integration tests built with --features cuda; run with
#                            ARLE_TEST_DEVICE=cuda (SmolLM2 HF greedy parity, batching, prefix reuse, ...)
#   .gpu/gpu_engine          arle-engine GPU-only tests (gpu-tests feature), when present
#   .gpu/dump_logits         arle-models example: real-size Qwen3-4B / Qwen3.5-2B vs HF bf16 logits
#                            (scripts/gpu_real_size.py builds the random models with HF there)
#   .gpu/infer               the server: tests/openai (openai SDK) against `--backend cuda`; the SDK
#                            wheels travel in .whl/ (pip download of tests/requirements.txt)
# The full SmolLM2 GGUF (98 MB) exceeds one call's carry: it travels in parts `.gpu/pa/part*`,
# `.gpu/pb/part*`, `.gpu/pc/part*` over consecutive calls on a warm machine (carry one folder per
# call; they stay because /.gpu is git-ignored there too) and is joined here.
# Sections run only when their inputs are present; ARLE_GPU_SECTIONS (space separated, default all:
# parity golden engine realsize openai) picks some. Logs go to $OUT.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$(mktemp -d)}"
sections="${ARLE_GPU_SECTIONS:-parity golden engine realsize openai}"
want() { [[ " $sections " == *" $1 "* ]]; }
export ARLE_KERNEL_CACHE="${ARLE_KERNEL_CACHE:-/tmp/arle-kernels}"
# Test binaries embed the absolute path of the tree they were built in (fixtures are found through
# CARGO_MANIFEST_DIR): make those paths point at this checkout.
for p in /work/main /work/wt1 /work/wt2; do
  [ -e "$p" ] || { mkdir -p "$(dirname "$p")" && ln -sfn "$root" "$p"; }
done
for f in "$root"/.gpu/*.gz "$root"/.gpu/engine/*.gz; do
  [ -f "$f" ] && [ ! -e "${f%.gz}" ] && gunzip -kf "$f" && chmod +x "${f%.gz}"
done
smollm2=/tmp/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$smollm2" ] && ls "$root"/.gpu/pa/part* "$root"/.gpu/pb/part* "$root"/.gpu/pc/part* >/dev/null 2>&1; then
  cat "$root"/.gpu/pa/part* "$root"/.gpu/pb/part* "$root"/.gpu/pc/part* >"$smollm2"
fi
[ -f "$smollm2" ] && export ARLE_SMOLLM2_GGUF="$smollm2"
summary=()
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
summary+=("card: $(cat "$out/gpu.txt")")

if want parity && [ -x "$root/.gpu/gpu_parity" ]; then
  start=$(date +%s%N)
  "$root/.gpu/gpu_parity" --nocapture --test-threads=1 >"$out/gpu_parity.log" 2>&1
  summary+=("kernel parity ($(( ($(date +%s%N) - start) / 1000000 )) ms incl. NVRTC): $(grep -E 'checks, [0-9]+ failed' "$out/gpu_parity.log" | tail -1) / $(grep 'test result' "$out/gpu_parity.log" | tail -1)")
  grep -E "FAIL|panicked" "$out/gpu_parity.log" | head -20
  grep -E "^BENCH" "$out/gpu_parity.log" | while read -r l; do echo "$l"; done
fi
if want parity; then
  for t in "$root"/.gpu/gpu_*; do
    name=$(basename "$t")
    case "$name" in gpu_parity|gpu_golden|gpu_engine|*.gz) continue ;; esac
    "$t" --include-ignored --nocapture --test-threads=1 >"$out/$name.log" 2>&1
    summary+=("$name: $(grep -E 'checks, [0-9]+ failed' "$out/$name.log" | tail -1) $(grep 'test result' "$out/$name.log" | tail -1 || echo 'did not finish')")
    grep -E "FAIL|panicked" "$out/$name.log" | head -20
    while read -r l; do summary+=("$l"); done < <(grep -E '^(BENCH|DUMMY)' "$out/$name.log")
  done
fi
if want golden && [ -x "$root/.gpu/gpu_golden" ]; then
  (cd "$root/crates/models" && "$root/.gpu/gpu_golden" --nocapture --test-threads=1) >"$out/gpu_golden.log" 2>&1
  while read -r l; do summary+=("$l"); done < <(grep -oE 'GOLDEN .*' "$out/gpu_golden.log")
  summary+=("gpu_golden: $(grep 'test result' "$out/gpu_golden.log" || echo 'did not finish')")
  grep -E "panicked" -A3 "$out/gpu_golden.log" | head -20
fi
if want engine && [ -d "$root/.gpu/engine" ]; then
  for t in "$root"/.gpu/engine/*; do
    [[ "$t" == *.gz ]] && continue
    name=$(basename "$t")
    ARLE_TEST_DEVICE=cuda "$t" --test-threads=1 --nocapture >"$out/engine_$name.log" 2>&1
    summary+=("engine $name (cuda): $(grep 'test result' "$out/engine_$name.log" | tail -1 || echo 'did not finish')")
    grep -E "^test .* FAILED|panicked at" -A4 "$out/engine_$name.log" | head -24
    grep -E "compared tokens per case" "$out/engine_$name.log"
  done
fi
if want engine && [ -x "$root/.gpu/gpu_engine" ]; then
  "$root/.gpu/gpu_engine" --test-threads=1 --nocapture >"$out/gpu_engine.log" 2>&1
  summary+=("gpu_engine: $(grep 'test result' "$out/gpu_engine.log" | tail -1 || echo 'did not finish')")
  grep -E "^test .* FAILED|panicked at" -A4 "$out/gpu_engine.log" | head -24
fi
if want realsize && [ -x "$root/.gpu/dump_logits" ]; then
  python3 "$root/scripts/gpu_real_size.py" --bin "$root/.gpu/dump_logits" --work /tmp/realsize \
    ${ARLE_REALSIZE_MODELS:+--models "$ARLE_REALSIZE_MODELS"} >"$out/realsize.log" 2>&1
  grep -vE "^\[transformers\]" "$out/realsize.log" | grep -vE "REALSIZE" | tail -8
  while read -r l; do summary+=("$l"); done < <(grep -E '^REALSIZE' "$out/realsize.log")
fi
if want openai && [ -x "$root/.gpu/infer" ] && [ -d "$root/.whl" ] && [ -f "$smollm2" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$root"/.whl/*.whl
  # The gate runs in --deterministic mode (batch invariance and echo/prompt logprobs == decode
  # logprobs hold only there on a GPU); the default mode runs too, for the record.
  for mode in deterministic default; do
    flags="--backend cuda"; [ $mode = deterministic ] && flags="$flags --deterministic"
    (cd "$root" && PYTHONPATH=/tmp/site ARLE_INFER_BIN="$root/.gpu/infer" ARLE_TEST_MODEL="$smollm2" \
      ARLE_INFER_ARGS="$flags ${ARLE_OPENAI_EXTRA_ARGS:-}" python3 -m pytest -q --maxfail=50 -p no:cacheprovider tests/openai) \
      >"$out/openai_cuda_$mode.log" 2>&1
    grep -E "^FAILED" "$out/openai_cuda_$mode.log" | head -20
    summary+=("openai SDK tests, infer $flags: $(tail -1 "$out/openai_cuda_$mode.log")")
  done
fi
echo "==== summary ===="
printf '%s\n' "${summary[@]}"
