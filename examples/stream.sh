#!/usr/bin/env bash
# Streamed text completion (server-sent events), with usage in the last chunk.
base="${ARLE_URL:-http://127.0.0.1:8000}"
model="$(curl -s "$base/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')"
curl -sN "$base/v1/completions" -H 'Content-Type: application/json' -d "{
  \"model\": \"$model\",
  \"prompt\": \"Once upon a time\",
  \"max_tokens\": 40,
  \"stream\": true,
  \"stream_options\": {\"include_usage\": true}
}"
