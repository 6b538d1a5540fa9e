"""The unit register as a running service sees it: the register file with every change on `unit.register` applied
in order. Each reader (the worker's intake, the field API) follows the whole topic on its own, outside any consumer
group, since each needs every change whatever partitions it owns; `ready` is set once the changes up to the topic's
end at start-up are applied, and intake waits for it before it judges a log-on.

A change that cannot be read or applied is skipped with a warning and counted
(patrol_register_changes_total{outcome="invalid"}): `patrol register` validates what it publishes, so one comes
only from another producer, and the topic itself keeps it for the audit.
"""

from __future__ import annotations

import asyncio

import structlog
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from processors.register import RegisterChange, UnitRegister
from streams.runtime import metrics
from streams.runtime.clients import standalone_consumer
from streams.runtime.consumer_loop import partitions_of
from streams.runtime.topics import UNIT_REGISTER
from streams.settings import Settings

log = structlog.get_logger("patrol.register")


class RegisterFollower:
    def __init__(self, settings: Settings, register: UnitRegister):
        self.settings = settings
        self.base = register  # the file's register: each reading of the topic starts from it
        self.register = register
        self.ready = asyncio.Event()

    async def run_forever(self) -> None:
        """Follow the topic from its beginning for ever; after a broker failure it is read again from the start
        (the register in force meanwhile stays the one last built, so a failure loses no change)."""
        while True:
            try:
                await self._follow()
            except (KafkaError, OSError, RuntimeError) as exc:
                log.warning("following the unit register failed; reading it again", error=str(exc)[:300])
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        consumer = standalone_consumer(self.settings)
        await consumer.start()
        try:
            parts = await partitions_of(consumer, UNIT_REGISTER)
            if not parts:
                raise RuntimeError(f"topic {UNIT_REGISTER} not found")
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            building, caught_up = self.base, False
            while True:
                if not caught_up and all([await consumer.position(tp) >= ends[tp] for tp in parts]):
                    caught_up, self.register = True, building
                    log.info("unit register read", units=len(building.units))
                    self.ready.set()
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for record in records:
                        building = _applied(building, record.value, f"{tp.topic}[{tp.partition}]@{record.offset}")
                if caught_up:
                    self.register = building
        finally:
            await consumer.stop()


def _applied(register: UnitRegister, value: bytes | None, where: str) -> UnitRegister:
    try:
        change = RegisterChange.model_validate_json(value or b"")
    except (ValidationError, ValueError) as exc:
        metrics.REGISTER_CHANGES.labels("invalid").inc()
        log.warning("unreadable register change skipped", where=where, error=str(exc)[:300])
        return register
    metrics.REGISTER_CHANGES.labels(change.action).inc()
    log.info("unit register change", unit_id=change.unit_id, action=change.action, by=change.changed_by,
             change_id=change.change_id, reason=change.reason)
    return register.apply(change)
