"""End-to-end checks of droplorad's OpenAI API with the official OpenAI Python SDK over the
Unix socket (httpx's `uds` transport): every request field the daemon serves, streamed and not,
sync and async, and a 400 naming `param` for every field it refuses.

Run by Tests/DaemonTests/OpenAISDKTests.swift against a fresh daemon:
    python3 openai_sdk_e2e.py SOCKET_PATH BASE_MODEL_ID
Exits non-zero with the failed checks listed. scripts/test.sh installs `openai` with pip.
"""
import asyncio
import json
import sys
import traceback

import openai

try:  # openai 3.x is built on httpx2 (httpx's successor, same transport API); 1.x/2.x on httpx
    import httpx2 as httpx
except ImportError:
    import httpx

SOCKET, BASE = sys.argv[1], sys.argv[2]
client = openai.OpenAI(
    base_url="http://localhost/v1", api_key="unused", max_retries=0, timeout=120,
    http_client=httpx.Client(transport=httpx.HTTPTransport(uds=SOCKET)))
raw = httpx.Client(transport=httpx.HTTPTransport(uds=SOCKET), base_url="http://localhost", timeout=120)
USER = [{"role": "user", "content": "Name three colours."}]
failures = []
checks = []


def check(fn):
    checks.append(fn)
    return fn


def refused(param, call):
    """`call` must fail with 400 and `param` naming the field."""
    try:
        call()
    except openai.BadRequestError as e:
        body = e.body if isinstance(e.body, dict) else {}
        got = body.get("param")
        assert got == param, f"param {got!r}, wanted {param!r}: {body}"
        return
    raise AssertionError(f"{param}: accepted, wanted 400")


def chat(**kw):
    kw.setdefault("messages", USER)
    kw.setdefault("temperature", 0)
    if "max_tokens" not in kw:
        kw.setdefault("max_completion_tokens", 8)
    return client.chat.completions.create(model=BASE, **kw)


def token_id(text):
    r = raw.post("/tokenize", json={"content": text})
    assert r.status_code == 200, r.text
    return r.json()["tokens"][0]


@check
def models_list_and_retrieve():
    ids = [m.id for m in client.models.list().data]
    assert BASE in ids, ids
    m = client.models.retrieve(BASE)
    assert m.id == BASE and m.object == "model", m
    try:
        client.models.retrieve("no-such-model")
        raise AssertionError("unknown model retrieved")
    except openai.NotFoundError:
        pass


