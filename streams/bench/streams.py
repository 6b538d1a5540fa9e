"""Benchmarks 1-2, throughput and latency through a real worker on an embedded broker: each phase on a new
broker, the offered rates, and the broker-growth blocks and the raw pipe's floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
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
    _create_topics,
    _eventually,
    _histograms,
    _p50_p99_ms,
    _pipe_topics,
    _records_in_broker,
    _scrape,
    _through_pipe,
)
from streams.bench.profile import Sampler
from streams.bench.reference import DISTRICT, Steps, generated_units
from streams.bench.results import GrowthStep, LatencyStep, Sizes, Throughput
from streams.settings import Settings


async def _latency_at(rate: int, sizes: Sizes, raw: _RawPipe, orders: "_Orders", reports: "_Reports", producer,
                      live: Settings, metrics_port: int, worker_pid: int, steps: Steps, alive, merged) -> LatencyStep:
    """The raw pipe's latency at `rate`, then reports at `rate` through the worker, every order answered at once."""
    from streams.runtime.topics import INCIDENT_REPORTS

    loop = asyncio.get_running_loop()
    # --- the pipe at this rate: the floor of a Kafka hop pair on this broker
    payload = reports.make("X", 1)[0][2]
    n = max(1, int(rate * sizes.pipe_rate_seconds))
    keys = [f"L{rate}-{i:07d}" for i in range(n)]
    async with raw.running():
        pipe = await _PipeReader(live, raw.target).start()
        with steps.task(f"raw pipe latency at {rate}/s", n) as advance:
            pipe_ms = await _through_pipe(producer, pipe, raw.source, payload, keys, rate, advance)
        await pipe.stop()

    # --- reports at this rate
    await asyncio.sleep(1.0)
    n = max(1, int(rate * sizes.rate_seconds))
    tag = f"L{rate}"
    batch = reports.make(tag, n)
    before = await asyncio.to_thread(_histograms, metrics_port, DECISION_HISTOGRAM, INTAKE_WAIT_HISTOGRAM)
    records_before = await _records_in_broker(live)
    with steps.task(f"latency at {rate} reports/s", n) as advance:
        watch = CpuWatch(worker_pid).start()
        t0 = loop.time()
        for i, (report_id, incident_id, value) in enumerate(batch):
            wait = t0 + i / rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            orders.sent[incident_id] = loop.time()
            await producer.send(INCIDENT_REPORTS, value, key=report_id.encode())
            if i % 50 == 0:
                advance(to=i)
        send_seconds = loop.time() - t0
        ids = [incident_id for _, incident_id, _ in batch]
        end = loop.time() + sizes.drain_seconds
        while loop.time() < end:
            alive()
            answered = sum(1 for i in ids if i in orders.seen)
            advance(to=answered)
            if answered >= n or answered + await merged(tag) >= n:
                break
            await asyncio.sleep(0.1)
        watch.stop()
        records = await _records_in_broker(live) - records_before
    await asyncio.sleep(0.5)  # let the worker's histogram take in the last orders
    after = await asyncio.to_thread(_histograms, metrics_port, DECISION_HISTOGRAM, INTAKE_WAIT_HISTOGRAM)
    merges = await merged(tag)
    values = orders.latencies_ms(ids)
    return LatencyStep(
        rate=rate, seconds=sizes.rate_seconds, sent=n, send_seconds=send_seconds, latencies_ms=values,
        merged=merges, unanswered=max(0, n - len(values) - merges),
        worker_ms=_p50_p99_ms(before[DECISION_HISTOGRAM], after[DECISION_HISTOGRAM]),
        intake_ms=_p50_p99_ms(before[INTAKE_WAIT_HISTOGRAM], after[INTAKE_WAIT_HISTOGRAM]),
        pipe_ms=pipe_ms, worker_cores=watch.worker, machine_cores=watch.machine, cores=watch.cores,
        broker_records=records)


