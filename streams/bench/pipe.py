"""The plumbing of the streams benchmarks: the raw aiokafka consume→produce pipe (the baseline, run as
`python -m streams.bench.suite pipe …`), the report publisher and order reader, and the worker's metrics scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import signal
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from processors.catalogue import Catalogue
from processors.district import incident_id_for
from processors.geography import Geography
from streams.bench.reference import DISTRICT, bench_categories, lattice
from streams.runtime import clients
from streams.runtime.consumer_loop import partitions_of
from streams.settings import Settings


def _pipe_topics(settings: Settings) -> tuple[str, str]:
    return f"{settings.app_id}-pipe-in", f"{settings.app_id}-pipe-out"


async def _create_topics(settings: Settings, names: list[str]) -> None:
    from aiokafka.admin import NewTopic

    admin = clients.admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, settings.topic_partitions, settings.topic_replication) for n in names])
    finally:
        await admin.close()


async def raw_pipe(settings: Settings, source: str, target: str, group: str, ready: Path,
                   fetch_wait_ms: int) -> None:
    """The baseline: a plain consumer group reading `source` and producing every record to `target`.

    Configured as the worker's clients are (same fetch wait; the same producer options: acks=all, idempotent where
    the broker allows; offsets committed about once a second like faust's commit interval). Once in its group it holds still
    (SIGUSR1) until told to run (SIGUSR2): a consumer polling at our fetch wait costs the embedded broker
    about a tenth of a core even with nothing to read, which the worker's phases must not pay for."""

    consumer = clients.consumer(settings, source, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=fetch_wait_ms,
                                session_timeout_ms=10_000, heartbeat_interval_ms=2_000)
    producer = clients.producer(settings, linger_ms=0)
    await producer.start()
    await consumer.start()
    loop = asyncio.get_running_loop()
    last_commit = loop.time()
    running = asyncio.Event()

    def hold_still() -> None:
        running.clear()
        # aiokafka's fetcher polls in the background whether or not it is read: paused, it stops
        consumer.pause(*consumer.assignment())

    def run() -> None:
        consumer.resume(*consumer.assignment())
        running.set()

    loop.add_signal_handler(signal.SIGUSR1, hold_still)
    loop.add_signal_handler(signal.SIGUSR2, run)
    try:
        while True:
            if ready.exists() and not running.is_set():
                await running.wait()
            batch = await consumer.getmany(timeout_ms=100)
            if consumer.assignment() and not ready.exists():
                hold_still()
                ready.write_text("joined\n")
            for records in batch.values():
                for record in records:
                    await producer.send(target, record.value, key=record.key)
            if batch and loop.time() - last_commit >= 1.0:
                await consumer.commit()
                last_commit = loop.time()
    finally:
        await consumer.stop()
        await producer.stop()


class _RawPipe:
    """The raw pipe's process, started with the phase's worker so that its group forms meanwhile."""

    def __init__(self, live: Settings, workdir: Path, env: dict[str, str]):
        from streams.operations.embedded import spawn_child

        self.source, self.target = _pipe_topics(live)
        self.ready = workdir / f"{live.app_id}-pipe.ready"
        self.process = spawn_child(
            [sys.executable, "-m", "streams.bench.suite", "pipe", self.source, self.target,
             f"{live.app_id}-pipe", str(self.ready), str(live.fetch_max_wait_ms)],
            # the broker and its security settings, as the worker gets them
            log=workdir / "pipe.log", death_signal=signal.SIGTERM, env={**env, **live.to_env()})

    def stop(self) -> None:
        from streams.operations.embedded import stop_child

        stop_child(self.process, signal.SIGTERM, 10)

    @contextlib.asynccontextmanager
    async def running(self):
        """The pipe polling the broker (it holds still otherwise)."""
        await _eventually(lambda: asyncio.sleep(0, result=self.ready.exists()), 120, "the raw pipe joining its group")
        self.process.send_signal(signal.SIGUSR2)
        await asyncio.sleep(0.3)  # its poll in hand ends within 100 ms
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGUSR1)


class _Reports:
    """Valid reports spread over the district: a lattice of points 450 m apart times the single-agency
    categories, shuffled, so that no two reports of a run are duplicates of one another (each is one
    incident and one order) until the slots run out."""

    def __init__(self, catalogue: Catalogue, geography: Geography, run: str, seed: int = 11):
        rnd = random.Random(seed)
        categories = [c for c in bench_categories(catalogue, 200.0)]
        self.slots = [(p, c.code) for p in lattice(geography, 450.0) for c in categories]
        rnd.shuffle(self.slots)
        self.run = run
        self.n = 0

    def make(self, tag: str, count: int) -> list[tuple[str, str, bytes]]:
        """(report_id, incident_id, value) for `count` new reports."""
        now = datetime.now(timezone.utc).isoformat()
        out = []
        for _ in range(count):
            (lat, lon, _street), code = self.slots[self.n % len(self.slots)]
            self.n += 1
            report_id = f"BENCH{self.run}-{tag}-{self.n:07d}"
            doc = {"schema_version": 1, "report_id": report_id, "source": "sensor", "category": code,
                   "lat": lat, "lon": lon, "reported_at": now, "sensor_id": "CAM-001", "confidence": 0.9}
            out.append((report_id, incident_id_for(DISTRICT, report_id), json.dumps(doc).encode()))
        return out


