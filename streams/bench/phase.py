"""One streams phase of the benchmark against a running worker: the warm-up, the units' log-ons, the throughput
burst with the raw pipe beside it, and the latency at an offered rate (streams/bench/streams.py starts the broker,
worker and sink each phase runs on)."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from processors.catalogue import Catalogue
from processors.geography import Geography
from streams.bench.cpu import CpuWatch, _rss_bytes
from streams.bench.pipe import (
    DECISION_HISTOGRAM,
    INTAKE_WAIT_HISTOGRAM,
    _Orders,
    _PipeReader,
    _RawPipe,
    _Reports,
    _eventually,
    _histograms,
    _p50_p99_ms,
    _records_in_broker,
    _scrape,
    _through_pipe,
)
from streams.bench.profile import Sampler
from streams.bench.reference import DISTRICT, Steps, generated_units
from streams.bench.results import LatencyStep, Sizes, Throughput
from streams.runtime import clients
from streams.runtime.topics import INCIDENT_REPORTS, UNIT_EVENTS
from streams.settings import Settings


class Phase:
    """A phase's clients (a producer, the order reader, PostgreSQL) and its steps; `alive()` raises once a
    process the phase depends on has exited."""

    def __init__(self, live: Settings, metrics_port: int, worker_pid: int, raw: _RawPipe, sizes: Sizes,
                 catalogue: Catalogue, geography: Geography, steps: Steps, alive):
        self.live, self.metrics_port, self.worker_pid, self.raw = live, metrics_port, worker_pid, raw
        self.sizes, self.catalogue, self.geography, self.steps, self.alive = sizes, catalogue, geography, steps, alive
        self.run = uuid.uuid4().hex[:6].upper()
        self.reports = _Reports(catalogue, geography, self.run)
        self.memory: dict[str, float] = {}

    async def __aenter__(self) -> "Phase":
        import asyncpg

        self.loop = asyncio.get_running_loop()
        self.producer = clients.producer(self.live, linger_ms=0, max_batch_size=65536)
        await self.producer.start()
        self.orders = _Orders(self.live, self.producer)
        await self.orders.start()
        self.db = await asyncpg.connect(self.live.database_url)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.orders.stop()
        await self.producer.stop()
        await self.db.close()

    async def send_reports(self, batch: list[tuple[str, str, bytes]]) -> None:
        for report_id, incident_id, value in batch:
            self.orders.sent[incident_id] = self.loop.time()
            await self.producer.send(INCIDENT_REPORTS, value, key=report_id.encode())

    async def log_on(self, units: list[dict]) -> None:
        now = datetime.now(timezone.utc).isoformat()
        for unit in units:
            doc = {"schema_version": 1, "event_id": f"bench-on-{unit['unit_id']}", "at": now, "type": "log_on", **unit}
            await self.producer.send(UNIT_EVENTS, json.dumps(doc).encode(), key=unit["unit_id"].encode())
        await self.producer.flush()

    async def settled(self, tag: str) -> int:
        """Reports of a tag accounted for in PostgreSQL: an incident row, or a merge into another incident."""
        return await self.db.fetchval(
            """SELECT (SELECT count(*) FROM incidents WHERE report_id LIKE $1)
                    + (SELECT count(*) FROM incident_events WHERE type = 'report_merged'
                       AND data->>'report_id' LIKE $1)""", f"BENCH{self.run}-{tag}-%")

    async def merged(self, tag: str) -> int:
        return await self.db.fetchval("SELECT count(*) FROM incident_events WHERE type = 'report_merged' "
                                      "AND data->>'report_id' LIKE $1", f"BENCH{self.run}-{tag}-%")

    async def warm_up(self, rnd: random.Random) -> None:
        """Until the worker has turned a first report into an order and a row: it has joined its groups."""
        with self.steps.task("waiting for the worker to join its groups", 1) as advance:
            # one unit of each agency, so that whatever the first report's category, someone can take it
            await self.log_on(generated_units(self.geography, 3, rnd, f"BW{self.run}-"))
            warm = self.reports.make("W", 1)
            await self.send_reports(warm)
            await self.producer.flush()

            async def warmed():
                self.alive()
                return warm[0][1] in self.orders.seen and await self.settled("W") >= 1

            await _eventually(warmed, 240, "the worker's first order and row")
            advance()
        self.memory["rss_ready"] = _rss_bytes(self.worker_pid)

    async def log_on_units(self, rnd: random.Random) -> None:
        # each agency in proportion to the categories the reports are drawn from, so none runs dry first
        demand = Counter(self.catalogue.get(code).agencies[0] for _, code in self.reports.slots)
        agencies = tuple(sorted(demand))
        units = generated_units(self.geography, self.sizes.stream_units, rnd, f"BU{self.run}-", agencies,
                                tuple(demand[a] for a in agencies))
        with self.steps.task(f"logging on {len(units):,} units", len(units)) as advance:
            await self.log_on(units)

            async def all_on():
                self.alive()
                scraped = await asyncio.to_thread(_scrape, self.metrics_port)
                counted = sum(v for labels, v in scraped.get("patrol_units", []) if labels.get("district") == DISTRICT)
                advance(to=counted)
                return counted >= len(units) + 3

            await _eventually(all_on, 180, "the units' log-ons", interval=0.5)
        self.memory["rss_units"] = _rss_bytes(self.worker_pid)
        self.memory["units"] = len(units) + 3

    async def throughput(self) -> Throughput:
        """A burst of reports, the crew holding its answers (the report path alone), then the same payloads
        through the raw pipe: the baseline of a plain consume -> produce loop."""
        self.orders.answer = False
        burst = self.reports.make("T", self.sizes.throughput_reports)
        records_before = await _records_in_broker(self.live)
        with self.steps.task(f"throughput: {len(burst):,} reports to PostgreSQL", len(burst)) as advance:
            sampler = Sampler(self.worker_pid, Path(self.live.data_dir) / "worker-profile.txt").start()
            watch = CpuWatch(self.worker_pid).start()
            started = self.loop.time()
            await self.send_reports(burst)
            await self.producer.flush()
            deadline = started + max(120.0, len(burst) / 20)
            done = 0
            while self.loop.time() < deadline:
                self.alive()
                done = await self.settled("T")
                advance(to=done)
                if done >= len(burst):
                    break
                await asyncio.sleep(0.05)
            seconds = self.loop.time() - started
            watch.stop()
            profile = await asyncio.to_thread(sampler.stop)
            decided = [self.orders.seen[i] for _, i, _ in burst if i in self.orders.seen]
            orders_seconds = (max(decided) - started) if decided else float("nan")
        throughput_merged = await self.merged("T")
        broker_records = await _records_in_broker(self.live) - records_before
        await self.orders.release()
        piped, pipe_seconds, pipe_watch = await self._raw_pipe(burst)
        return Throughput(reports=done, seconds=seconds, merged=throughput_merged,
                          pipe_records=len(piped), pipe_seconds=pipe_seconds, orders=len(decided),
                          orders_seconds=orders_seconds, worker_cores=watch.worker,
                          broker_records=broker_records, profile=profile,
                          pipe_cpu_s=pipe_watch.cpu_seconds("raw pipe"),
                          machine_cores=watch.machine, cores=watch.cores)

    async def _raw_pipe(self, burst: list[tuple[str, str, bytes]]):
        payloads = [(f"P-{i:07d}", value) for i, (_, _, value) in
                    enumerate(burst[i % len(burst)] for i in range(self.sizes.pipe_records))]
        async with self.raw.running():
            pipe = await _PipeReader(self.live, self.raw.target).start()
            piped = pipe.piped
            with self.steps.task(f"raw pipe: {len(payloads):,} records", len(payloads)) as advance:
                pipe_watch = CpuWatch(self.worker_pid).start()
                pipe_started = self.loop.time()
                for key, value in payloads:
                    await self.producer.send(self.raw.source, value, key=key.encode())
                await self.producer.flush()
                pipe_deadline = pipe_started + 120
                while len(piped) < len(payloads) and self.loop.time() < pipe_deadline:
                    advance(to=len(piped))
                    await asyncio.sleep(0.02)
                pipe_seconds = max(piped.values(), default=self.loop.time()) - pipe_started
                pipe_watch.stop()
            await pipe.stop()
        return piped, pipe_seconds, pipe_watch

    async def latency_at(self, rate: int) -> LatencyStep:
        """The raw pipe's latency at `rate`, then reports at `rate` through the worker, every order answered at once."""
        sizes, loop = self.sizes, self.loop
        # --- the pipe at this rate: the floor of a Kafka hop pair on this broker
        payload = self.reports.make("X", 1)[0][2]
        n = max(1, int(rate * sizes.pipe_rate_seconds))
        keys = [f"L{rate}-{i:07d}" for i in range(n)]
        async with self.raw.running():
            pipe = await _PipeReader(self.live, self.raw.target).start()
            with self.steps.task(f"raw pipe latency at {rate}/s", n) as advance:
                pipe_ms = await _through_pipe(self.producer, pipe, self.raw.source, payload, keys, rate, advance)
            await pipe.stop()

        # --- reports at this rate
        await asyncio.sleep(1.0)
        n = max(1, int(rate * sizes.rate_seconds))
        tag = f"L{rate}"
        batch = self.reports.make(tag, n)
        before = await asyncio.to_thread(_histograms, self.metrics_port, DECISION_HISTOGRAM, INTAKE_WAIT_HISTOGRAM)
        records_before = await _records_in_broker(self.live)
        with self.steps.task(f"latency at {rate} reports/s", n) as advance:
            watch = CpuWatch(self.worker_pid).start()
            send_seconds = await self._paced(batch, rate, advance)
            ids = [incident_id for _, incident_id, _ in batch]
            end = loop.time() + sizes.drain_seconds
            while loop.time() < end:
                self.alive()
                answered = sum(1 for i in ids if i in self.orders.seen)
                advance(to=answered)
                if answered >= n or answered + await self.merged(tag) >= n:
                    break
                await asyncio.sleep(0.1)
            watch.stop()
            records = await _records_in_broker(self.live) - records_before
        await asyncio.sleep(0.5)  # let the worker's histogram take in the last orders
        after = await asyncio.to_thread(_histograms, self.metrics_port, DECISION_HISTOGRAM, INTAKE_WAIT_HISTOGRAM)
        merges = await self.merged(tag)
        values = self.orders.latencies_ms(ids)
        return LatencyStep(
            rate=rate, seconds=sizes.rate_seconds, sent=n, send_seconds=send_seconds, latencies_ms=values,
            merged=merges, unanswered=max(0, n - len(values) - merges),
            worker_ms=_p50_p99_ms(before[DECISION_HISTOGRAM], after[DECISION_HISTOGRAM]),
            intake_ms=_p50_p99_ms(before[INTAKE_WAIT_HISTOGRAM], after[INTAKE_WAIT_HISTOGRAM]),
            pipe_ms=pipe_ms, worker_cores=watch.worker, machine_cores=watch.machine, cores=watch.cores,
            broker_records=records)

    async def _paced(self, batch: list[tuple[str, str, bytes]], rate: int, advance) -> float:
        """Send `batch` at `rate` a second; the seconds it took."""
        t0 = self.loop.time()
        for i, (report_id, incident_id, value) in enumerate(batch):
            wait = t0 + i / rate - self.loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.orders.sent[incident_id] = self.loop.time()
            await self.producer.send(INCIDENT_REPORTS, value, key=report_id.encode())
            if i % 50 == 0:
                advance(to=i)
        return self.loop.time() - t0

    async def final_memory(self) -> dict[str, float]:
        await asyncio.sleep(1.0)
        self.memory["rss_end"] = _rss_bytes(self.worker_pid)
        self.memory["incidents"] = await self.db.fetchval(
            "SELECT count(*) FROM incidents WHERE report_id LIKE $1", f"BENCH{self.run}-%")
        self.memory["open_incidents"] = await self.db.fetchval(
            "SELECT count(*) FROM incidents WHERE report_id LIKE $1 AND status NOT IN ('closed', 'cancelled')",
            f"BENCH{self.run}-%")
        return self.memory


async def run_phase(phase: Phase, rate: int | None) -> tuple[Throughput | None, LatencyStep | None, dict[str, float]]:
    """One phase on a worker of its own: the throughput burst and the pipe's (rate None), or the latency at
    `rate` reports/s and the pipe's at that rate."""
    async with phase:
        rnd = random.Random(3)
        await phase.warm_up(rnd)
        await phase.log_on_units(rnd)
        throughput = await phase.throughput() if rate is None else None
        step = await phase.latency_at(rate) if rate is not None else None
        return throughput, step, await phase.final_memory()
