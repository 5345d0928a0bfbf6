#!/usr/bin/env bash
# The project's test command (README.md, and what .ci/run calls): every Rust test of the
# workspace, then the OpenAI-SDK tests against a live `infer` server on the CPU backend.
# Needs: the test model and NVRTC wheels (both fetched here) and the python packages of tests/requirements.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/fetch-test-assets.sh"
"$root/scripts/fetch-nvrtc.sh"   # NVRTC from PyPI: CI compiles every CUDA kernel
cargo test --workspace --no-fail-fast
# The dev profile optimises the numeric crates, so the debug server is fast enough for tests.
cargo build --bin infer
ARLE_INFER_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/infer" \
  ARLE_TEST_MODEL="$root/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  python3 -m pytest -q tests/openai
