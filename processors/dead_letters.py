"""Dead letters: what a rejected record leaves behind — why it was refused, where it stands, and a masked excerpt.

A dead letter must never be the next thing that fails: a record of any size the broker accepts, any nesting and
any encoding gets one that is small (an excerpt of at most EXCERPT_BYTES, the error text cut to ERROR_CHARS), and
building it parses nothing deeper than the bounded JSON parser allows. The full bytes stay on their topic, found
by topic, partition and offset; the excerpt's `raw_length` and `raw_sha256` say which bytes those are.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from processors.messages import DeadLetter, Provenance, WorkItem
from processors.privacy import mask_bytes, mask_personal_data

# Enough to recognise a message and see what was wrong at its start; a dead letter stays a few KiB.
EXCERPT_BYTES = 4096
ERROR_CHARS = 1000


@dataclass(frozen=True)
class Rejected:
    reason: str
    error: str


@dataclass(frozen=True)
class Excerpt:
    """The first bytes of a record, personal data masked, as a text column can hold them."""

    raw: str
    encoding: str  # "utf-8" or "base64"
    masked: bool
    truncated: bool
    length: int
    sha256: str


class Located(Protocol):
    """Anything that says where a record stands and holds its bytes (a consumed record, an intake Inbound)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def excerpt(value: bytes) -> Excerpt:
    masked = mask_bytes(value, EXCERPT_BYTES)
    cut = _cut(masked.value, EXCERPT_BYTES)
    raw, encoding = encode_raw(cut)
    return Excerpt(raw=raw, encoding=encoding, masked=masked.masked > 0,
                   truncated=not masked.whole or len(cut) < len(masked.value),
                   length=len(value), sha256=hashlib.sha256(value).hexdigest())


def provenance(record: Located) -> Provenance:
    """Where a work item came from, with its excerpt, so that a rejection deep in the core can be dead-lettered."""
    part = excerpt(record.value or b"")
    return Provenance(topic=record.topic, partition=record.partition, offset=record.offset, key=key_text(record.key),
                      raw=part.raw, raw_encoding=part.encoding, raw_masked=part.masked,
                      raw_truncated=part.truncated, raw_length=part.length, raw_sha256=part.sha256)


def bare_provenance(record: Located) -> Provenance:
    """Where a work item came from and which bytes those are, without any of them (for records that hold
    personal data: their dead letters then point to the record on its topic)."""
    value = record.value or b""
    return Provenance(topic=record.topic, partition=record.partition, offset=record.offset, key=key_text(record.key),
                      raw="", raw_truncated=True, raw_length=len(value), raw_sha256=hashlib.sha256(value).hexdigest())


def dead_letter(origin: Located | Provenance, rejection: Rejected, received_at: datetime) -> DeadLetter:
    """The dead letter of a consumed record, or of the record a work item came from (its provenance)."""
    if not isinstance(origin, Provenance):
        origin = provenance(origin)
    return DeadLetter(
        schema_version=1,
        reason=rejection.reason,
        error=_error_text(rejection),
        raw=origin.raw,
        raw_encoding=origin.raw_encoding,
        raw_masked=origin.raw_masked,
        raw_truncated=origin.raw_truncated,
        raw_length=origin.raw_length,
        raw_sha256=origin.raw_sha256,
        key=origin.key,
        topic=origin.topic,
        partition=origin.partition,
        offset=origin.offset,
        received_at=received_at,
    )


def bare_dead_letter(topic: str, partition: int, offset: int, rejection: Rejected,
                     received_at: datetime) -> DeadLetter:
    """A dead letter without any of the record's bytes: for when building the full one failed too. It reads
    nothing of the record, so it cannot fail on it; the record is found on its topic by its position."""
    return DeadLetter(schema_version=1, reason=rejection.reason, error=_error_text(rejection), raw="",
                      raw_truncated=True, topic=topic, partition=partition, offset=offset, received_at=received_at)


def _error_text(rejection: Rejected) -> str:
    """The error, bounded, and masked as the excerpt is: an exception's text may quote the record (a pydantic error
    quotes its input)."""
    return mask_personal_data(rejection.error[:ERROR_CHARS])[0]


def encode_raw(value: bytes) -> tuple[str, str]:
    """Text when it is UTF-8 that a database text column can hold (no NUL), else base64."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        return base64.b64encode(value).decode("ascii"), "base64"
    return text, "utf-8"


def key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    return key[:EXCERPT_BYTES // 16].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _cut(value: bytes, limit: int) -> bytes:
    """At most `limit` bytes, not ending inside a UTF-8 character (so that text stays text)."""
    if len(value) <= limit:
        return value
    cut = value[:limit]
    for back in range(1, 4):
        lead = cut[-back]
        if lead & 0xC0 != 0x80:  # the start of the last character: keep it only if it is complete
            width = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
            return cut if width <= back else cut[:-back]
    return cut


def reject_item(item: WorkItem, reason: str, error: str, out: list) -> None:
    """A work-log entry a district core cannot act on: its dead letter goes to `out` (none without provenance)."""
    if item.provenance is not None:
        out.append(dead_letter(item.provenance, Rejected(reason, error), item.at))
