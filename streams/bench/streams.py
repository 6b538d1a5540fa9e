"""Benchmarks 1-2, throughput and latency through a real worker on an embedded broker: each phase on a new
broker (its steps in streams/bench/phase.py), the offered rates, and the broker-growth blocks and the raw pipe's
floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import uuid
from pathlib import Path

from processors.catalogue import Catalogue
from processors.geography import Geography
from streams.bench.phase import Phase, run_phase
from streams.bench.pipe import _PipeReader, _RawPipe, _create_topics, _pipe_topics, _through_pipe
from streams.bench.reference import Steps
from streams.bench.results import GrowthStep, LatencyStep, Sizes, Throughput
from streams.runtime import clients
from streams.settings import Settings


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

    producer = clients.producer(live, linger_ms=0)
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
        # always our own broker and database: a benchmark publishes made-up reports, and logs on made-up units,
        # which a register of its own admits at their word
        register = phase_dir / "units.yaml"
        register.write_text("unlisted: admit\nunits: []\n")
        live = client_settings(base, broker).with_overrides(database_url=database_url, data_dir=phase_dir,
                                                           app_id=f"patrol-bench-{uuid.uuid4().hex[:8]}",
                                                           unit_register=register)
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

        return asyncio.run(run_phase(Phase(live, worker_settings.metrics_port, worker.pid, raw, sizes,
                                           catalogue, geography, steps, alive), rate))