@check
def max_completion_tokens_and_ignore_eos():
    r = chat(max_completion_tokens=5, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 5, r.usage
    assert r.choices[0].finish_reason == "length"
    r = chat(max_tokens=3, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 3, r.usage
    # llama-server's ignore_eos: runs to the limit even where the model would end its turn.
    r = chat(messages=[{"role": "user", "content": "Say OK."}], max_completion_tokens=60,
             extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 60, r.usage
    refused("max_completion_tokens", lambda: chat(max_tokens=3, max_completion_tokens=4))
    refused("max_completion_tokens", lambda: chat(max_completion_tokens=0))


@check
def stop_up_to_four():
    r = chat(stop=["zzz1", "zzz2", "zzz3", "zzz4"])
    assert r.choices[0].message.content
    full = chat(max_completion_tokens=16).choices[0].message.content
    word = full.split()[1] if len(full.split()) > 1 else full[:3]
    cut = chat(max_completion_tokens=16, stop=[word]).choices[0].message.content
    assert word not in cut and full.startswith(cut), (full, cut)
    refused("stop", lambda: chat(stop=["a", "b", "c", "d", "e"]))


@check
def ignored_fields_and_developer_role():
    a = chat(user="someone", metadata={"k": "v"}, store=False).choices[0].message.content
    b = chat().choices[0].message.content
    assert a == b, (a, b)
    sys_msg = [{"role": "system", "content": "Answer in French."}] + USER
    dev_msg = [{"role": "developer", "content": "Answer in French."}] + USER
    assert chat(messages=sys_msg).choices[0].message.content == chat(messages=dev_msg).choices[0].message.content


@check
def assistant_tool_calls_with_null_content_and_tool_results():
    messages = USER + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "colours", "arguments": "{\"n\": 3}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "red, green, blue"},
    ]
    r = chat(messages=messages)
    assert r.choices[0].message.content is not None
    refused("messages[1].tool_call_id", lambda: chat(messages=USER + [{"role": "tool", "content": "x"}]))
    refused("messages[0].content", lambda: chat(messages=[{"role": "user", "content": None}]))


@check
def seed_repeats_a_sampled_answer():
    a = chat(temperature=1.0, seed=42, max_completion_tokens=16).choices[0].message.content
    b = chat(temperature=1.0, seed=42, max_completion_tokens=16).choices[0].message.content
    assert a == b, (a, b)


@check
def logit_bias_forces_and_bans():
    banana = token_id(" banana")
    r = chat(logit_bias={str(banana): 100}, max_completion_tokens=3)
    assert r.choices[0].message.content.count("banana") == 3, r.choices[0].message.content
    greedy = chat(max_completion_tokens=1).choices[0].message.content
    first = token_id(greedy) if greedy else None
    if first is not None:
        banned = chat(max_completion_tokens=1, logit_bias={str(first): -100}).choices[0].message.content
        assert banned != greedy, (greedy, banned)
    refused("logit_bias", lambda: chat(logit_bias={str(banana): 101}))
    refused("logit_bias", lambda: chat(logit_bias={"word": 1}))
    refused("logit_bias", lambda: chat(logit_bias={"99999999": 1}))


@check
def presence_and_frequency_penalties():
    # A prompt the model answers by repeating itself; OpenAI's penalties (exact arithmetic in
    # EngineTests' SamplerTests) must change the greedy answer.
    echo = [{"role": "user", "content": "Repeat exactly: banana banana banana banana banana banana banana"}]
    plain = chat(messages=echo, max_completion_tokens=16).choices[0].message.content
    penal = chat(messages=echo, max_completion_tokens=16, frequency_penalty=2,
                 presence_penalty=2).choices[0].message.content
    assert plain != penal, (plain, penal)
    assert plain.count("banana") > penal.count("banana"), (plain, penal)
    refused("presence_penalty", lambda: chat(presence_penalty=2.5))
    refused("frequency_penalty", lambda: chat(frequency_penalty=-3))


@check
def sampling_values_checked_in_request_precision():
    # Issue 18 item 8: valid doubles that underflow or overflow a Float still work.
    assert chat(temperature=1.0, top_p=1e-300).choices[0].message.content is not None
    assert chat(extra_body={"repeat_penalty": 1e300}).choices[0].message.content is not None
    r = chat(max_completion_tokens=10**12, extra_body={"ignore_eos": False})
    assert r.choices[0].finish_reason in ("stop", "length")
    refused("top_p", lambda: chat(top_p=0))
    refused("temperature", lambda: chat(temperature=-1))
    refused("top_k", lambda: chat(extra_body={"top_k": -1}))
    refused("min_p", lambda: chat(extra_body={"min_p": 2}))
    refused("repeat_penalty", lambda: chat(extra_body={"repeat_penalty": 0}))
    refused("seed", lambda: chat(seed=-1))


@check
def unsupported_fields_are_refused_by_name():
    refused("response_format", lambda: chat(response_format={"type": "json_object"}))
    refused("tools", lambda: chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]))
    refused("tool_choice", lambda: chat(tool_choice="required"))
    refused("grammar", lambda: chat(extra_body={"grammar": "root ::= \"a\""}))
    refused("frobnicate", lambda: chat(extra_body={"frobnicate": 1}))
    refused("messages[0].colour", lambda: chat(messages=[{"role": "user", "content": "hi", "colour": "red"}]))
    refused("stream_options.bogus", lambda: chat(stream=True, stream_options={"bogus": True}))
    refused("messages[0].role", lambda: chat(messages=[{"role": "wizard", "content": "hi"}]))
    # Fields that are accepted at their do-nothing values.
    assert chat(n=1, logprobs=False, response_format={"type": "text"}, tool_choice="none", parallel_tool_calls=True)


