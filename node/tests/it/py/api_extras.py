"""What agents use beyond plain chat, through the official `openai` and `ollama` Python clients,
unchanged:
- tools: a required call and a named call (streamed, assembled from `delta.tool_calls` the way the
  client's users do), the tool's result sent back as a `role: "tool"` message and answered,
  `tool_choice: "none"`, `auto`, and Ollama's `tools` with `message.tool_calls`. Every call's
  arguments must parse and validate against the function's schema (`jsonschema`);
- `n` > 1 on chat completions, streamed and not;
- the legacy `/v1/completions` (a raw prompt, `echo`, a list of prompts times `n`, streamed) and
  Ollama's raw `/api/generate`;
- logprobs / top_logprobs on chat (streamed and not) and legacy completions: the tokens' bytes
  spell the answer;
- embeddings: `/v1/embeddings` (float and base64) and Ollama's `/api/embed`: unit vectors, the
  same for the same text on both APIs, similar texts closer than unrelated ones.

usage: api_extras.py BASE_URL API_KEY   (prints one JSON line of what it saw)
"""

import json
import sys

import jsonschema
import openai
from ollama import Client

base, key = sys.argv[1], sys.argv[2]
MODEL = "smollm2-135m"
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "maxLength": 24}},
    "required": ["timezone"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city now",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "The time in a timezone now",
                                      "parameters": TIME}},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
question = [{"role": "user", "content": "What is the weather in Paris?"}]
common = {"model": MODEL, "temperature": 0, "max_tokens": 80}
seen = {}


def checked(name, arguments):
    assert name in SCHEMAS, name
    value = json.loads(arguments)
    jsonschema.validate(value, SCHEMAS[name])
    return value


# Required: some call of an offered function, not streamed.
r = client.chat.completions.create(messages=question, tools=TOOLS, tool_choice="required", **common)
choice = r.choices[0]
assert choice.finish_reason == "tool_calls", r
assert choice.message.content is None, r
call = choice.message.tool_calls[0]
assert call.type == "function" and call.id, call
seen["required"] = {"name": call.function.name, "arguments": checked(call.function.name, call.function.arguments)}

# Named, streamed: the calls are assembled from the chunks' delta.tool_calls by index.
calls, finish = {}, None
for chunk in client.chat.completions.create(messages=question, tools=TOOLS, stream=True,
                                            tool_choice={"type": "function", "function": {"name": "get_time"}},
                                            **common):
    if not chunk.choices:
        continue
    c = chunk.choices[0]
    finish = c.finish_reason or finish
    for d in c.delta.tool_calls or []:
        entry = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
        entry["id"] = d.id or entry["id"]
        if d.function and d.function.name:
            entry["name"] += d.function.name
        if d.function and d.function.arguments:
            entry["arguments"] += d.function.arguments
assert finish == "tool_calls", (finish, calls)
assert [c["name"] for c in calls.values()] == ["get_time"], calls
streamed = calls[0]
seen["named_streamed"] = {"id": streamed["id"], "arguments": checked("get_time", streamed["arguments"])}

# The tool's result goes back as a tool message; the model answers from it.
conversation = question + [
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
    {"role": "tool", "tool_call_id": call.id, "content": "18 degrees celsius and sunny"},
]
r = client.chat.completions.create(messages=conversation, tools=TOOLS, tool_choice="none", **common)
assert r.choices[0].finish_reason in ("stop", "length"), r
assert r.choices[0].message.tool_calls is None, r
assert r.choices[0].message.content, r
seen["answered"] = r.choices[0].message.content

# Auto: the model decides; whatever it does must be well formed.
r = client.chat.completions.create(messages=question, tools=TOOLS, tool_choice="auto", **common)
m = r.choices[0].message
if m.tool_calls:
    assert r.choices[0].finish_reason == "tool_calls", r
    for c in m.tool_calls:
        assert c.function.name in SCHEMAS, c
        json.loads(c.function.arguments)
else:
    assert m.content, r
seen["auto"] = {"calls": len(m.tool_calls or []), "content": m.content}

# A named function that is not offered is a 400 naming the parameter.
try:
    client.chat.completions.create(messages=question, tools=TOOLS, **common,
                                   tool_choice={"type": "function", "function": {"name": "rm"}})
    seen["bad_choice"] = None
except openai.BadRequestError as e:
    seen["bad_choice"] = [e.status_code, e.body.get("param") if isinstance(e.body, dict) else None]

# Ollama: tools offered, the tool result sent back with role tool.
oc = Client(host=base, headers={"Authorization": f"Bearer {key}"}, timeout=120)
ollama_tools = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city now",
                                                   "parameters": WEATHER}}]
r = oc.chat(model=MODEL, messages=question, tools=ollama_tools, options={"temperature": 0, "num_predict": 80})
for c in r.message.tool_calls or []:
    jsonschema.validate(dict(c.function.arguments), {"type": "object"})
seen["ollama"] = {"calls": len(r.message.tool_calls or []), "content": r.message.content}
r = oc.chat(model=MODEL, options={"temperature": 0, "num_predict": 40}, tools=ollama_tools, messages=question + [
    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather",
                                                                     "arguments": {"city": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "content": "18 degrees celsius and sunny"},
])
assert r.done and r.message.content, r
seen["ollama_answered"] = r.message.content