async def _stream_phase(live: Settings, metrics_port: int, worker_pid: int, raw: _RawPipe, sizes: Sizes,
                        catalogue: Catalogue, geography: Geography, steps: Steps, alive,
                        rate: int | None) -> tuple[Throughput | None, LatencyStep | None, dict[str, float]]:
    """One phase on a worker of its own: the throughput burst and the pipe's (rate None), or the latency at
    `rate` reports/s and the pipe's at that rate."""
    import asyncpg
    from aiokafka import AIOKafkaProducer

    from streams.runtime.topics import INCIDENT_REPORTS, UNIT_EVENTS

    loop = asyncio.get_running_loop()
    run = uuid.uuid4().hex[:6].upper()
    reports = _Reports(catalogue, geography, run)
    producer = AIOKafkaProducer(bootstrap_servers=live.kafka_bootstrap, linger_ms=0,
                                max_batch_size=65536, **live.producer_options())
    await producer.start()
    orders = _Orders(live, producer)
    await orders.start()
    db = await asyncpg.connect(live.database_url)
    memory: dict[str, float] = {}

    async def send_reports(batch: list[tuple[str, str, bytes]]) -> None:
        for report_id, incident_id, value in batch:
            orders.sent[incident_id] = loop.time()
            await producer.send(INCIDENT_REPORTS, value, key=report_id.encode())

    async def log_on(units: list[dict]) -> None:
        now = datetime.now(timezone.utc).isoformat()
        for unit in units:
            doc = {"schema_version": 1, "event_id": f"bench-on-{unit['unit_id']}", "at": now, "type": "log_on", **unit}
            await producer.send(UNIT_EVENTS, json.dumps(doc).encode(), key=unit["unit_id"].encode())
        await producer.flush()

    async def settled(tag: str) -> int:
        """Reports of a tag accounted for in PostgreSQL: an incident row, or a merge into another incident."""
        return await db.fetchval(
            """SELECT (SELECT count(*) FROM incidents WHERE report_id LIKE $1)
                    + (SELECT count(*) FROM incident_events WHERE type = 'report_merged'
                       AND data->>'report_id' LIKE $1)""", f"BENCH{run}-{tag}-%")

    async def merged(tag: str) -> int:
        return await db.fetchval("SELECT count(*) FROM incident_events WHERE type = 'report_merged' "
                                 "AND data->>'report_id' LIKE $1", f"BENCH{run}-{tag}-%")

    try:
        # --- the worker is ready when a first report has become an order and a row
        with steps.task("waiting for the worker to join its groups", 1) as advance:
            rnd = random.Random(3)
            # one unit of each agency, so that whatever the first report's category, someone can take it
            await log_on(generated_units(geography, 3, rnd, f"BW{run}-"))
            warm = reports.make("W", 1)
            await send_reports(warm)
            await producer.flush()

            async def warmed():
                alive()
                return warm[0][1] in orders.seen and await settled("W") >= 1

            await _eventually(warmed, 240, "the worker's first order and row")
            advance()
        memory["rss_ready"] = _rss_bytes(worker_pid)
        # each agency in proportion to the categories the reports are drawn from, so none runs dry first
        demand = Counter(catalogue.get(code).agencies[0] for _, code in reports.slots)
        agencies = tuple(sorted(demand))
        units = generated_units(geography, sizes.stream_units, rnd, f"BU{run}-", agencies,
                                tuple(demand[a] for a in agencies))
        with steps.task(f"logging on {len(units):,} units", len(units)) as advance:
            await log_on(units)

            async def all_on():
                alive()
                counted = sum(v for labels, v in (await asyncio.to_thread(_scrape, metrics_port)).get("patrol_units", [])
                              if labels.get("district") == DISTRICT)
                advance(to=counted)
                return counted >= len(units) + 3

            await _eventually(all_on, 180, "the units' log-ons", interval=0.5)
        memory["rss_units"] = _rss_bytes(worker_pid)
        memory["units"] = len(units) + 3

        throughput = None
        if rate is None:
            # --- 1. throughput: a burst of reports, the crew holding its answers (the report path alone)
            orders.answer = False
            burst = reports.make("T", sizes.throughput_reports)
            records_before = await _records_in_broker(live)
            with steps.task(f"throughput: {len(burst):,} reports to PostgreSQL", len(burst)) as advance:
                sampler = Sampler(worker_pid, Path(live.data_dir) / "worker-profile.txt").start()
                watch = CpuWatch(worker_pid).start()
                started = loop.time()
                await send_reports(burst)
                await producer.flush()
                deadline = started + max(120.0, len(burst) / 20)
                done = 0
                while loop.time() < deadline:
                    alive()
                    done = await settled("T")
                    advance(to=done)
                    if done >= len(burst):
                        break
                    await asyncio.sleep(0.05)
                seconds = loop.time() - started
                watch.stop()
                profile = await asyncio.to_thread(sampler.stop)
                decided = [orders.seen[i] for _, i, _ in burst if i in orders.seen]
                orders_seconds = (max(decided) - started) if decided else float("nan")
            throughput_merged = await merged("T")
            broker_records = await _records_in_broker(live) - records_before
            await orders.release()

            # --- the baseline pipe: the same payloads through a plain consume → produce loop
            payloads = [(f"P-{i:07d}", value) for i, (_, _, value) in
                        enumerate(burst[i % len(burst)] for i in range(sizes.pipe_records))]
            async with raw.running():
                pipe = await _PipeReader(live, raw.target).start()
                piped = pipe.piped
                with steps.task(f"raw pipe: {len(payloads):,} records", len(payloads)) as advance:
                    pipe_watch = CpuWatch(worker_pid).start()
                    pipe_started = loop.time()
                    for key, value in payloads:
                        await producer.send(raw.source, value, key=key.encode())
                    await producer.flush()
                    pipe_deadline = pipe_started + 120
                    while len(piped) < len(payloads) and loop.time() < pipe_deadline:
                        advance(to=len(piped))
                        await asyncio.sleep(0.02)
                    pipe_seconds = max(piped.values(), default=loop.time()) - pipe_started
                    pipe_watch.stop()
                await pipe.stop()
            throughput = Throughput(reports=done, seconds=seconds, merged=throughput_merged,
                                    pipe_records=len(piped), pipe_seconds=pipe_seconds, orders=len(decided),
                                    orders_seconds=orders_seconds, worker_cores=watch.worker,
                                    broker_records=broker_records, profile=profile,
                                    pipe_cpu_s=pipe_watch.cpu_seconds("raw pipe"),
                                    machine_cores=watch.machine, cores=watch.cores)

        step = None
        if rate is not None:
            step = await _latency_at(rate, sizes, raw, orders, reports, producer, live, metrics_port, worker_pid,
                                     steps, alive, merged)
        await asyncio.sleep(1.0)
        memory["rss_end"] = _rss_bytes(worker_pid)
        memory["incidents"] = await db.fetchval("SELECT count(*) FROM incidents WHERE report_id LIKE $1",
                                                f"BENCH{run}-%")
        memory["open_incidents"] = await db.fetchval(
            "SELECT count(*) FROM incidents WHERE report_id LIKE $1 AND status NOT IN ('closed', 'cancelled')",
            f"BENCH{run}-%")
        return throughput, step, memory
    finally:
        await orders.stop()
        await producer.stop()
        await db.close()


