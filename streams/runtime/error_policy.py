"""The error policy of our consumer loops: which failures cost one record, and which restart the loop.

A failure that belongs to one record — a defect of ours meeting it, a row the database refuses for what it
holds, an output the broker refuses for good — dead-letters that record, and the loop goes on with the next.
A failure of the broker, the network or the database as a whole restarts the loop (or retries the write) from
the last commit, where the same records come again: nothing is lost, and nothing is skipped that could still
be done. Every rule about "skip or retry" is here, so that the worker and the sink decide alike.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import asyncpg
import structlog
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)

from processors.dead_letters import Rejected, bare_dead_letter

log = structlog.get_logger("patrol.errors")

# The broker (or the producer, before sending) refuses these records for what they are: sending them again
# cannot succeed.
REFUSED_FOR_GOOD = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, CorruptRecordException,
                    InvalidTimestampError, InvalidTopicError, UnsupportedForMessageFormatError)

# The database refuses these for what a row holds (SQLSTATE classes 22, 23 and 54: a value out of range, a broken
# constraint, a value too large to index): writing the same rows again cannot succeed.
REFUSED_FOR_CONTENT = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, asyncpg.ProgramLimitExceededError)


def is_transient(exc: BaseException) -> bool:
    """The broker or the network failed, not the record: restart the loop, and the record comes again."""
    if isinstance(exc, REFUSED_FOR_GOOD):
        return False
    return isinstance(exc, (KafkaError, OSError, asyncio.TimeoutError))


def refused_for_good(exc: BaseException) -> bool:
    return isinstance(exc, REFUSED_FOR_GOOD)


def refused_for_content(exc: BaseException) -> bool:
    """A write failed for what its rows hold, not for the database being away: find the refused message and set
    it aside. Any failure outside the database and its driver (a message whose rows cannot even be built) is one
    too, as is a value asyncpg refuses to encode (a ValueError); every other database failure is waited out."""
    if isinstance(exc, (REFUSED_FOR_CONTENT, ValueError)):
        return True
    return not isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError))


def describe(exc: BaseException) -> str:
    """An exception as one short line (its text may be long: a pydantic error quotes its input)."""
    return f"{type(exc).__name__}: {exc}"[:500]


def unpublishable(record, exc: BaseException) -> bytes:
    """The dead letter of a record whose output the broker refused for good: nothing of the record is read, so
    building it cannot fail on the record; the record itself stays on its topic at its position."""
    log.error("an output was refused by the broker; its record is dead-lettered", topic=record.topic,
              partition=record.partition, offset=record.offset, error=describe(exc))
    letter = bare_dead_letter(record.topic, record.partition, record.offset,
                              Rejected("publish_failed", describe(exc)), datetime.now(timezone.utc))
    return letter.to_json_bytes()
