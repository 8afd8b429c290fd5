"""The official `ollama` Python client against an Orrery node, unchanged (only the host and an
Authorization header set): list and ps, chat and generate, streamed and not, and errors.

usage: ollama_client.py BASE_URL API_KEY   (prints one JSON line of what it saw)
"""

import json
import sys

from ollama import Client, ResponseError

base, key = sys.argv[1], sys.argv[2]
client = Client(host=base, headers={"Authorization": f"Bearer {key}"}, timeout=120)
messages = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
options = {"temperature": 0, "num_predict": 20}

names = [m.model for m in client.list().models]
assert "smollm2-135m:latest" in names, names
loaded = [m.model for m in client.ps().models]

r = client.chat(model="smollm2-135m", messages=messages, options=options)
text = r.message.content
assert "Paris" in text, text
assert r.done and r.eval_count > 0, r

parts = [p.message.content for p in client.chat(model="smollm2-135m", messages=messages, options=options, stream=True)]
assert "".join(parts) == text, (parts, text)

g = client.generate(model="smollm2-135m", prompt=messages[1]["content"], system=messages[0]["content"], options=options)
assert "Paris" in g.response, g.response

status = None
try:
    client.chat(model="no-such-model", messages=messages)
except ResponseError as e:
    status = e.status_code

print(json.dumps({"models": names, "loaded": loaded, "text": text, "pieces": len(parts),
                  "generate": g.response, "unknown_model_status": status}))
