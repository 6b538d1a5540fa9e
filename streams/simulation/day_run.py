"""Plays a simulated day against a running worker: the city's reports on time, the field units answering their orders."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


from streams.runtime.consumer_loop import partitions_of
from streams.runtime import clients
from streams.settings import Settings
from streams.simulation.simulator import DayPlan, FieldCrew
from streams.runtime.topics import DISPATCH_ORDERS, UNIT_EVENTS


@dataclass
class DayProgress:
    sim_time: datetime
    share: float  # of the day played
    published: int
    orders_seen: int
    unit_events: int


async def play_day(settings: Settings, plan: DayPlan, crew: FieldCrew, speedup: float,
                   on_progress: Callable[[DayProgress], None], drain_s: float = 5.0,
                   epoch: datetime | None = None) -> DayProgress:
    """Publish the plan in (compressed) time and let the crew answer; returns the final progress. With `epoch`
    (the wall instant a worker's compressed clock starts from, and the plan's start), the day starts then."""
    producer = clients.producer(settings, linger_ms=2)
    orders = clients.standalone_consumer(settings)
    await producer.start()
    await orders.start()
    loop = asyncio.get_running_loop()
    try:
        partitions = await partitions_of(orders, DISPATCH_ORDERS)
        orders.assign(partitions)
        await orders.seek_to_end(*partitions)
        t0 = loop.time() + (max(0.0, (epoch - datetime.now(timezone.utc)).total_seconds()) if epoch else 0.0)
        await asyncio.sleep(t0 - loop.time())
        day_s = plan.hours * 3600 / speedup
        done = asyncio.Event()

        def sim_now() -> datetime:
            return plan.start + timedelta(seconds=(loop.time() - t0) * speedup)

        async def read_orders() -> None:
            while not done.is_set():
                batch = await orders.getmany(timeout_ms=20)
                for records in batch.values():
                    for record in records:
                        try:
                            order = json.loads(record.value)
                            # the hop from the worker, by the wall clock (the record's timestamp is the producer's)
                            crew.on_order(order, loop.time(), transit_s=time.time() - record.timestamp / 1000)
                        except (ValueError, KeyError):
                            continue  # not an order the crew can read: the worker's problem, not the city's

        reader = asyncio.create_task(read_orders())
        messages, i, unit_events, last_report = plan.messages, 0, 0, 0.0
        progress = DayProgress(plan.start, 0.0, 0, 0, 0)
        while True:
            elapsed = loop.time() - t0
            while i < len(messages) and messages[i].at_s / speedup <= elapsed:
                m = messages[i]
                await producer.send(m.topic, m.value, key=m.key.encode() if m.key else None)
                if m.what == "log_on" and m.key:
                    crew.logged_on(m.key)  # back at the post, where the worker now places the unit
                i += 1
            for key, value in crew.due(loop.time(), sim_now()):
                await producer.send(UNIT_EVENTS, value, key=key.encode())
                unit_events += 1
            progress = DayProgress(sim_now(), min(1.0, elapsed / day_s), i, crew.seen_orders, unit_events)
            if elapsed - last_report >= 0.25:
                on_progress(progress)
                last_report = elapsed
            if i >= len(messages) and elapsed >= day_s + drain_s:
                break
            await asyncio.sleep(0.005)
        done.set()
        await reader
        await producer.flush()
        return progress
    finally:
        await orders.stop()
        await producer.stop()
