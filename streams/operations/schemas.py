"""JSON Schema of every contract message, generated from the pydantic models that the worker itself validates with."""

from __future__ import annotations

from pydantic import TypeAdapter

from processors.messages import CONTRACT_MESSAGES
from processors.register import RegisterChange

# the contract's messages: those of processors/messages.py, and the unit register's change (processors/register.py,
# which builds on them)
ALL_MESSAGES = {**CONTRACT_MESSAGES, "RegisterChange": RegisterChange}


def json_schemas() -> dict[str, dict]:
    documents = {}
    for name, model in ALL_MESSAGES.items():
        schema = model.json_schema() if isinstance(model, TypeAdapter) else model.model_json_schema()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": name, **schema}
        documents[name] = schema
    return documents

