"""The official OpenAI SDK against ARLE (pip install openai)."""
import os

import openai

client = openai.OpenAI(base_url=os.environ.get("ARLE_URL", "http://127.0.0.1:8000") + "/v1", api_key="unused")
model = client.models.list().data[0].id

r = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Name three primary colours."}],
    temperature=0,
    max_tokens=48,
    logprobs=True,
    top_logprobs=2,
)
print(r.choices[0].message.content)
print("first token logprobs:", r.choices[0].logprobs.content[0])

for chunk in client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Write a haiku about rust."}],
    stream=True,
    seed=42,
    temperature=0.8,
    max_tokens=48,
):
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()
