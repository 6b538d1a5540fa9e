"""The health record and its endpoints: the liveness rule with a clock of the test's own (pure), the endpoints
served by a real aiohttp server on the running event loop, and the session's real worker alive and ready."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request

import pytest

from streams.operations.embedded import free_port
from streams.runtime.health import Health, serve
from streams.settings import Settings
from tests.streams.conftest import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of GET `path`, whatever the status."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# ----------------------------------------------------------------------------- the rule


def test_a_loop_with_work_and_no_progress_for_the_stall_limit_is_stalled():
    clock = Clock()
    record = Health(stall_s=60, clock=clock)
    record.progress("district-pipeline")
    record.working("district-pipeline", True)
    clock.now += 59.9
    assert record.stalled() == {}
    clock.now += 0.1
    assert record.stalled() == {"district-pipeline": pytest.approx(60.0)}
    record.progress("district-pipeline")  # a batch handled: alive again
    assert record.stalled() == {}


def test_a_loop_with_nothing_to_do_is_alive_however_long_it_idles():
    clock = Clock()
    record = Health(stall_s=60, clock=clock)
    record.progress("sink")
    record.working("sink", False)
    clock.now += 3600
    assert record.stalled() == {}
    # work arrives and is not taken: the stall counts from the last progress, an hour ago
    record.working("sink", True)
    assert record.stalled() == {"sink": pytest.approx(3600.0)}
    record.working("sink", False)  # taken meanwhile by nothing the loop did, but nothing is waiting any more
    assert record.stalled() == {}


def test_a_loop_first_heard_of_with_work_is_given_the_stall_limit_from_then():
    clock = Clock()
    record = Health(stall_s=10, clock=clock)
    record.working("district-pipeline", True)
    clock.now += 9
    assert record.stalled() == {}
    clock.now += 1
    assert set(record.stalled()) == {"district-pipeline"}


def test_only_the_stalled_loop_is_named():
    clock = Clock()
    record = Health(stall_s=60, clock=clock)
    for loop in ("district-pipeline", "sink"):
        record.progress(loop)
        record.working(loop, True)
    clock.now += 61
    record.progress("district-pipeline")
    assert set(record.stalled()) == {"sink"}


def test_readiness_says_why_not():
    record = Health()
    assert record.ready() == (False, "starting: no readiness check set yet")
    record.readiness = lambda: True
    assert record.ready() == (True, "ready")
    record.readiness = lambda: (False, "catching up with work-log partitions [2]")
    assert record.ready() == (False, "catching up with work-log partitions [2]")

    def broken():
        raise RuntimeError("no consumer")

    record.readiness = broken
    assert record.ready() == (False, "the readiness check failed: RuntimeError: no consumer")


# ----------------------------------------------------------------------------- the endpoints


@pytest.fixture
async def served():
    """A record with the test's clock, served on a free port by this test's event loop."""
    clock = Clock()
    record = Health(clock=clock)
    port = free_port()
    runner = await serve(Settings(metrics_port=port, liveness_stall_s=30), record)
    try:
        yield record, clock, port
    finally:
        await runner.cleanup()


async def test_healthz_names_the_stalled_loop_and_readyz_says_why_not(served):
    record, clock, port = served
    assert record.stall_s == 30  # from the settings
    record.progress("sink")
    record.working("sink", True)
    status, body = await asyncio.to_thread(get, port, "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "alive", "stall_limit_s": 30,
                                "loops": {"sink": {"has_work": True, "since_progress_s": 0.0}}}
    clock.now += 29.99
    status, body = await asyncio.to_thread(get, port, "/healthz")
    # alive, and the figure never shows the limit while it is not reached
    assert (status, json.loads(body)["loops"]["sink"]["since_progress_s"]) == (200, 29.9)
    clock.now += 12.01
    status, body = await asyncio.to_thread(get, port, "/healthz")
    assert status == 503
    assert json.loads(body)["stalled"] == [{"loop": "sink", "since_progress_s": 42.0}]

    status, body = await asyncio.to_thread(get, port, "/readyz")
    assert (status, json.loads(body)) == (503, {"status": "not ready",
                                                "reason": "starting: no readiness check set yet"})
    record.readiness = lambda: (True, "writing 4 partitions to PostgreSQL")
    status, body = await asyncio.to_thread(get, port, "/readyz")
    assert (status, json.loads(body)["status"]) == (200, "ready")

    status, body = await asyncio.to_thread(get, port, "/metrics")
    assert status == 200
    assert 'patrol_loop_progress_timestamp_seconds{loop="sink"}' in body


async def test_a_blocked_event_loop_cannot_answer_the_probe(served):
    """The probe is answered by the event loop itself: while it is blocked (as by a hung handler), the probe gets
    no answer, where a server thread would have answered for it."""
    _, _, port = served
    gave_up = threading.Event()
    outcome: dict = {}

    def probe() -> None:
        try:
            outcome["answer"] = get(port, "/healthz", timeout=1)
        except (TimeoutError, urllib.error.URLError) as error:
            outcome["error"] = error
        finally:
            gave_up.set()

    threading.Thread(target=probe, daemon=True).start()
    # block this event loop, the one serving the probe, until the probe has given up (or 60 s have passed)
    gave_up.wait(60)
    assert "answer" not in outcome and "error" in outcome, outcome
    # running again, the loop answers
    assert (await asyncio.to_thread(get, port, "/healthz"))[0] == 200


# ----------------------------------------------------------------------------- the session's worker


@pytest.mark.integration
async def test_a_healthy_worker_is_alive_and_ready_once_it_has_caught_up(worker):
    from tests.streams.runtime.test_metrics import scrape, value

    port = worker.settings.metrics_port

    async def ready():
        worker.assert_alive()
        try:
            status, body = await asyncio.to_thread(get, port, "/readyz")
        except urllib.error.URLError:
            return None  # not serving yet
        return json.loads(body) if status == 200 else None

    answer = await eventually(ready, timeout=120)
    assert answer["reason"].startswith("caught up with work-log partitions")

    async def both_loops_report():
        # the district pipeline and the sink inside the worker, each once it has joined its group
        status, body = await asyncio.to_thread(get, port, "/healthz")
        assert status == 200, body
        health = json.loads(body)
        return health if {"district-pipeline", "sink"} <= set(health["loops"]) else None

    health = await eventually(both_loops_report, timeout=60)
    assert health["status"] == "alive" and health["stall_limit_s"] == worker.settings.liveness_stall_s

    families = await asyncio.to_thread(scrape, port)
    assert value(families["patrol_worker_ready"], "patrol_worker_ready") == 1
    beats = families["patrol_loop_progress_timestamp_seconds"]
    assert value(beats, "patrol_loop_progress_timestamp_seconds", loop="district-pipeline") > 0
    assert {s.labels["loop"] for s in families["patrol_loop_restarts"]} >= {"district-pipeline", "sink"}
    assert value(families["patrol_sink_write_failing_seconds"], "patrol_sink_write_failing_seconds") == 0
    worker.assert_alive()
