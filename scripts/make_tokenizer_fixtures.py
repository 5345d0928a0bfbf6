#!/usr/bin/env python3
"""Tokenizer and chat-template fixtures for crates/engine/tests/tokenizer_*.rs, made by HF transformers.

Regenerate (needs transformers>=5, jinja2, and the SmolLM2 GGUF from scripts/fetch-test-assets.sh):
    /tmp/ref/venv/bin/python scripts/make_tokenizer_fixtures.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes under crates/engine/tests/fixtures/tokenizer/:
  smollm2_encode.json     ids of a text corpus, from the GGUF tokenizer as transformers builds it
  smollm2_chat.json       chat templates (the GGUF's own plus test templates) rendered by transformers
  smollm2_hf/             save_pretrained of the same tokenizer (tokenizer.json, tokenizer_config.json, ...)
  synthetic_gguf.json     small trained vocabularies written as GGUF `tokenizer.ggml.*` metadata (byte-level BPE
                          under each supported `tokenizer.ggml.pre`, and a SentencePiece BPE `llama` vocabulary),
                          with the ids transformers' GGUF converter (`convert_gguf_tokenizer`) gives for a corpus
"""

import json
import os
import sys

from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import render_jinja_template

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "engine", "tests", "fixtures", "tokenizer")
GGUF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

CORPUS = [
    "",
    "Hello world",
    " Hello world",
    "Hello, world! How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "12345 678 3.14159 -42 1e10 0x1F",
    "  leading and trailing spaces   ",
    "multiple     spaces\tand\ttabs\n\nand newlines\r\n",
    "\n\n\n",
    "   ",
    "\t",
    "emoji: 😀🎉👍🏽 👨‍👩‍👧‍👦 🇫🇷",
    "中文测试：你好，世界！",
    "日本語のテキスト、カタカナ、ひらがな。",
    "한국어 텍스트",
    "Ünïcödé àccénts ñ ß ø å",
    "Русский текст и ελληνικά",
    "عربي و עברית",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    'fn main() { println!("{}", vec![1, 2, 3].iter().sum::<i32>()); }',
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text with <|endoftext|> inside and <|im_end|>",
    "<|im_start|><|im_end|><|endoftext|>",
    "not special: <|im_start |> <im_start> |im_end|",
    "I'm sure they've done it, we'll see; she'd've",
    "URL: https://example.com/path?q=1&r=two#frag",
    "math: ∑_{i=1}^{n} x_i² ≤ ∞ → ∀ε>0",
    "zero\u200bwidth\u00a0nbsp\u3000ideographic",
    "control \x01\x02 chars \x7f",
    "a" * 50,
    "ab " * 20,
    "<repo_name>arle<file_sep>src/main.rs<filename>x",
]

CONVERSATIONS = {
    "user_only": [{"role": "user", "content": "Hi there!"}],
    "system_user": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."},
    ],
    "multi_turn": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3? 😀 中文"},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "Say hi"},
        {"role": "assistant", "content": "hi\n\nthere"},
    ],
    "parts_content": [
        {"role": "user", "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two."}]},
    ],
    "tool_turn": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}},
                }
            ],
        },
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_1", "name": "get_weather"},
    ],
}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city — uses “quotes” & <tags>",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["°C", "°F"]},
                    "days": {"type": "integer", "default": 1},
                    "ratio": {"type": "number", "default": 1.0},
                },
                "required": ["city"],
            },
        },
    }
]

