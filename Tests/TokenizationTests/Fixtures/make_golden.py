#!/usr/bin/env python3
"""Makes golden.json for TokenizationTests from the references themselves.

Token ids and decoded text come from llama.cpp (PyPI llama-cpp-python==0.3.36, its
vocab-only loader, llama_tokenize / llama_detokenize / llama_vocab_is_eog). Chat
renderings come from jinja2 rendering the real template strings the way Hugging Face
transformers does (trim_blocks, lstrip_blocks, raise_exception). Run from the package root
after scripts/fetch-model.sh and scripts/fetch-test-vocabs.sh:

    python3 Tests/TokenizationTests/Fixtures/make_golden.py

Vocab files missing on this machine are skipped (their section is left out). Set
TOK_VOCAB_DIR to read the ggml-vocab-* files and templates/ from elsewhere.
"""
import ctypes
import json
import os
import sys

import jinja2
import llama_cpp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
# Where the ggml-vocab-* files and templates/ are (scripts/fetch-test-vocabs.sh puts them here).
VOCAB_DIR = os.environ.get("TOK_VOCAB_DIR", os.path.join(ROOT, "models", "vocab"))

VOCABS = {
    "smollm": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
    "gpt-2": "models/vocab/ggml-vocab-gpt-2.gguf",
    "llama-bpe": "models/vocab/ggml-vocab-llama-bpe.gguf",
    "qwen2": "models/vocab/ggml-vocab-qwen2.gguf",
    "llama-spm": "models/vocab/ggml-vocab-llama-spm.gguf",
    "phi-3": "models/vocab/ggml-vocab-phi-3.gguf",
    # Gemma 3 270M (scripts/fetch-gemma3.sh): SentencePiece, 262 144 tokens, no chat template.
    "gemma3": "models/gemma-3-270m-q4_k_m.gguf",
    # GPT-2's vocabulary with tokenizer.ggml.pre overridden to llama.cpp's "default" splitter.
    "gpt-2-default": "models/vocab/ggml-vocab-gpt-2.gguf",
}
OVERRIDES = {"gpt-2-default": {"tokenizer.ggml.pre": "default"}}

TEXTS = [
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n\n",
    "Hello world",
    " Hello world",
    "Hello World!",
    "hello   world  ",
    "Hello\tworld\t\ttabs",
    "line one\nline two\r\nline three\n\n  indented\n",
    "   leading and trailing   ",
    "It's, you're, we've, they'll, I'd, I'm, he's; IT'S YOU'RE WE'VE",
    "don't won't can't shouldn't",
    "1",
    "12",
    "123",
    "1234",
    "12345678901234567890",
    "3.14159 and 2,718,281 and -42",
    "Version 1.2.3-rc4 released 2024-05-01",
    "def foo(x):\n    return x * 2  # double\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "<html><body class=\"main\">Hi &amp; bye</body></html>",
    "print(\"Hello, World!\")\n\tif x==1:\n\t\tpass",
    "Emoji: 😀 🦙 👍🏽 👨‍👩‍👧‍👦 🇫🇷",
    "🦙🦙🦙",
    "CJK: 你好，世界！ 日本語のテキスト 한국어 텍스트",
    "Accents: café naïve façade Ångström résumé Zürich",
    "Greek Ελληνικά, Cyrillic Привет мир, Arabic مرحبا, Hebrew שלום",
    "Math: ∑ x² ≤ ∞ ± √2 ≈ 1.414 ½ ¾ ①②③",
    "Zero\u200bwidth\u00a0nbsp\u2003emspace\u3000ideographic",
    "Mixed\u0085nel and \x1c\x1d control \x07 bell",
    "tabs\t\t\tand  spaces   \t mixed \n\t\n",
    "<|im_start|>user\nhello<|im_end|>",
    "text with <|im_start|> inside and <|im_end|> too",
    "<|endoftext|>",
    "<s> and </s> and <unk>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|user|>\nHello<|end|>\n<|assistant|>\n",
    "'s 're 'S 'RE ''' ' ' '",
    "...!!!???,,,;;; --- ___ *** ~~~ ```",
    "Symbols $5 + 3 <= 4 ^ 2 ~ | `x` @ # % & * ( ) [ ] { } \\ / §¶©® «»¿¡",
    "Numbers 1234567 and 12 345 678 and ٣٤٥ and ½²³ and 1,000,000.00",
    "a" * 200,
    " " * 50 + "x",
    "The quick brown fox jumps over the lazy dog. " * 3,
]


