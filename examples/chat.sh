#!/usr/bin/env bash
# Chat completion against a running ARLE server (default: http://127.0.0.1:8000).
base="${ARLE_URL:-http://127.0.0.1:8000}"
model="$(curl -s "$base/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')"
curl -s "$base/v1/chat/completions" -H 'Content-Type: application/json' -d "{
  \"model\": \"$model\",
  \"messages\": [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}],
  \"temperature\": 0,
  \"max_tokens\": 32
}" | python3 -m json.tool
