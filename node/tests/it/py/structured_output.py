"""Structured output through the official `openai` and `ollama` Python clients, unchanged:
json_object, json_schema (a dict, streamed; and a pydantic model through the client's own
`parse`), Ollama's `format: "json"` and `format: {schema}`. Every answer must parse and validate
against its schema (`jsonschema`); an unsupported schema must be a 400.

usage: structured_output.py BASE_URL API_KEY   (prints one JSON line of what it saw)
"""

import json
import sys
from typing import Annotated, Literal

import jsonschema
import openai
from ollama import Client, ResponseError
from pydantic import BaseModel, Field

base, key = sys.argv[1], sys.argv[2]
MODEL = "smollm2-135m"
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)
system = {"role": "system", "content": "You are a helpful assistant."}
person_question = [system, {"role": "user", "content":
    "Invent a person: name, age, favourite colour, hobbies and home city. Answer in JSON."}]
capital_question = [system, {"role": "user", "content":
    "What is the capital of France? Answer in JSON with the key capital."}]

# Nested object, enum, array with minItems/maxItems, required; strings bounded so that the small
# model finishes well inside max_tokens.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "colour": {"enum": ["red", "green", "blue"]},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 16},
                    "minItems": 1, "maxItems": 3},
        "address": {"type": "object",
                    "properties": {"city": {"type": "string", "maxLength": 24}},
                    "required": ["city"], "additionalProperties": False},
    },
    "required": ["name", "age", "colour", "hobbies", "address"],
    "additionalProperties": False,
}
UNSUPPORTED = {"type": "object", "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}}}


class Address(BaseModel):
    city: str = Field(max_length=24)


class Person(BaseModel):
    name: str = Field(max_length=24)
    age: int
    colour: Literal["red", "green", "blue"]
    hobbies: list[Annotated[str, Field(max_length=16)]] = Field(min_length=1, max_length=3)
    address: Address


def valid(text, schema):
    value = json.loads(text)
    jsonschema.validate(value, schema)
    return value


seen = {}
common = {"model": MODEL, "temperature": 0, "max_tokens": 200}

# OpenAI: json_object.
r = client.chat.completions.create(messages=capital_question, response_format={"type": "json_object"}, **common)
assert r.choices[0].finish_reason == "stop", r
seen["json_object"] = valid(r.choices[0].message.content, {"type": "object"})

# OpenAI: json_schema given as a dict, streamed.
fmt = {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": PERSON}}
parts, finish = [], None
for chunk in client.chat.completions.create(messages=person_question, response_format=fmt, stream=True, **common):
    if chunk.choices:
        parts.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
assert finish == "stop", (finish, parts)
seen["json_schema_streamed"] = valid("".join(parts), PERSON)

# OpenAI: a pydantic model through the client's own structured-output helper.
r = client.chat.completions.parse(messages=person_question, response_format=Person, **common)
parsed = r.choices[0].message.parsed
assert isinstance(parsed, Person), r
valid(r.choices[0].message.content, Person.model_json_schema())
seen["parsed"] = parsed.model_dump()

# OpenAI: a schema outside the supported subset.
try:
    client.chat.completions.create(messages=capital_question, **common, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": UNSUPPORTED}})
    seen["unsupported"] = None
except openai.BadRequestError as e:
    seen["unsupported"] = [e.status_code, e.param, e.message]

# Ollama: format "json" and format {schema}, on /api/chat and /api/generate.
ollama = Client(host=base, headers={"Authorization": f"Bearer {key}"}, timeout=120)
options = {"temperature": 0, "num_predict": 200}
c = ollama.chat(model=MODEL, messages=capital_question, format="json", options=options)
assert c.done_reason == "stop", c
seen["ollama_json"] = valid(c.message.content, {"type": "object"})
c = ollama.chat(model=MODEL, messages=person_question, format=PERSON, options=options)
assert c.done_reason == "stop", c
seen["ollama_schema"] = valid(c.message.content, PERSON)
pieces = [g.response for g in ollama.generate(
    model=MODEL, prompt=capital_question[1]["content"], format="json", options=options, stream=True)]
seen["ollama_generate_json"] = valid("".join(pieces), {"type": "object"})
try:
    ollama.chat(model=MODEL, messages=capital_question, format=UNSUPPORTED, options=options)
    seen["ollama_unsupported"] = None
except ResponseError as e:
    seen["ollama_unsupported"] = [e.status_code, e.error]

print(json.dumps(seen))
