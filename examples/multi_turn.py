"""A multi-turn chat: each turn resends the history, and ARLE serves the shared prefix from its
KV cache. `cached_tokens` in the usage shows how much of the prompt was not recomputed."""
import os

import openai

client = openai.OpenAI(base_url=os.environ.get("ARLE_URL", "http://127.0.0.1:8000") + "/v1", api_key="unused")
model = client.models.list().data[0].id
messages = [{"role": "system", "content": "You are a concise assistant. " * 8}]
for question in ["What is Rust?", "Who created it?", "What is the borrow checker?"]:
    messages.append({"role": "user", "content": question})
    r = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=60)
    answer = r.choices[0].message.content
    messages.append({"role": "assistant", "content": answer})
    print(f"> {question}\n{answer}")
    print(f"  [prompt {r.usage.prompt_tokens} tokens, cached {r.usage.prompt_tokens_details.cached_tokens}]\n")
