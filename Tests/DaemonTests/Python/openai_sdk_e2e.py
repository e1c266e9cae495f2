"""End-to-end checks of droplorad's OpenAI API with the official OpenAI Python SDK over the
Unix socket (httpx's `uds` transport): every request field the daemon serves, streamed and not,
sync and async, and a 400 naming `param` for every field it refuses.

Run by Tests/DaemonTests/OpenAISDKTests.swift against a fresh daemon:
    python3 openai_sdk_e2e.py SOCKET_PATH BASE_MODEL_ID
Exits non-zero with the failed checks listed. scripts/test.sh installs `openai` with pip.
"""
import asyncio
import json
import os
import sys
import traceback

import jsonschema
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
    refused("tool_choice", lambda: chat(tool_choice="required"))
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
    # Streamed: the same tokens, log probabilities and offsets, spread over the chunks.
    text, tokens, values, offsets = "", [], [], []
    for c in client.completions.create(model=BASE, prompt="The sky is", max_tokens=5, temperature=0, logprobs=2,
                                       stream=True, extra_body={"ignore_eos": True}):
        for ch in c.choices:
            text += ch.text
            if ch.logprobs:
                tokens += ch.logprobs.tokens
                values += ch.logprobs.token_logprobs
                offsets += ch.logprobs.text_offset
    assert text == r.choices[0].text and tokens == lp.tokens and offsets == lp.text_offset, (text, tokens, offsets)
    assert all(abs(a - b) < 1e-3 for a, b in zip(values, lp.token_logprobs)), (values, lp.token_logprobs)


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


def metric(name):
    """The unlabelled sample `name` of GET /metrics."""
    for line in raw.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


@check
def n_choices_evaluate_the_prompt_once():
    # A prompt no slot holds yet: one choice evaluates it and the other starts from a copy
    # (max_concurrent_generations 2); the third, queued, finds it in a finished choice's slot
    # and evaluates only its last token.
    messages = [{"role": "user", "content": "Unique prompt 91731: " + "list the colours of the rainbow. " * 20}]
    before = metric("droplorad_prompt_tokens_total") - metric("droplorad_prompt_tokens_reused_total")
    r = chat(n=3, messages=messages, temperature=1.0, seed=5, max_completion_tokens=4, extra_body={"ignore_eos": True})
    evaluated = metric("droplorad_prompt_tokens_total") - metric("droplorad_prompt_tokens_reused_total") - before
    assert len(r.choices) == 3 and r.usage.prompt_tokens > 100, r.usage
    assert evaluated <= r.usage.prompt_tokens + 1, (evaluated, r.usage.prompt_tokens)


@check
def numbers_the_field_cannot_hold_are_refused_by_name():
    refused("max_completion_tokens", lambda: chat(max_completion_tokens=2.5))
    refused("n", lambda: chat(n=1e20))
    refused("seed", lambda: chat(seed=-1.5))
    refused("max_tokens", lambda: client.completions.create(model=BASE, prompt="Hi", max_tokens=2.5))
    # Beyond a double: Python's json cannot write 1e400, so the body goes as text.
    for field in ("temperature", "max_tokens", "n"):
        body = '{"messages": [{"role": "user", "content": "hi"}], "%s": 1e400}' % field
        r = raw.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text


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


