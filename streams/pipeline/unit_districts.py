"""Which district each unit last logged on to, for routing its later events to that district's work log.

Kept in memory and in a compacted topic of its own: every log_on / log_off writes the unit's entry
there before its unit.events offset is committed, and a worker given unit.events partitions reads the
whole topic again, so it knows what the previous owner learned.
"""

from __future__ import annotations

import structlog

from streams.runtime.clients import standalone_consumer
from streams.runtime.consumer_loop import Outgoing, partitions_of
from streams.settings import Settings

log = structlog.get_logger("patrol.units")


class UnitDistricts:
    def __init__(self, settings: Settings, topic: str):
        self.settings = settings
        self.topic = topic
        self.districts: dict[str, str | None] = {}
        self.stale = True  # until the topic has been read since the last assignment

    def get(self, unit_id: str) -> str | None:
        return self.districts.get(unit_id)

    def record(self, unit_id: str, district: str | None) -> Outgoing:
        """Remember where the unit is now; returns the entry to publish (None: logged off)."""
        self.districts[unit_id] = district
        return self.topic, unit_id.encode(), (district or "").encode()

    async def load(self) -> None:
        """Read the whole topic again: the last entry of each unit wins."""
        consumer = standalone_consumer(self.settings)
        await consumer.start()
        try:
            parts = await partitions_of(consumer, self.topic)
            if not parts:
                raise RuntimeError(f"topic {self.topic} not found")
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            districts: dict[str, str | None] = {}
            async def behind() -> bool:
                return any([await consumer.position(tp) < ends[tp] for tp in parts])

            while await behind():
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        if record.key is not None:
                            districts[record.key.decode("utf-8", "replace")] = _district(record.value)
            self.districts = districts
            self.stale = False
            log.info("unit map read", units=sum(1 for d in districts.values() if d))
        finally:
            await consumer.stop()


def _district(value: bytes | None) -> str | None:
    """The district an entry names; one that cannot be a district code (not ours: none is written so) counts as
    none, so the unit's later events are refused as those of a unit that has not logged on."""
    try:
        district = (value or b"").decode("utf-8")
    except UnicodeDecodeError:
        return None
    return district if 0 < len(district) <= 128 and district.isprintable() else None