def stream_benchmarks(base: Settings, sizes: Sizes, catalogue: Catalogue, geography: Geography,
                      steps: Steps) -> tuple[Throughput, list[LatencyStep], dict[str, float]]:
    """One embedded PostgreSQL; for each phase (the burst, then each offered rate) a new embedded broker, a
    worker process and a raw pipe process: the embedded broker slows down as its topics grow (broker_growth),
    so a phase measured after another would measure the broker's past, not the worker."""
    from streams.operations.embedded import EmbeddedDatabase
    from streams.sink.migrate import migrate

    workdir = Path(base.data_dir).resolve() / "bench" / base.embedded_broker
    workdir.mkdir(parents=True, exist_ok=True)
    # the Kafka clients' INFO lines (every subscription change) would tear the progress bars
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        with steps.task("starting the embedded PostgreSQL", 1) as advance:
            database = EmbeddedDatabase(workdir).start()
            stack.callback(database.stop)
            advance()
        asyncio.run(migrate(database.url))
        throughput, latency, memory = None, [], {}
        for rate in (None, *sizes.rates):
            t, step, m = _phase_on_new_broker(base, database.url, workdir, sizes, catalogue, geography, steps, rate)
            if t is not None:
                throughput, memory = t, m  # the worker's memory is read in the burst (the most open incidents)
            if step is not None:
                latency.append(step)
        return throughput, latency, memory


async def _growth_blocks(live: Settings, raw: _RawPipe, rate: int, seconds: float, blocks: int,
                         steps: Steps) -> list[GrowthStep]:
    async with raw.running():
        return await _growth_blocks_running(live, raw, rate, seconds, blocks, steps)


async def _growth_blocks_running(live: Settings, raw: _RawPipe, rate: int, seconds: float, blocks: int,
                                 steps: Steps) -> list[GrowthStep]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=live.kafka_bootstrap, linger_ms=0,
                                **live.producer_options())
    await producer.start()
    pipe = await _PipeReader(live, raw.target).start()
    payload = json.dumps({"schema_version": 1, "pad": "x" * 300}).encode()
    out, through = [], 0
    try:
        for block in range(blocks):
            n = int(rate * seconds)
            keys = [f"G{block}-{i:07d}" for i in range(n)]
            with steps.task(f"raw pipe on a new broker: block {block + 1} of {blocks} at {rate}/s", n) as advance:
                latencies = await _through_pipe(producer, pipe, raw.source, payload, keys, rate, advance)
            out.append(GrowthStep(through, n, latencies))
            through += n
    finally:
        await pipe.stop()
        await producer.stop()
    return out


