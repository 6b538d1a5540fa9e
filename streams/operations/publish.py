"""Publishing JSON lines to the inbound topics, as sensors, hotline gateways and field units do."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass


from streams.settings import Settings
from streams.runtime import clients
from streams.runtime.topics import INCIDENT_REPORTS, UNIT_EVENTS


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
        if isinstance(doc, dict) and "report_id" in doc:
            topic = INCIDENT_REPORTS
        elif isinstance(doc, dict) and "unit_id" in doc:
            topic = UNIT_EVENTS
        else:
            raise UnroutableLine(
                f"line {line_number}: neither a report (report_id) nor a unit event (unit_id); "
                "pass --topic to send it as it is"
            )
    key_field = "report_id" if topic == INCIDENT_REPORTS else "unit_id"
    key = doc.get(key_field) if isinstance(doc, dict) else None
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
