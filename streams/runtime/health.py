"""What a worker or sink process says about itself on its metrics port: alive (`/healthz`), ready (`/readyz`), and
its Prometheus metrics (`/metrics`).

Each long-running loop (the district pipeline, the sink) reports here on every turn: `progress(loop)` when it has
handled a batch or polled and found nothing to do, `working(loop, has_work)` whether work is waiting for it
(consumer lag, records in hand). A loop is stalled when it has had work and made no progress for
`Settings.liveness_stall_s`; a loop with nothing to do is alive however long it idles. `/healthz` answers 503
naming every stalled loop and how long since its progress, else 200. `/readyz` answers what the check the process
set (`set_readiness`) says: the worker is ready once it has caught up with its district work logs
(streams/pipeline/worker.py), the sink once it has partitions and reaches PostgreSQL (streams/sink/sink.py).

All three are answered by the process's asyncio event loop, the one its loops run on (aiohttp): an event loop
that is blocked cannot answer, so the probes time out, where prometheus_client's own server, a thread, went on
answering for a hung worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from streams.runtime import metrics
from streams.settings import Settings

log = structlog.get_logger("patrol.health")

# what /readyz asks: ready or not, optionally with the reason in words
Readiness = Callable[[], "bool | tuple[bool, str]"]


@dataclass
class LoopState:
    progress_at: float  # by the record's clock
    has_work: bool = False


class Health:
    """The health record of one process. The module's functions keep the process's own (`RECORD`); tests make
    their own with a clock of their choosing."""

    def __init__(self, stall_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.stall_s = stall_s
        self.clock = clock
        self.loops: dict[str, LoopState] = {}
        self.readiness: Readiness | None = None

    def progress(self, loop: str) -> None:
        state = self.loops.get(loop)
        if state is None:
            self.loops[loop] = LoopState(self.clock())
        else:
            state.progress_at = self.clock()
        metrics.LOOP_PROGRESS.labels(loop).set_to_current_time()

    def working(self, loop: str, has_work: bool) -> None:
        state = self.loops.get(loop)
        if state is None:
            # first heard of with its work: a stall is counted from now
            state = self.loops[loop] = LoopState(self.clock())
        state.has_work = has_work

    def since_progress(self) -> dict[str, float]:
        now = self.clock()
        return {name: now - state.progress_at for name, state in self.loops.items()}

    def stalled(self, since_progress: dict[str, float] | None = None) -> dict[str, float]:
        """The loops that have work and have made no progress for `stall_s`: name -> seconds since their progress
        (of `since_progress`, a snapshot of `since_progress()`, if given)."""
        since = self.since_progress() if since_progress is None else since_progress
        return {name: seconds for name, seconds in since.items()
                if self.loops[name].has_work and seconds >= self.stall_s}

    def ready(self) -> tuple[bool, str]:
        if self.readiness is None:
            return False, "starting: no readiness check set yet"
        try:
            answer = self.readiness()
        except Exception as exc:  # noqa: BLE001 - a check that fails says "not ready", it does not fail the probe
            return False, f"the readiness check failed: {type(exc).__name__}: {exc}"
        if isinstance(answer, tuple):
            return bool(answer[0]), str(answer[1])
        return bool(answer), "ready" if answer else "not ready"


RECORD = Health()
metrics.WORKER_READY.set_function(lambda: 1.0 if RECORD.ready()[0] else 0.0)


def progress(loop: str) -> None:
    """The named loop made progress: it handled a batch, or polled and found nothing to do."""
    RECORD.progress(loop)


def working(loop: str, has_work: bool) -> None:
    """Whether the named loop has work waiting (consumer lag, records in hand)."""
    RECORD.working(loop, has_work)


def set_readiness(check: Readiness) -> None:
    """What /readyz asks: a callable answering ready or not, or (ready, reason)."""
    RECORD.readiness = check


def healthz_answer(record: Health) -> tuple[int, dict]:
    # one reading of the clock for the verdict and the figures, which are cut (not rounded) to a tenth of a second
    # so that a loop shown alive never shows the stall limit
    since = record.since_progress()
    stalled = record.stalled(since)
    body = {
        "status": "stalled" if stalled else "alive",
        "stall_limit_s": record.stall_s,
        "loops": {name: {"has_work": record.loops[name].has_work, "since_progress_s": _tenths(seconds)}
                  for name, seconds in sorted(since.items())},
    }
    if stalled:
        body["stalled"] = [{"loop": name, "since_progress_s": _tenths(seconds)}
                           for name, seconds in sorted(stalled.items())]
    return (503 if stalled else 200), body


def _tenths(seconds: float) -> float:
    return math.floor(seconds * 10) / 10


def application(record: Health = RECORD) -> web.Application:
    """/metrics, /healthz and /readyz of `record` as an aiohttp application."""
    async def healthz(request: web.Request) -> web.Response:
        status, body = healthz_answer(record)
        return web.json_response(body, status=status)

    async def readyz(request: web.Request) -> web.Response:
        ready, reason = record.ready()
        return web.json_response({"status": "ready" if ready else "not ready", "reason": reason},
                                 status=200 if ready else 503)

    async def exposition(request: web.Request) -> web.Response:
        # the text format, or OpenMetrics when the scraper asks for it, as prometheus_client's own server does
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(REGISTRY), headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", exposition)
    return app


async def serve(settings: Settings, record: Health = RECORD) -> web.AppRunner | None:
    """Serve the endpoints on `settings.metrics_port` (0: not at all) from the running event loop, with the stall
    limit of `settings`; the runner is returned for `cleanup()`."""
    record.stall_s = settings.liveness_stall_s
    if not settings.metrics_port:
        return None
    runner = web.AppRunner(application(record), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", settings.metrics_port).start()
    log.info("serving /metrics, /healthz and /readyz", port=settings.metrics_port,
             liveness_stall_s=settings.liveness_stall_s)
    return runner