# A schema with most of what the compiler supports: required and optional properties, no extra
# keys, enums, bounded integers and numbers, bounded strings, a format, arrays with item limits,
# nullable values, anyOf, and $ref into $defs.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"enum": ["admin", "user", "guest"]},
        "score": {"type": "number", "minimum": 0, "maximum": 10},
        "born": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1, "maxItems": 3},
        "email": {"type": ["string", "null"], "format": "email"},
        "id": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 999}, {"const": "none"}]},
        "boss": {"$ref": "#/$defs/boss"},
    },
    "required": ["name", "age", "role", "tags", "boss"],
    "additionalProperties": False,
    # Not recursive here: sampled text may nest a recursive definition past any token limit (the
    # grammar tests walk recursive schemas).
    "$defs": {"boss": {"anyOf": [{"type": "null"}, {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 12}},
        "required": ["name"], "additionalProperties": False}]}},
}
PERSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
VALIDATOR = jsonschema.Draft202012Validator(PERSON, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
ASK_PERSON = [{"role": "user", "content": "Describe a fictional employee as JSON."}]


def valid_person(text):
    value = json.loads(text)
    VALIDATOR.validate(value)
    return value


@check
def json_schema_outputs_validate_over_sampled_generations():
    # 12 samples at temperature 1 (3 requests of n=4), each must parse and validate.
    outputs = []
    for seed in range(3):
        # The budget leaves room for the unbounded email string a sampled model may spin out.
        r = chat(messages=ASK_PERSON, temperature=1.0, seed=seed, n=4, max_completion_tokens=400,
                 response_format=PERSON_FORMAT)
        for c in r.choices:
            assert c.finish_reason == "stop", (c.finish_reason, c.message.content)
            outputs.append(c.message.content)
    for text in outputs:
        valid_person(text)
    # Properties come in the schema's order, not sorted.
    keys = list(json.loads(outputs[0]).keys())
    assert keys == [k for k in PERSON["properties"] if k in keys], keys
    # Streamed: the deltas join into a valid document.
    chunks = list(chat(messages=ASK_PERSON, temperature=1.0, seed=7, max_completion_tokens=400,
                       response_format=PERSON_FORMAT, stream=True))
    valid_person("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
    # The SDK's own structured-output helper parses the answer.
    parsed = client.chat.completions.parse(model=BASE, messages=ASK_PERSON, temperature=1.0, seed=3,
                                           max_completion_tokens=400, response_format=PERSON_FORMAT)
    VALIDATOR.validate(json.loads(parsed.choices[0].message.content))


@check
def json_object_and_completions_route():
    # json_object bounds nothing: a sampled model may nest objects for a while before closing them.
    r = chat(messages=ASK_PERSON, temperature=1.0, seed=1, max_completion_tokens=400,
             response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "stop", r.choices[0]
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    c = client.completions.create(model=BASE, prompt="A person as JSON:", max_tokens=400, temperature=1.0, seed=2,
                                  extra_body={"response_format": PERSON_FORMAT})
    assert c.choices[0].finish_reason == "stop", c.choices[0]
    valid_person(c.choices[0].text)


@check
def gbnf_grammar_extension():
    yes_no = {"grammar": 'root ::= ("yes" | "no") "."'}
    for seed in range(3):
        r = chat(messages=[{"role": "user", "content": "Is the sky blue?"}], temperature=1.0, seed=seed,
                 max_completion_tokens=8, extra_body=yes_no)
        assert r.choices[0].message.content in ("yes.", "no."), r.choices[0].message.content
    chunks = list(chat(messages=[{"role": "user", "content": "Is fire cold?"}], max_completion_tokens=8,
                       stream=True, extra_body=yes_no))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) in ("yes.", "no.")
    c = client.completions.create(model=BASE, prompt="Answer:", max_tokens=8, temperature=0, extra_body=yes_no)
    assert c.choices[0].text in ("yes.", "no."), c.choices[0].text


@check
def structured_output_refusals_name_the_field():
    schema_with = lambda extra: {"type": "json_schema", "json_schema": {"name": "x", "schema": extra}}
    refused("response_format.json_schema.schema", lambda: chat(response_format=schema_with({"type": "string", "pattern": "a+"})))
    refused("response_format.json_schema.schema", lambda: chat(response_format=schema_with({"type": "object", "not": {}})))
    refused("response_format.json_schema.schema", lambda: chat(response_format=schema_with({"$ref": "#/$defs/none"})))
    refused("response_format.type", lambda: chat(response_format={"type": "yaml"}))
    refused("response_format.json_schema.colour", lambda: chat(
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "colour": 1}}))
    refused("grammar", lambda: chat(extra_body={"grammar": "root ::= \"a"}))
    refused("grammar", lambda: chat(extra_body={"grammar": "root ::= x"}))
    refused("grammar", lambda: chat(response_format={"type": "json_object"}, extra_body={"grammar": 'root ::= "a"'}))
    refused("tools[0].function.parameters", lambda: chat(
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "patternProperties": {}}}}],
        tool_choice="required"))
    refused("tools[0].function.name", lambda: chat(tools=[{"type": "function", "function": {"name": "a b"}}]))
    refused("tools[0].function.colour", lambda: chat(tools=[{"type": "function", "function": {"name": "f", "colour": 1}}]))
    refused("tool_choice", lambda: chat(tools=WEATHER_TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}))
    refused("response_format", lambda: chat(tools=WEATHER_TOOLS, tool_choice="auto", response_format={"type": "json_object"}))