# n > 1: indexed choices, completion tokens summed.
r = client.chat.completions.create(messages=question, n=3, model=MODEL, temperature=1.0, max_tokens=12, seed=7)
assert sorted(c.index for c in r.choices) == [0, 1, 2], r
assert all(c.message.content for c in r.choices), r
assert r.usage.completion_tokens >= 3, r.usage
seen["n"] = [c.message.content for c in r.choices]
finished = {}
for chunk in client.chat.completions.create(messages=question, n=2, model=MODEL, temperature=0, max_tokens=8,
                                            stream=True, stream_options={"include_usage": True}):
    for c in chunk.choices:
        finished[c.index] = c.finish_reason or finished.get(c.index)
    if chunk.usage:
        seen["n_streamed_usage"] = chunk.usage.completion_tokens
assert set(finished) == {0, 1} and all(finished.values()), finished

# Legacy completions: a raw prompt, written in the model's own chat format.
raw = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
r = client.completions.create(model=MODEL, prompt=raw, max_tokens=20, temperature=0)
text = r.choices[0].text
assert "Paris" in text, r
assert r.object == "text_completion" and r.choices[0].finish_reason in ("stop", "length"), r
seen["completion"] = text
streamed = "".join(c.choices[0].text for c in client.completions.create(
    model=MODEL, prompt=raw, max_tokens=20, temperature=0, stream=True) if c.choices)
assert streamed == text, (streamed, text)
r = client.completions.create(model=MODEL, prompt=raw, max_tokens=20, temperature=0, echo=True)
assert r.choices[0].text == raw + text, r
r = client.completions.create(model=MODEL, prompt=[raw, "The capital of Italy is"], n=2, max_tokens=5, temperature=0)
assert [c.index for c in r.choices] == [0, 1, 2, 3], r
assert r.choices[0].text == r.choices[1].text, r
seen["completion_choices"] = len(r.choices)
try:
    client.completions.create(model=MODEL, prompt=raw, suffix="x", max_tokens=5)
    seen["suffix"] = None
except openai.BadRequestError as e:
    seen["suffix"] = e.status_code

# Ollama raw generate: no template, the prompt as is.
g = oc.generate(model=MODEL, prompt=raw, raw=True, options={"temperature": 0, "num_predict": 20})
assert "Paris" in g.response, g
seen["ollama_raw"] = g.response

# Logprobs: the tokens' bytes spell the answer, streamed and not.
r = client.chat.completions.create(messages=question, logprobs=True, top_logprobs=3, **common)
c = r.choices[0]
entries = c.logprobs.content
assert b"".join(bytes(e.bytes) for e in entries).decode() == c.message.content, (entries, c.message.content)
assert all(len(e.top_logprobs) == 3 and e.logprob <= 0 for e in entries), entries
text, spelled = "", b""
for chunk in client.chat.completions.create(messages=question, logprobs=True, stream=True, **common):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        for e in (chunk.choices[0].logprobs.content if chunk.choices[0].logprobs else None) or []:
            spelled += bytes(e.bytes)
assert text == c.message.content and spelled.decode() == text, (text, spelled)
r = client.completions.create(model=MODEL, prompt=raw, max_tokens=10, temperature=0, logprobs=2)
lp = r.choices[0].logprobs
assert "".join(lp.tokens) == r.choices[0].text, (lp.tokens, r.choices[0].text)
assert len(lp.token_logprobs) == len(lp.tokens) == len(lp.text_offset), lp
seen["logprobs"] = {"tokens": len(entries), "first": entries[0].token}

# Embeddings.
import base64
import math
import struct

texts = ["The cat sat on the mat.", "A cat was sitting on a mat.", "Quarterly revenue grew by five percent."]
e = client.embeddings.create(model=MODEL, input=texts)
vectors = [d.embedding for d in sorted(e.data, key=lambda d: d.index)]
assert len(vectors) == 3 and len({len(v) for v in vectors}) == 1, e
for v in vectors:
    assert abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-3, v[:4]
cos = lambda a, b: sum(x * y for x, y in zip(a, b))
assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2]), e
assert e.usage.prompt_tokens > 0, e.usage
raw_b64 = client.with_options().post("/embeddings", cast_to=object,
                                      body={"model": MODEL, "input": texts[0], "encoding_format": "base64"})
b = base64.b64decode(raw_b64["data"][0]["embedding"])
decoded = list(struct.unpack(f"<{len(b) // 4}f", b))
assert decoded == [struct.unpack("<f", struct.pack("<f", x))[0] for x in vectors[0]], "base64 differs"
o = oc.embed(model=MODEL, input=texts[:2])
assert len(o.embeddings) == 2, o
assert max(abs(x - y) for x, y in zip(o.embeddings[0], vectors[0])) < 1e-6, "ollama and openai differ"
seen["embeddings"] = {"dimensions": len(vectors[0]), "near": cos(vectors[0], vectors[1]),
                      "far": cos(vectors[0], vectors[2])}

print(json.dumps(seen))
