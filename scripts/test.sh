#!/usr/bin/env bash
# The project's test command (README.md, and what .ci/run calls): every Rust test of the
# workspace, then the OpenAI-SDK tests against a live `infer` server on the CPU backend.
# Needs: the test model (scripts/fetch-test-assets.sh) and python packages from
# tests/requirements.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/fetch-test-assets.sh"
cargo test --workspace --no-fail-fast
if [[ -d tests/openai ]]; then
  cargo build --release --bin infer
  python3 -m pytest -q tests/openai
fi