def broker_growth(base: Settings, sizes: Sizes, steps: Steps) -> list[GrowthStep]:
    """The raw pipe alone on a new embedded broker, at a fixed rate in consecutive blocks: how a hop's
    latency moves as the topics fill up (the reason every streams phase gets a broker of its own)."""
    return _pipe_on_new_broker(base, "growth", sizes.growth_rate, sizes.growth_seconds, sizes.growth_blocks, steps)


def broker_floor(base: Settings, step: LatencyStep, steps: Steps) -> GrowthStep:
    """The raw pipe alone, on a new broker, made to move as many records as the report path did at `step`'s
    rate (each piped record is produced twice and read twice, as ours are about once each): the latency any
    consumer → producer hop meets on this broker at that load, with no worker at all."""
    rate = max(1, round(step.broker_records_per_s / 2))
    return _pipe_on_new_broker(base, "floor", rate, step.seconds, 1, steps)[0]


def _pipe_on_new_broker(base: Settings, name: str, rate: int, seconds: float, blocks: int,
                        steps: Steps) -> list[GrowthStep]:
    from streams.operations.embedded import client_settings, embedded_broker

    workdir = Path(base.data_dir).resolve() / "bench" / base.embedded_broker / name
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        broker = embedded_broker(base, workdir).start()
        stack.callback(broker.stop)
        live = client_settings(base, broker).with_overrides(app_id=f"patrol-growth-{uuid.uuid4().hex[:8]}")
        asyncio.run(_create_topics(live, list(_pipe_topics(live))))
        raw = _RawPipe(live, workdir, {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")})
        stack.callback(raw.stop)
        return asyncio.run(_growth_blocks(live, raw, rate, seconds, blocks, steps))


def _phase_on_new_broker(base: Settings, database_url: str, workdir: Path, sizes: Sizes, catalogue: Catalogue,
                         geography: Geography, steps: Steps, rate: int | None):
    from streams.operations.embedded import client_settings, embedded_broker, free_port, spawn_child, stop_child
    from streams.runtime.topics import ensure_topics

    phase = "burst" if rate is None else f"rate-{rate}"
    phase_dir = workdir / phase
    phase_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        with steps.task(f"{phase}: starting a new embedded broker and a worker", 1) as advance:
            broker = embedded_broker(base, phase_dir).start()
            stack.callback(broker.stop)
            advance()
        # always our own broker and database: a benchmark publishes made-up reports
        live = client_settings(base, broker).with_overrides(database_url=database_url, data_dir=phase_dir,
                                                           app_id=f"patrol-bench-{uuid.uuid4().hex[:8]}")
        asyncio.run(ensure_topics(live))
        asyncio.run(_create_topics(live, list(_pipe_topics(live))))
        # the sink in a process of its own, as deploy/ runs it: the audit writes stay off the dispatch path
        worker_settings = live.with_overrides(metrics_port=free_port(), sink_in_worker=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
        worker = spawn_child([sys.executable, "-m", "streams.cli", "worker"], log=phase_dir / "worker.log",
                             death_signal=signal.SIGTERM, env={**env, **worker_settings.to_env()})
        stack.callback(stop_child, worker, signal.SIGTERM, 30)
        sink = spawn_child([sys.executable, "-m", "streams.cli", "sink"], log=phase_dir / "sink.log",
                           death_signal=signal.SIGTERM, env={**env, **live.with_overrides(metrics_port=0).to_env()})
        stack.callback(stop_child, sink, signal.SIGTERM, 30)
        raw = _RawPipe(live, phase_dir, env)
        stack.callback(raw.stop)

        def alive() -> None:
            for name, process, log in (("worker", worker, "worker.log"), ("sink", sink, "sink.log"),
                                       ("raw pipe", raw.process, "pipe.log")):
                if process.poll() is not None:
                    raise RuntimeError(f"the {name} exited with code {process.returncode}; see {phase_dir / log}")

        return asyncio.run(_stream_phase(live, worker_settings.metrics_port, worker.pid, raw, sizes,
                                         catalogue, geography, steps, alive, rate))
