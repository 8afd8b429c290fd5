"""The official `openai` Python client against an Orrery node, unchanged: list the models, get a
non-streamed and a streamed answer, and see Orrery's errors as the client's own exceptions.

usage: openai_client.py BASE_URL API_KEY   (prints one JSON line of what it saw)
"""

import json
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)
messages = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]

models = [m.id for m in client.models.list()]
assert "smollm2-135m" in models, models

r = client.chat.completions.create(model="smollm2-135m", messages=messages, temperature=0, max_tokens=20)
text = r.choices[0].message.content
assert "Paris" in text, text
assert r.usage.completion_tokens > 0 and r.usage.total_tokens > r.usage.completion_tokens, r.usage
assert r.choices[0].finish_reason in ("stop", "length"), r.choices[0].finish_reason

parts, usage, finish = [], None, None
stream = client.chat.completions.create(
    model="smollm2-135m", messages=messages, temperature=0, max_tokens=20, stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices:
        if chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage:
        usage = chunk.usage
streamed = "".join(parts)
assert streamed == text, (streamed, text)
assert usage is not None and usage.completion_tokens > 0, usage
assert len(parts) > 3, parts

errors = {}
try:
    client.chat.completions.create(model="no-such-model", messages=messages)
except openai.NotFoundError as e:
    errors["unknown_model"] = [e.status_code, e.code]
try:
    client.chat.completions.create(model="smollm2-135m", messages=messages, temperature=9)
except openai.BadRequestError as e:
    errors["bad_temperature"] = [e.status_code, e.code]
try:
    openai.OpenAI(base_url=f"{base}/v1", api_key="sk-wrong-key-0000000000", max_retries=0).models.list()
except openai.AuthenticationError as e:
    errors["wrong_key"] = [e.status_code, e.code]

print(json.dumps({"models": models, "text": text, "streamed": streamed, "chunks": len(parts),
                  "usage": usage.model_dump(), "finish": finish, "errors": errors}))