def load_inp(name):
    path = os.path.join(VOCAB_DIR, "ggml-vocab-%s.gguf.inp" % name)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        parts = f.read().split("\n__ggml_vocab_test__\n")
    return [p for p in parts if p.strip("\n") != "" or p == ""]


def detokenize(vocab, ids, special):
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = 4096 + 8 * len(ids)
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, False, special)
    assert n >= 0, n
    return buf.raw[:n].decode("utf-8", errors="replace")


def vocab_section(name, path):
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False,
                          kv_overrides=OVERRIDES.get(name))
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    eog = [i for i in range(n) if llama_cpp.llama_vocab_is_eog(vocab, i)]
    texts = list(TEXTS)
    for t in load_inp(name.replace("-default", "")):
        if t not in texts:
            texts.append(t)
    cases = []
    for t in texts:
        b = t.encode("utf-8")
        modes = [(True, False), (False, False)]
        if "<" in t:
            modes.append((True, True))
        for add_special, parse_special in modes:
            ids = llm.tokenize(b, add_bos=add_special, special=parse_special)
            case = {"text": t, "addSpecial": add_special, "parseSpecial": parse_special, "ids": ids}
            if add_special and not parse_special:
                case["decoded"] = detokenize(vocab, ids, False)
            if parse_special:
                case["decodedSpecial"] = detokenize(vocab, ids, True)
            cases.append(case)
    return {
        "file": path,
        "vocabularySize": n,
        "bos": llama_cpp.llama_vocab_bos(vocab),
        "eos": llama_cpp.llama_vocab_eos(vocab),
        "eog": eog,
        "cases": cases,
    }


# --- chat templates -------------------------------------------------------------------

def raise_exception(msg):
    raise jinja2.exceptions.TemplateError(msg)


ENV = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, loader=jinja2.BaseLoader())
ENV.globals["raise_exception"] = raise_exception

# The real template strings, as stored in each model's tokenizer_config.json / GGUF.
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)
GEMMA3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""


def read_template_file(name):
    path = os.path.join(VOCAB_DIR, "templates", name)
    return open(path, encoding="utf-8").read() if os.path.exists(path) else None


def resolve(path):
    if path.startswith("models/vocab/"):
        return os.path.join(VOCAB_DIR, path[len("models/vocab/"):])
    return os.path.join(ROOT, path)


def gguf_template(path):
    from gguf import GGUFReader
    full = resolve(path)
    if not os.path.exists(full):
        return None
    r = GGUFReader(full)
    f = r.fields.get("tokenizer.chat_template")
    return f.contents() if f is not None else None


CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hello!"}],
    "system_user": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "multi_turn": [
        {"role": "user", "content": "  Hi there \n"},
        {"role": "assistant", "content": " Hello! How can I help?  "},
        {"role": "user", "content": "Tell me a joke about <|im_start|> tokens."},
    ],
    "system_multi": [
        {"role": "system", "content": "Be kind.\n"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hey."},
        {"role": "user", "content": "Bye [INST] <start_of_turn> </s>"},
    ],
    "unicode": [{"role": "user", "content": "café 🦙 你好\n\ttab"}],
    # Qwen 3 keeps reasoning only after the last user query and strips it from earlier turns.
    "thinking": [
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": "<think>\nSix sevens.\n</think>\n\n42"},
        {"role": "user", "content": "And 6*8?"},
    ],
    "thinking_last": [
        {"role": "system", "content": "Think briefly."},
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": "<think>\n\nSix sevens.\n\n</think>\n\n\n42"},
    ],
}


