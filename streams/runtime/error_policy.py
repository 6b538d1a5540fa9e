"""The error policy of our consumer loops: which failures cost one record, and which restart the loop.

A failure that belongs to one record — a defect of ours meeting it, a row the database refuses for what it
holds, an output the broker refuses for good — dead-letters that record, and the loop goes on with the next.
A failure of the broker, the network or the database as a whole restarts the loop (or retries the write) from
the last commit, where the same records come again: nothing is lost, and nothing is skipped that could still
be done. Every rule about "skip or retry" is here, so that the worker and the sink decide alike; the district
pipeline's handlers run under the named policy `DeadLetterPolicy`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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
from streams.runtime import metrics
from streams.runtime.topics import INCIDENT_REPORTS_DLQ

# (topic, key, value) of one record to publish
Outgoing = tuple[str, bytes | None, bytes]

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


class DeadLetterPolicy:
    """The error policy of the district pipeline's handlers, by name: a failure of one record's handling that is
    not the broker's or the network's (a defect of ours meeting it) dead-letters that record, and the stream goes
    on; a transient failure is raised, restarting the loop from its last commit, where the record comes again.

    `dead_letter_of(record, rejection, stage)` is the dead letter the pipeline would write for the record itself
    (it reads the record, so it may fail too: then a bare one, built from the record's position alone, is
    written)."""

    def __init__(self, dead_letter_of: Callable[[object, Rejected, str], Outgoing]):
        self.dead_letter_of = dead_letter_of

    def guard(self, stage: str, handle: Callable[[object], Awaitable[list[Outgoing]]]):
        """`handle` under this policy: what it returns, or the record's dead letter if it fails for the record."""
        async def guarded(record) -> list[Outgoing]:
            try:
                return await handle(record)
            except Exception as exc:  # noqa: BLE001 - the last line of defence: nothing may stop the stream
                if is_transient(exc):
                    raise
                return [self.failed(record, stage, exc)]
        guarded.__name__ = f"guarded_{getattr(handle, '__name__', 'handler')}"
        return guarded

    def failed(self, record, stage: str, exc: Exception) -> Outgoing:
        rejection = Rejected("processing_error", describe(exc))
        # the traceback without its frames' variables: they hold the message, and with it personal data
        log.error("processing failed; message dead-lettered", stage=stage, topic=record.topic,
                  partition=record.partition, offset=record.offset, error=rejection.error, exc_info=exc)
        try:
            return self.dead_letter_of(record, rejection, stage)
        except Exception as again:  # noqa: BLE001 - the fallback that reads nothing of the record
            log.error("its dead letter failed too; a bare one is written", error=describe(again))
            metrics.DEAD_LETTERS.labels(stage, rejection.reason).inc()
            letter = bare_dead_letter(record.topic, record.partition, record.offset, rejection,
                                      datetime.now(timezone.utc))
            return INCIDENT_REPORTS_DLQ, None, letter.to_json_bytes()