class _Orders:
    """Reads dispatch.orders without a group (from the end) and plays the field units: it notes when each
    awaited incident's first order arrived and, while `answer` is on, resolves every order at once, so that
    units come free as fast as they are taken."""

    def __init__(self, settings: Settings, producer):

        self.settings = settings
        self.producer = producer
        self.consumer = clients.standalone_consumer(settings)
        self.sent: dict[str, float] = {}  # incident id -> when its report was handed to the producer
        self.seen: dict[str, float] = {}  # incident id -> when its first order was read
        self.answer = True
        self.held: list[dict] = []
        self.orders = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        from streams.runtime.topics import DISPATCH_ORDERS

        await self.consumer.start()
        partitions = await partitions_of(self.consumer, DISPATCH_ORDERS)
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self.consumer.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=50)
            now = loop.time()
            for records in batch.values():
                for record in records:
                    try:
                        order = json.loads(record.value)
                    except ValueError:
                        continue
                    if order.get("kind") != "assign":
                        continue
                    self.orders += 1
                    incident_id = order.get("incident_id")
                    if incident_id in self.sent and incident_id not in self.seen:
                        self.seen[incident_id] = now
                    if self.answer:
                        await self.resolve(order)
                    else:
                        self.held.append(order)

    async def resolve(self, order: dict) -> None:
        from streams.runtime.topics import UNIT_EVENTS

        doc = {"schema_version": 1, "event_id": f"bench-{order['order_id']}", "unit_id": order["unit_id"],
               "at": datetime.now(timezone.utc).isoformat(), "type": "resolved", "order_id": order["order_id"],
               "outcome": "handled"}
        await self.producer.send(UNIT_EVENTS, json.dumps(doc).encode(), key=order["unit_id"].encode())

    async def release(self) -> None:
        """Answer every order held back and answer at once from now on."""
        held, self.held = self.held, []
        self.answer = True
        for order in held:
            await self.resolve(order)

    def latencies_ms(self, incident_ids: list[str]) -> list[float]:
        return [(self.seen[i] - self.sent[i]) * 1000 for i in incident_ids if i in self.seen]


def _scrape(port: int) -> dict[str, list[tuple[dict, float]]]:
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((sample.labels, sample.value))
    return out


DECISION_HISTOGRAM = "patrol_dispatch_decision_seconds"
INTAKE_WAIT_HISTOGRAM = "patrol_intake_wait_seconds"


def _histograms(port: int, *names: str) -> dict[str, dict[float, float]]:
    """The worker's histograms `names`, each as cumulative counts by upper bound (summed over their labels)."""
    scraped = _scrape(port)
    out: dict[str, dict[float, float]] = {}
    for name in names:
        buckets: dict[float, float] = defaultdict(float)
        for labels, value in scraped.get(f"{name}_bucket", []):
            buckets[float(labels["le"])] += value
        out[name] = dict(buckets)
    return out


def _histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Prometheus' histogram_quantile over the difference of two scrapes (seconds; inf if in the last bucket)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= rank:
            if math.isinf(bound):
                return float("inf")
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return float("inf")


def _p50_p99_ms(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """p50 and p99 in milliseconds of what a histogram took in between two scrapes."""
    return {q: 1000 * _histogram_quantile(before, after, p) for q, p in (("p50", 0.5), ("p99", 0.99))}


async def _eventually(probe, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


class _PipeReader:
    """Reads the raw pipe's output without a group (from the end) and notes when each key arrived."""

    def __init__(self, live: Settings, topic: str):

        self.topic = topic
        self.consumer = clients.standalone_consumer(live)
        self.piped: dict[str, float] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> "_PipeReader":
        await self.consumer.start()
        parts = await partitions_of(self.consumer, self.topic)
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=50)
            now = loop.time()
            for records in batch.values():
                for record in records:
                    self.piped.setdefault(record.key.decode(), now)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self.consumer.stop()


async def _records_in_broker(live: Settings) -> int:
    """Records on every topic of the broker so far (the sum of the end offsets)."""

    consumer = clients.consumer(live)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, *await consumer.topics())
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def _through_pipe(producer, pipe: _PipeReader, pipe_in: str, payload: bytes, keys: list[str], rate: float,
                        advance) -> list[float]:
    """Publish one record per key at `rate`/s into the raw pipe; publish → read latency (ms) of those read
    back within 30 s of the last."""
    loop = asyncio.get_running_loop()
    sent: dict[str, float] = {}
    t0 = loop.time()
    for i, key in enumerate(keys):
        wait = t0 + i / rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        sent[key] = loop.time()
        await producer.send(pipe_in, payload, key=key.encode())
        if i % 50 == 0:
            advance(to=i)
    end = loop.time() + 30
    while loop.time() < end and not all(k in pipe.piped for k in keys):
        await asyncio.sleep(0.05)
    return [(pipe.piped[k] - sent[k]) * 1000 for k in keys if k in pipe.piped]
