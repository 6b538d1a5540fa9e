"""The terminal's Kafka client: following dispatch.orders (and, to restore progress after a restart, the unit's own
events on unit.events) from the beginning without a consumer group, and publishing the unit's events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from processors.messages import DispatchOrder, UnitEvent, unit_event_adapter
from streams.runtime.consumer_loop import partitions_of
from streams.field_unit.model import FieldUnit, _first_error
from streams.runtime.topics import DISPATCH_ORDERS, UNIT_EVENTS


async def _assign_all_partitions(consumer: AIOKafkaConsumer, state: FieldUnit, redraw: Callable[[], None]):
    # No consumer group: every terminal reads every order from the beginning on
    # its own, and Tansu's slow group joins would delay the first screen by seconds.
    warned = False
    while True:
        partitions = await partitions_of(consumer, DISPATCH_ORDERS, UNIT_EVENTS)
        if any(tp.topic == DISPATCH_ORDERS for tp in partitions):
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            return
        if not warned:
            state.note(f"waiting for topic {DISPATCH_ORDERS} to exist (is a worker running?)", "warning")
            redraw()
            warned = True
        await asyncio.sleep(2.0)


async def _follow(consumer: AIOKafkaConsumer, state: FieldUnit, redraw: Callable[[], None]) -> None:
    """Read this unit's orders (and, to restore progress after a restart, its own events) from the beginning."""
    key = state.unit_id.encode()
    await _assign_all_partitions(consumer, state, redraw)
    while True:
        try:
            batches = await consumer.getmany(timeout_ms=1000)
        except KafkaError as exc:
            state.note(f"reading orders failed: {exc}; retrying", "warning")
            redraw()
            await asyncio.sleep(1.0)
            continue
        for tp, records in batches.items():
            for record in records:
                if record.key != key:
                    continue
                where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                try:
                    if record.value is None:
                        raise ValueError("empty record")
                    if tp.topic == DISPATCH_ORDERS:
                        state.apply_order(DispatchOrder.model_validate_json(record.value))
                    else:
                        state.read_back(unit_event_adapter.validate_json(record.value))
                except ValidationError as exc:
                    state.note(f"skipped unreadable record {where}: {_first_error(exc)}", "warning")
                except ValueError as exc:
                    state.note(f"skipped unreadable record {where}: {exc}", "warning")
        if batches:
            redraw()


async def _send(producer: AIOKafkaProducer, event: UnitEvent) -> None:
    await producer.send_and_wait(UNIT_EVENTS, event.to_json_bytes(), key=event.unit_id.encode())
