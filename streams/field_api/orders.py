"""The field API's view of dispatch.orders: which unit holds which order, each unit's orders still open, and the
live feed of each unit's new orders to its own subscribers only.

It follows the whole topic from its beginning, outside any consumer group (every instance serves every unit), as
the terminal did before it. An order leaves a unit's list when it is cancelled, or when the unit resolves or
declines it through the field API (`settle`). The latest progress on each open order that the unit reported through
this instance (`progressed`) goes with it to a device that connects again, so that a restarted terminal shows how
far the unit got; an instance that restarts forgets it (the orders stay, at their first stage).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import structlog
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from processors.messages import DispatchOrder, UnitEvent
from streams.runtime.clients import standalone_consumer
from streams.runtime.consumer_loop import partitions_of
from streams.runtime.topics import DISPATCH_ORDERS
from streams.settings import Settings

log = structlog.get_logger("patrol.field.orders")


class OrdersHub:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.owner: dict[str, str] = {}  # order_id -> the unit it was given to
        self.open: dict[str, dict[str, DispatchOrder]] = defaultdict(dict)  # unit -> order_id -> order
        self.subscribers: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self.progress: dict[str, UnitEvent] = {}  # open order_id -> the latest progress its unit reported

    def held_by(self, order_id: str) -> str | None:
        return self.owner.get(order_id)

    def orders_of(self, unit_id: str) -> list[DispatchOrder]:
        return list(self.open.get(unit_id, {}).values())

    def progress_of(self, unit_id: str) -> list[UnitEvent]:
        return [self.progress[o] for o in self.open.get(unit_id, {}) if o in self.progress]

    def progressed(self, event: UnitEvent) -> None:
        """The unit reported progress on an order (ack, en route, on scene), published through this instance."""
        self.progress[event.order_id] = event

    def subscribe(self, unit_id: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self.subscribers[unit_id].add(queue)
        return queue

    def unsubscribe(self, unit_id: str, queue: asyncio.Queue) -> None:
        self.subscribers[unit_id].discard(queue)

    def settle(self, unit_id: str, order_id: str) -> None:
        """The unit resolved or declined the order: it is no longer among its open ones."""
        self.open.get(unit_id, {}).pop(order_id, None)
        self.progress.pop(order_id, None)

    def take(self, order: DispatchOrder) -> None:
        if order.kind == "assign":
            self.owner[order.order_id] = order.unit_id
            self.open[order.unit_id][order.order_id] = order
        else:
            self.open.get(order.unit_id, {}).pop(order.order_id, None)
            self.progress.pop(order.order_id, None)
        for queue in list(self.subscribers.get(order.unit_id, ())):
            if queue.full():  # a subscriber that stopped reading: dropped, it reconnects and gets the list again
                self.subscribers[order.unit_id].discard(queue)
            else:
                queue.put_nowait(order)

    async def run_forever(self) -> None:
        while True:
            try:
                await self._follow()
            except (KafkaError, OSError, RuntimeError) as exc:
                log.warning("following dispatch.orders failed; reading again", error=str(exc)[:300])
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        consumer = standalone_consumer(self.settings)
        await consumer.start()
        try:
            while not (parts := await partitions_of(consumer, DISPATCH_ORDERS)):
                await asyncio.sleep(1.0)
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            self.owner.clear()
            self.open.clear()
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        try:
                            self.take(DispatchOrder.model_validate_json(record.value or b""))
                        except (ValidationError, ValueError):
                            log.warning("unreadable dispatch order skipped", offset=record.offset)
        finally:
            await consumer.stop()
