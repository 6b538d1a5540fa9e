"""Publishing JSON lines to the inbound topics, as sensors, hotline gateways and field units do."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from streams.settings import Settings
from streams.runtime import clients
from streams.runtime.topics import INBOUND_TOPICS, key_field


class UnroutableLine(ValueError):
    pass


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes


def classify(line: bytes, line_number: int, topic: str | None = None) -> Outgoing:
    """The topic and key for one line. With `topic` given the line is sent as it is, even if malformed."""
    try:
        doc = json.loads(line)
    except ValueError:
        doc = None
    if topic is None:
        # the inbound topic whose key field the line has (the topic registry's, streams/runtime/topics.py)
        topic = next((t for t in INBOUND_TOPICS if isinstance(doc, dict) and key_field(t) in doc), None)
        if topic is None:
            raise UnroutableLine(
                f"line {line_number}: neither a report (report_id) nor a unit event (unit_id); "
                "pass --topic to send it as it is"
            )
    key = doc.get(key_field(topic)) if isinstance(doc, dict) else None
    return Outgoing(topic, str(key).encode() if key is not None else None, line)


def read_lines(lines: Iterable[bytes], topic: str | None = None) -> list[Outgoing]:
    out = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip(b"\r\n")
        if line.strip():
            out.append(classify(line, number, topic))
    return out


async def publish(settings: Settings, messages: list[Outgoing]) -> None:
    producer = clients.producer(settings, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(m.topic, m.value, key=m.key) for m in messages]
        for future in futures:
            await future
    finally:
        await producer.stop()
