#!/usr/bin/env bash
# Builds (here, on the CPU machine) everything scripts/gpu-check.sh runs on the GPU machine and
# puts it, stripped and gzipped, in .gpu/ of the repo root (ignored by git; name it in `carry`).
# Usage: scripts/gpu-build.sh [DEST_REPO_ROOT]   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root}/.gpu"
target="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$dest/engine"
cd "$root"
put() { # put SRC NAME: strip + gzip into $dest/NAME.gz
  strip -o "$dest/$2" "$1" && gzip -f "$dest/$2"
}
exes() { # the test executables a `cargo test --no-run --message-format=json` printed
  python3 -c 'import json,sys
for l in sys.stdin:
    try: m = json.loads(l)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])'
}
cargo build --release -p arle-cli --features cuda
put "$target/release/infer" infer
put "$target/release/arle" arle
cargo build --release -p arle-models --features cuda --example dump_logits
put "$target/release/examples/dump_logits" dump_logits
cargo test --release -p arle-kernels --features gpu-tests --no-run --message-format=json | exes |
  while read -r name exe; do case "$name" in gpu_*) put "$exe" "$name" ;; esac; done
cargo test --release -p arle-models --features gpu-tests --tests --no-run --message-format=json | exes |
  while read -r name exe; do case "$name" in gpu_*) put "$exe" "$name" ;; esac; done
engine_features=cuda
grep -q '^gpu-tests' crates/engine/Cargo.toml && engine_features=gpu-tests
cargo test --release -p arle-engine --features "$engine_features" --tests --no-run --message-format=json | exes |
  while read -r name exe; do
    case "$name" in
      gpu_engine) put "$exe" gpu_engine ;;
      smollm2_hf_parity|engine_batching|engine_hybrid_qwen3_5|engine_config) put "$exe" "engine/$name" ;;
    esac
  done
du -sh "$dest"; ls -la "$dest" "$dest/engine"