WEATHER = {"type": "object", "properties": {
    "city": {"type": "string", "minLength": 1, "maxLength": 30},
    "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": False}
TIME = {"type": "object", "properties": {"timezone": {"type": "string", "maxLength": 30}},
        "required": ["timezone"], "additionalProperties": False}
WEATHER_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "Current time in a timezone",
                                      "parameters": TIME}},
]
ASK_WEATHER = [{"role": "user", "content": "What is the weather like in Paris right now?"}]


def check_call(call, name, schema):
    assert call.type == "function" and call.id.startswith("call_"), call
    assert call.function.name == name, call
    jsonschema.validate(json.loads(call.function.arguments), schema)


@check
def tool_call_round_trip():
    r = chat(messages=ASK_WEATHER, tools=WEATHER_TOOLS, tool_choice="required", max_completion_tokens=80)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert len(choice.message.tool_calls) == 1, choice.message
    call = choice.message.tool_calls[0]
    assert call.function.name in ("get_weather", "get_time"), call
    check_call(call, call.function.name, WEATHER if call.function.name == "get_weather" else TIME)
    # A named function is the one called, its arguments sampled under its schema.
    for seed in range(3):
        r = chat(messages=ASK_WEATHER, tools=WEATHER_TOOLS, temperature=1.0, seed=seed, max_completion_tokens=80,
                 tool_choice={"type": "function", "function": {"name": "get_weather"}})
        assert r.choices[0].finish_reason == "tool_calls", r.choices[0]
        check_call(r.choices[0].message.tool_calls[0], "get_weather", WEATHER)
    # The answer goes back as the SDK builds it, with the tool's result: the model answers in text.
    assistant = r.choices[0].message.model_dump(exclude_none=True)
    messages = ASK_WEATHER + [assistant, {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"],
                                          "content": "{\"temperature\": 21, \"sky\": \"sunny\"}"}]
    final = chat(messages=messages, tools=WEATHER_TOOLS, tool_choice="none", max_completion_tokens=40)
    assert final.choices[0].finish_reason in ("stop", "length") and final.choices[0].message.content, final
    assert not final.choices[0].message.tool_calls
    # auto: either text or well-formed calls of offered tools.
    auto = chat(messages=ASK_WEATHER, tools=WEATHER_TOOLS, max_completion_tokens=60).choices[0]
    if auto.finish_reason == "tool_calls":
        assert all(c.function.name in ("get_weather", "get_time") for c in auto.message.tool_calls)
    else:
        assert auto.message.content and not auto.message.tool_calls, auto