# Test templates exercising what real templates use (loop controls, namespace, tojson options, tools,
# raise_exception, string/list content, python string methods via pycompat).
TOOLS_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- else %}{{- 'Default system.' }}{%- endif %}"
    "{{- '\\n\\n# Tools\\n<tools>' }}{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools><|im_end|>\\n' }}"
    "{%- elif messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- endif %}\n"
    "{%- set ns = namespace(last_user=-1) %}"
    "{%- for message in messages %}{%- if message.role == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}\n"
    "{%- for message in messages %}\n"
    "  {%- if message.role == 'system' %}{%- continue %}{%- endif %}\n"
    "  {%- if message.content is string %}{%- set text = message.content %}"
    "{%- elif message.content is none %}{%- set text = '' %}"
    "{%- else %}{%- set text = message.content | map(attribute='text') | join('\\n') %}{%- endif %}\n"
    "  {%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}\n"
    "    {{- '<|im_start|>' + message.role + '\\n' + text.strip() + '<|im_end|>\\n' }}\n"
    "  {%- elif message.role == 'assistant' %}\n"
    "    {{- '<|im_start|>assistant' }}{%- if text %}{{- '\\n' + text }}{%- endif %}\n"
    "    {%- for tc in message.tool_calls %}{%- set f = tc.function if tc.function is defined else tc %}\n"
    "      {{- '\\n<tool_call>\\n{\"name\": \"' + f.name + '\", \"arguments\": ' }}"
    "{%- if f.arguments is string %}{{- f.arguments }}{%- else %}{{- f.arguments | tojson }}{%- endif %}{{- '}\\n</tool_call>' }}\n"
    "    {%- endfor %}{{- '<|im_end|>\\n' }}\n"
    "  {%- elif message.role == 'tool' %}\n"
    "    {{- '<|im_start|>user\\n<tool_response>\\n' + text + '\\n</tool_response><|im_end|>\\n' }}\n"
    "  {%- else %}{{- raise_exception('unknown role ' + message.role) }}{%- endif %}\n"
    "  {%- if loop.index0 > ns.last_user + 5 %}{%- break %}{%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n"
)

# Exercises trim_blocks/lstrip_blocks whitespace handling, tojson kwargs, bos/eos vars, string methods.
WHITESPACE_TEMPLATE = """{{ bos_token }}
{% for message in messages %}
    {% if message['role'] == 'user' %}
[U] {{ message['content'] }} {{ message.get('name') }} {{ message['content'] is string }}{{ (message.content is string and message.content.startswith('Hi')) | tojson }}
    {% else %}
[{{ message['role'] | upper }}] {{ message['content'].replace('\\n', ' ') | trim }}{{ eos_token }}
    {% endif %}
{% endfor %}
{% if tools is not none %}{{ tools | tojson(indent=2) }}
{{ tools[0] | tojson(separators=(',', ':'), sort_keys=true) }}{% endif %}
{% if add_generation_prompt %}
[A]{% endif %}
"""