@check
def streaming_matches_the_plain_answer_with_usage():
    plain = chat(max_completion_tokens=12)
    chunks = list(chat(max_completion_tokens=12, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content, (text, plain.choices[0].message.content)
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [plain.choices[0].finish_reason], finals
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


@check
def legacy_completions():
    r = client.completions.create(model=BASE, prompt="The sky is", max_tokens=4, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 4 and r.choices[0].text, r
    s = list(client.completions.create(model=BASE, prompt="The sky is", max_tokens=4, temperature=0,
                                       stream=True, extra_body={"ignore_eos": True}))
    assert "".join(c.choices[0].text for c in s if c.choices) == r.choices[0].text
    refused("echo", lambda: client.completions.create(model=BASE, prompt="x", max_tokens=1, echo=True))
    refused("best_of", lambda: client.completions.create(model=BASE, prompt="x", max_tokens=1, best_of=2))
    refused("suffix", lambda: client.completions.create(model=BASE, prompt="x", max_tokens=1, suffix="y"))
    refused("logprobs", lambda: client.completions.create(model=BASE, prompt="x", max_tokens=1, logprobs=21))


@check
def chat_logprobs_plain_and_streamed():
    r = chat(logprobs=True, top_logprobs=3, max_completion_tokens=6, extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == 6 == r.usage.completion_tokens, content
    assert "".join(e.token for e in content) == r.choices[0].message.content
    for e in content:
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token
        assert len(e.top_logprobs) == 3 and e.logprob <= 0
        lps = [t.logprob for t in e.top_logprobs]
        assert lps == sorted(lps, reverse=True), lps
        # Greedy: the chosen token is the most likely one.
        assert e.top_logprobs[0].token == e.token and abs(e.top_logprobs[0].logprob - e.logprob) < 1e-9
    # The probabilities of the alternatives are a distribution's: they sum to at most 1.
    assert sum(2.718281828 ** t.logprob for t in content[0].top_logprobs) <= 1 + 1e-6
    assert chat(logprobs=False).choices[0].logprobs is None
    chunks = list(chat(logprobs=True, top_logprobs=2, max_completion_tokens=6, stream=True,
                       extra_body={"ignore_eos": True}))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in content], (streamed, content)
    assert all(len(e.top_logprobs) == 2 for e in streamed)
    refused("top_logprobs", lambda: chat(logprobs=True, top_logprobs=21))
    refused("top_logprobs", lambda: chat(top_logprobs=2))


@check
def completion_logprobs():
    r = client.completions.create(model=BASE, prompt="The sky is", max_tokens=5, temperature=0, logprobs=2,
                                  extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 5, lp
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    assert all(len(t) <= 2 for t in lp.top_logprobs)
    assert all(max(t.values()) >= v - 1e-9 for t, v in zip(lp.top_logprobs, lp.token_logprobs))


@check
def n_independent_choices():
    kw = dict(temperature=1.0, seed=7, max_completion_tokens=12, extra_body={"ignore_eos": True})
    r = chat(n=3, **kw)
    assert [c.index for c in r.choices] == [0, 1, 2], r.choices
    assert r.usage.completion_tokens == 36, r.usage
    texts = [c.message.content for c in r.choices]
    assert len(set(texts)) > 1, texts
    assert [c.message.content for c in chat(n=3, **kw).choices] == texts  # seeded: reproducible
    assert chat(temperature=1.0, seed=7, max_completion_tokens=12, extra_body={"ignore_eos": True}).choices[0].message.content == texts[0]
    chunks = list(chat(n=2, stream=True, stream_options={"include_usage": True}, **kw))
    by_index = {0: "", 1: ""}
    finishes = {}
    for c in chunks:
        for ch in c.choices:
            by_index[ch.index] += ch.delta.content or ""
            if ch.finish_reason:
                finishes[ch.index] = ch.finish_reason
    assert [by_index[0], by_index[1]] == texts[:2], (by_index, texts)
    assert finishes == {0: "length", 1: "length"}, finishes
    assert chunks[-1].usage.completion_tokens == 24
    c = client.completions.create(model=BASE, prompt="Once upon a time", n=2, max_tokens=4, temperature=1.0, seed=3,
                                  extra_body={"ignore_eos": True})
    assert sorted(ch.index for ch in c.choices) == [0, 1] and c.usage.completion_tokens == 8
    refused("n", lambda: chat(n=5))  # limits.max_choices is 4 by default
    refused("n", lambda: chat(n=0))


@check
def tokenize_and_detokenize():
    r = raw.post("/tokenize", json={"content": "Hello world", "with_pieces": True}).json()
    ids = [t["id"] for t in r["tokens"]]
    assert "".join(t["piece"] for t in r["tokens"]) == "Hello world", r
    assert raw.post("/tokenize", json={"content": "Hello world"}).json() == {"tokens": ids}
    assert raw.post("/detokenize", json={"tokens": ids}).json() == {"content": "Hello world"}
    special = raw.post("/tokenize", json={"content": "<|im_start|>"}).json()["tokens"]
    assert len(special) == 1, special
    literal = raw.post("/tokenize", json={"content": "<|im_start|>", "parse_special": False}).json()["tokens"]
    assert len(literal) > 1, literal
    bad = raw.post("/detokenize", json={"tokens": [10**9]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens", bad.text
    bad = raw.post("/tokenize", json={"content": "x", "extra": 1})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "extra", bad.text


@check
def async_concurrent_streams():
    async def run():
        aclient = openai.AsyncOpenAI(
            base_url="http://localhost/v1", api_key="unused", max_retries=0, timeout=120,
            http_client=httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=SOCKET)))

        async def one(i):
            stream = await aclient.chat.completions.create(
                model=BASE, messages=[{"role": "user", "content": f"Count to {i + 3}."}], temperature=0,
                max_completion_tokens=8, stream=True, extra_body={"ignore_eos": True},
                stream_options={"include_usage": True})
            usage = None
            async for c in stream:
                usage = c.usage or usage
            return usage.completion_tokens

        plain = await aclient.chat.completions.create(model=BASE, messages=USER, temperature=0, max_completion_tokens=4)
        assert plain.choices[0].message.content
        counts = await asyncio.gather(*(one(i) for i in range(4)))
        assert counts == [8, 8, 8, 8], counts
        await aclient.close()
    asyncio.run(run())


for fn in checks:
    try:
        fn()
        print(f"ok   {fn.__name__}")
    except Exception:
        failures.append(fn.__name__)
        print(f"FAIL {fn.__name__}\n{traceback.format_exc()}")
print(f"{len(checks) - len(failures)}/{len(checks)} passed")
sys.exit(1 if failures else 0)
