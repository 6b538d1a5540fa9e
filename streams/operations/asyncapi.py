"""The AsyncAPI 3.0 document of the contract topics: channels with their keys, partitioning and retention, and each
message's payload schema generated from the pydantic models the worker validates with (`patrol schemas`).

Schemas are hoisted into `components.schemas`, so a type used by several messages is described once and the
document is one self-contained file a code generator or the AsyncAPI parser reads as it is. They are AsyncAPI
Schema objects (a superset of JSON Schema draft 7); the one keyword pydantic writes in another form, a union's
`discriminator` (an object in OpenAPI, the property's name in AsyncAPI), is rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter

from streams import __version__
from streams.operations.schemas import ALL_MESSAGES
from streams.runtime.topics import (
    DISPATCH_COMMANDS,
    DISPATCH_ORDERS,
    INCIDENT_EVENTS,
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    SLA_ESCALATIONS,
    UNIT_EVENTS,
    UNIT_REGISTER,
    key_field,
)
from streams.settings import Settings

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Channel:
    """A contract topic as the AsyncAPI document describes it."""

    topic: str
    message: str
    action: str  # what the platform does on it: "receive" (it reads) or "send" (it writes)
    description: str


CHANNELS = (
    Channel(INCIDENT_REPORTS, "IncidentReport", "receive",
            "Reports from sensors, the hotline gateway, patrol apps and the simulator; read by intake."),
    Channel(UNIT_EVENTS, "UnitEvent", "receive",
            "Field units' log-ons, positions and progress on their orders; read by intake for the district cores."),
    Channel(DISPATCH_ORDERS, "DispatchOrder", "send",
            "Orders to field units (assign or cancel), written by the district cores."),
    Channel(INCIDENT_EVENTS, "IncidentEvent", "send",
            "Each incident's life, in order (`seq` per incident), written by the district cores."),
    Channel(SLA_ESCALATIONS, "Escalation", "send",
            "Breaches of a time limit, once per incident, level and reason, written by the district cores."),
    Channel(DISPATCH_COMMANDS, "DispatcherCommand", "receive",
            "Dispatchers' commands from the command API (and complainants' verification answers); read by intake "
            "for the district cores."),
    Channel(INCIDENT_REPORTS_DLQ, "DeadLetter", "send",
            "Every record some stage refused, with a stable reason, a masked excerpt and the raw record's hash."),
    Channel(UNIT_REGISTER, "RegisterChange", "receive",
            "The command centre's changes of the unit register, each naming who and why: the register's audit "
            "trail, read whole by intake and the field API."),
)


def _channel_id(topic: str) -> str:
    head, *rest = topic.split(".")
    return head + "".join(part.capitalize() for part in rest)


def _payload(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The message's schema with its definitions moved into the document's components."""
    if isinstance(model, TypeAdapter):
        schema = model.json_schema(ref_template=REF)
    else:
        schema = model.model_json_schema(ref_template=REF)
    components.update({name: _asyncapi_schema(d) for name, d in schema.pop("$defs", {}).items()})
    return _asyncapi_schema(schema)


def _asyncapi_schema(node: Any) -> Any:
    if isinstance(node, dict):
        out = {key: _asyncapi_schema(value) for key, value in node.items()}
        if isinstance(out.get("discriminator"), dict):
            out["discriminator"] = out["discriminator"]["propertyName"]
        return out
    if isinstance(node, list):
        return [_asyncapi_schema(item) for item in node]
    return node


def asyncapi_document() -> dict[str, Any]:
    """The document, the same on every run (no clock, no host): it is committed and checked to be current."""
    defaults = Settings.model_fields
    partitions = defaults["topic_partitions"].default
    components: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, model in ALL_MESSAGES.items():
        payload = _payload(model, components)
        title = payload.get("title", name)
        components[name] = payload
        messages[name] = {
            "name": name,
            "title": title,
            "contentType": "application/json",
            "payload": {"$ref": REF.format(model=name)},
        }
        if isinstance(model, type) and issubclass(model, BaseModel) and model.__doc__:
            messages[name]["summary"] = " ".join(model.__doc__.split())
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel in CHANNELS:
        cid = _channel_id(channel.topic)
        messages[channel.message].setdefault("bindings", {"kafka": {
            "key": {"type": "string", "description": f"the record key: `{key_field(channel.topic)}`"},
            "bindingVersion": "0.5.0"}})
        channels[cid] = {
            "address": channel.topic,
            "description": channel.description,
            "messages": {channel.message: {"$ref": f"#/components/messages/{channel.message}"}},
            "bindings": {"kafka": {
                "topic": channel.topic,
                "partitions": partitions,
                "topicConfiguration": {"cleanup.policy": ["delete"]},
                "bindingVersion": "0.5.0",
            }},
        }
        verb = "read" if channel.action == "receive" else "write"
        operations[f"{channel.action}{channel.message}"] = {
            "action": channel.action,
            "summary": f"patrol-dispatch {verb}s {channel.message} records on {channel.topic}",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/{channel.message}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "patrol-dispatch",
            "version": __version__ if __version__ != "0.0.0" else "0.1.0",
            "description": ("The Kafka topics of patrol-dispatch, the district patrol brigade's dispatch system. "
                            "Every value is a UTF-8 JSON object carrying `schema_version`; the contract grows only "
                            "by addition (docs/contracts.md)."),
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(components.items())), "messages": messages},
    }