def render(template, messages, tokenizer, **kwargs):
    out, _ = render_jinja_template(
        conversations=[messages], chat_template=template, **tokenizer.special_tokens_map, **kwargs
    )
    return out[0]


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF))
    encode_cases = []
    for text in CORPUS:
        encode_cases.append(
            {
                "text": text,
                "ids": tok.encode(text, add_special_tokens=False),
                "ids_with_special": tok.encode(text, add_special_tokens=True),
                "decoded": tok.decode(tok.encode(text, add_special_tokens=False)),
                "decoded_skip_special": tok.decode(tok.encode(text, add_special_tokens=False), skip_special_tokens=True),
            }
        )
    meta = {
        "vocab_size": len(tok),
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "token_texts": {str(i): tok.convert_ids_to_tokens(i) for i in [0, 1, 2, 17, 198, 905, 19556, 49151]},
    }
    with open(os.path.join(OUT, "smollm2_encode.json"), "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "cases": encode_cases}, f, ensure_ascii=False, indent=1)

    chat_cases = []
    templates = {"gguf": tok.chat_template, "tools": TOOLS_TEMPLATE, "whitespace": WHITESPACE_TEMPLATE}
    for tname, template in templates.items():
        for cname, messages in CONVERSATIONS.items():
            for agp in (False, True):
                for tools in (None, TOOLS):
                    try:
                        rendered = render(template, messages, tok, add_generation_prompt=agp, tools=tools)
                        error = None
                    except Exception as e:  # the Rust side must fail too
                        rendered, error = None, f"{type(e).__name__}: {e}"
                    chat_cases.append(
                        {
                            "template": tname,
                            "conversation": cname,
                            "add_generation_prompt": agp,
                            "tools": tools is not None,
                            "rendered": rendered,
                            "error": error,
                        }
                    )
    with open(os.path.join(OUT, "smollm2_chat.json"), "w", encoding="utf-8") as f:
        json.dump(
            {"templates": templates, "conversations": CONVERSATIONS, "tools": TOOLS, "cases": chat_cases},
            f,
            ensure_ascii=False,
            indent=1,
        )

    hf_dir = os.path.join(OUT, "smollm2_hf")
    tok.save_pretrained(hf_dir)
    # The pretty-printed tokenizer.json is ~3.5 MB; the same tokenizer serialized compactly fits the budget.
    tok.backend_tokenizer.save(os.path.join(hf_dir, "tokenizer.json"), pretty=False)
    size = sum(os.path.getsize(os.path.join(hf_dir, n)) for n in os.listdir(hf_dir))
    print(f"hf folder: {sorted(os.listdir(hf_dir))}, {size} bytes")
    if size > 3 * 1024 * 1024:
        print("hf folder over 3 MB; removing it")
        for n in os.listdir(hf_dir):
            os.remove(os.path.join(hf_dir, n))
        os.rmdir(hf_dir)


SYNTH_TRAIN = [
    "Hello world! The quick brown fox jumps over the lazy dog 12345 times.",
    "I'm sure they've done it, we'll see; she'd've said 3.14159.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "中文测试：你好，世界！ 日本語のテキスト 한국어 Ünïcödé àccénts 😀🎉",
    "CamelCaseWords and snake_case_words, URLs like https://example.com/a?b=c",
] * 20

SYNTH_CORPUS = [
    "",
    "Hello world",
    "  Hello   world  \n\n\tTabs",
    "I'm sure they've 12345 apples and 3.14159 pies",
    "CamelCaseWords snake_case_words HTTPServer",
    "def fib(n):\n    return n\r\n",
    "中文测试 日本語 한국어 😀 Ünïcödé",
    "new\n\n\nlines   and   spaces   ",
    "<|special|> inside <|special|>text",
    "<think>user defined</think>",
]

PRE_TYPES = ["default", "smollm", "llama-bpe", "qwen2", "qwen35", "gpt-4o", "tekken"]


def synthetic_byte_level():
    """A 600-token byte-level BPE trained on SYNTH_TRAIN, as GGUF metadata."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<|special|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(SYNTH_TRAIN, trainer)
    model = json.loads(tk.to_str())["model"]
    vocab = model["vocab"]
    tokens = [None] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    tokens += ["<think>", "</think>"]
    token_type = [3 if t in ("<|endoftext|>", "<|special|>") else 1 for t in tokens[:-2]] + [4, 4]
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": token_type,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": 0,
        "tokenizer.ggml.eos_token_id": 0,
    }


def synthetic_sentencepiece(tmp):
    """A 400-piece SentencePiece BPE (byte fallback) trained on SYNTH_TRAIN, as GGUF metadata (no merges)."""
    import sentencepiece as spm

    prefix = os.path.join(tmp, "sp")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SYNTH_TRAIN), model_prefix=prefix, vocab_size=400, model_type="bpe",
        byte_fallback=True, user_defined_symbols=["<think>"], minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(
            2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i)
            else 4 if sp.id_to_piece(i) == "<think>" else 1
        )
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.bos_token_id": sp.bos_id(),
        "tokenizer.ggml.eos_token_id": sp.eos_id(),
        "tokenizer.ggml.unknown_token_id": sp.unk_id(),
    }


def reference_ids(architecture, metadata):
    """Ids from transformers' own GGUF tokenizer construction for this metadata."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer,
    )
    from transformers import PreTrainedTokenizerFast

    renames = GGUF_TOKENIZER_MAPPING["tokenizer"]
    tokenizer_dict = {renames[k[len("tokenizer."):]]: v for k, v in metadata.items() if k[len("tokenizer."):] in renames}
    backend, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    tokens = metadata["tokenizer.ggml.tokens"]
    add_bos = metadata["tokenizer.ggml.model"] == "llama"
    bos = tokens[metadata["tokenizer.ggml.bos_token_id"]]
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token=tokens[metadata["tokenizer.ggml.eos_token_id"]],
        add_bos_token=add_bos,
    )
    cases = []
    for text in SYNTH_CORPUS:
        ids = tok.encode(text, add_special_tokens=False)
        cases.append(
            {
                "text": text,
                "ids": ids,
                "ids_with_special": tok.encode(text, add_special_tokens=True),
                "decoded": tok.decode(ids),
            }
        )
    return cases


def synthetic_main():
    import tempfile

    out = []
    byte_level = synthetic_byte_level()
    for pre in PRE_TYPES:
        metadata = dict(byte_level, **{"tokenizer.ggml.pre": pre})
        out.append({"name": f"gpt2/{pre}", "metadata": metadata, "cases": reference_ids("llama", metadata)})
    with tempfile.TemporaryDirectory() as tmp:
        metadata = synthetic_sentencepiece(tmp)
    out.append({"name": "llama/spm", "metadata": metadata, "cases": reference_ids("llama", metadata)})
    with open(os.path.join(OUT, "synthetic_gguf.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
    synthetic_main()