@check
def tool_calls_streamed_as_deltas():
    stream = chat(messages=ASK_WEATHER, tools=WEATHER_TOOLS, stream=True, max_completion_tokens=80,
                  tool_choice={"type": "function", "function": {"name": "get_weather"}})
    calls, finish, content = {}, None, ""
    for c in stream:
        if not c.choices:
            continue
        d = c.choices[0].delta
        content += d.content or ""
        for t in d.tool_calls or []:
            entry = calls.setdefault(t.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += t.id or ""
            entry["name"] += (t.function.name or "") if t.function else ""
            entry["arguments"] += (t.function.arguments or "") if t.function else ""
        finish = c.choices[0].finish_reason or finish
    assert finish == "tool_calls" and content == "", (finish, content)
    assert list(calls) == [0] and calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_"), calls
    jsonschema.validate(json.loads(calls[0]["arguments"]), WEATHER)
    # Parallel calls when asked for: one or more, each valid.
    r = chat(messages=[{"role": "user", "content": "Weather in Paris and in Rome?"}], tools=WEATHER_TOOLS,
             tool_choice="required", parallel_tool_calls=True, max_completion_tokens=120)
    assert r.choices[0].finish_reason == "tool_calls", r.choices[0]
    for call in r.choices[0].message.tool_calls:
        check_call(call, call.function.name, WEATHER if call.function.name == "get_weather" else TIME)


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


def scaled_adapter_id():
    """Loads the random adapter the Swift test wrote (adapters/scaled.gguf) once; its lora id."""
    r = raw.post("/v1/adapters", json={"name": "scaled", "path": "scaled.gguf"})
    assert r.status_code in (201, 409), r.text
    listed = raw.get("/lora-adapters")
    assert listed.status_code == 200, listed.text
    ids = {e["path"]: e["id"] for e in listed.json()}
    assert set(e["scale"] for e in listed.json()) <= {0, 1}, listed.json()
    return ids["scaled"]


def answer(model, **kw):
    return client.chat.completions.create(
        model=model, messages=USER, temperature=0, max_completion_tokens=12, **kw).choices[0].message.content


@check
def adapter_scale_and_llama_server_lora():
    sid = scaled_adapter_id()
    base, full = answer(BASE), answer("scaled")
    assert base != full, "the adapter must change the answer for the checks to mean anything"
    assert answer("scaled", extra_body={"adapter_scale": 0}) == base
    assert answer("scaled", extra_body={"adapter_scale": 1}) == full
    lora_full = client.chat.completions.create(
        model=BASE, messages=USER, temperature=0, max_completion_tokens=12,
        extra_body={"lora": [{"id": sid, "scale": 1}]})
    assert lora_full.model == "scaled" and lora_full.choices[0].message.content == full, lora_full
    assert answer(BASE, extra_body={"lora": [{"id": sid, "scale": 0}]}) == base
    # Another scale runs unmerged; both spellings are the same request.
    half = answer("scaled", extra_body={"adapter_scale": 0.5})
    assert half == answer(BASE, extra_body={"lora": [{"id": sid, "scale": 0.5}]})
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="scaled", messages=USER, temperature=0, max_completion_tokens=12, stream=True,
        extra_body={"adapter_scale": 0.5}) if c.choices)
    assert streamed == half, (streamed, half)
    done = client.completions.create(model="scaled", prompt="Colours:", max_tokens=6, temperature=0,
                                     extra_body={"adapter_scale": 0})
    assert done.choices[0].text == client.completions.create(
        model=BASE, prompt="Colours:", max_tokens=6, temperature=0).choices[0].text
    refused("adapter_scale", lambda: answer("scaled", extra_body={"adapter_scale": 4.5}))
    # Judged as sent, not after rounding to a Float (4.0000001 would become 4).
    refused("adapter_scale", lambda: answer("scaled", extra_body={"adapter_scale": 4.0000001}))
    refused("lora[0].scale", lambda: answer(BASE, extra_body={"lora": [{"id": sid, "scale": -4.0000001}]}))
    assert answer("scaled", extra_body={"adapter_scale": 4}) is not None
    refused("lora[0].scale", lambda: answer(BASE, extra_body={"lora": [{"id": sid, "scale": -9}]}))
    refused("lora[0].id", lambda: answer(BASE, extra_body={"lora": [{"id": 99, "scale": 1}]}))
    refused("lora", lambda: answer(BASE, extra_body={"lora": [{"id": sid, "scale": 1}, {"id": sid + 1, "scale": 1}]}))
    refused("adapter_scale", lambda: answer(BASE, extra_body={"adapter_scale": 1, "lora": [{"id": sid, "scale": 1}]}))


@check
def chat_template_kwargs_enable_thinking():
    plain = chat().choices[0].message.content
    # SmolLM2's ChatML has no thinking mode: false is what it does already, true cannot be honoured.
    assert chat(extra_body={"chat_template_kwargs": {"enable_thinking": False}}).choices[0].message.content == plain
    refused("chat_template_kwargs.enable_thinking",
            lambda: chat(extra_body={"chat_template_kwargs": {"enable_thinking": True}}))
    refused("chat_template_kwargs.reasoning_effort",
            lambda: chat(extra_body={"chat_template_kwargs": {"reasoning_effort": "low"}}))


# E2E_ONLY=name1,name2 runs only those checks (while working on them).
only = set(filter(None, os.environ.get("E2E_ONLY", "").split(",")))
checks = [fn for fn in checks if not only or fn.__name__ in only]
for fn in checks:
    try:
        fn()
        print(f"ok   {fn.__name__}")
    except Exception:
        failures.append(fn.__name__)
        print(f"FAIL {fn.__name__}\n{traceback.format_exc()}")
print(f"{len(checks) - len(failures)}/{len(checks)} passed")
sys.exit(1 if failures else 0)