def chat_section():
    templates = [
        # name, family name expected, template text, bos, eos, conversations that the real template accepts
        ("smollm2", "chatml", gguf_template(VOCABS["smollm"]), "<|im_start|>", "<|im_end|>", None),
        ("qwen2", "chatml", gguf_template(VOCABS["qwen2"]), "<|endoftext|>", "<|endoftext|>", None),
        ("chatml", "chatml", CHATML, "", "<|im_end|>", None),
        ("llama3", "llama3", LLAMA3, "<|begin_of_text|>", "<|eot_id|>", None),
        ("llama3.1", "llama3.1", read_template_file("meta-llama-Llama-3.1-8B-Instruct.jinja"), "<|begin_of_text|>", "<|eot_id|>", None),
        ("llama2", "llama2", LLAMA2, "<s>", "</s>", None),
        ("mistral", "mistral", MISTRAL, "<s>", "</s>", None),
        ("gemma2", "gemma", read_template_file("google-gemma-2-2b-it.jinja"), "<bos>", "<eos>", None),
        ("gemma3", "gemma", GEMMA3, "<bos>", "<eos>", None),
        ("phi3.5", "phi3", read_template_file("microsoft-Phi-3.5-mini-instruct.jinja"), "<s>", "<|endoftext|>", None),
        ("phi3-legacy", "phi3-legacy", gguf_template(VOCABS["phi-3"]), "<s>", "<|endoftext|>", None),
        ("zephyr", "zephyr", ZEPHYR, "<s>", "</s>", None),
        ("qwen3", "qwen3", read_template_file("Qwen-Qwen3-0.6B.jinja"), "", "<|im_end|>", None),
    ]
    # Templates rendered again with extra variables (chat_template_kwargs).
    variants = [("qwen3-nothink", "qwen3", {"enable_thinking": False})]
    out = []
    for name, family, text, bos, eos, _ in templates:
        if text is None:
            print("chat: skipping %s (template source not found)" % name, file=sys.stderr)
            continue
        tmpl = ENV.from_string(text)
        renders = []
        for conv_name, messages in CONVERSATIONS.items():
            for agp in (True, False):
                try:
                    rendered = tmpl.render(messages=messages, add_generation_prompt=agp,
                                           bos_token=bos, eos_token=eos)
                except jinja2.exceptions.TemplateError:
                    continue  # the real template refuses this conversation
                renders.append({"conversation": conv_name, "addGenerationPrompt": agp, "expected": rendered})
        out.append({"name": name, "family": family, "template": text, "bos": bos, "eos": eos, "renders": renders})
    for name, source, kwargs in variants:
        base = next((e for e in out if e["name"] == source), None)
        if base is None:
            continue
        tmpl = ENV.from_string(base["template"])
        renders = []
        for conv_name, messages in CONVERSATIONS.items():
            for agp in (True, False):
                rendered = tmpl.render(messages=messages, add_generation_prompt=agp,
                                       bos_token=base["bos"], eos_token=base["eos"], **kwargs)
                renders.append({"conversation": conv_name, "addGenerationPrompt": agp, "expected": rendered})
        entry = dict(base, name=name, renders=renders)
        if "enable_thinking" in kwargs:
            entry["enableThinking"] = kwargs["enable_thinking"]
        out.append(entry)
    return out


def main():
    golden = {"vocabs": {}, "conversations": CONVERSATIONS, "chat": chat_section()}
    for name, path in VOCABS.items():
        full = resolve(path)
        if not os.path.exists(full):
            print("skipping %s: %s not found" % (name, path), file=sys.stderr)
            continue
        golden["vocabs"][name] = vocab_section(name, full)
        golden["vocabs"][name]["file"] = path
        if name in OVERRIDES:
            golden["vocabs"][name]["overrides"] = OVERRIDES[name]
    # Chat prompts tokenized by llama.cpp with special parsing (the whole rendered string).
    pairs = [("smollm", "smollm2"), ("qwen2", "qwen2"), ("llama-bpe", "llama3"),
             ("llama-bpe", "llama3.1"), ("llama-spm", "llama2"), ("llama-spm", "mistral"),
             ("phi-3", "phi3-legacy"), ("phi-3", "phi3.5"), ("gemma3", "gemma3"),
             ("qwen2", "qwen3"), ("qwen2", "qwen3-nothink")]
    chat_ids = []
    for vocab_name, template_name in pairs:
        path = resolve(VOCABS[vocab_name])
        entry = next((e for e in golden["chat"] if e["name"] == template_name), None)
        if entry is None or not os.path.exists(path):
            continue
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        for r in entry["renders"]:
            ids = llm.tokenize(r["expected"].encode("utf-8"), add_bos=True, special=True)
            chat_ids.append({"vocab": vocab_name, "template": template_name,
                             "conversation": r["conversation"],
                             "addGenerationPrompt": r["addGenerationPrompt"], "ids": ids})
    golden["chatIDs"] = chat_ids
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=0, sort_keys=True)
        f.write("\n")
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
