"""One real broker, one real PostgreSQL and one real worker process for the whole session.

With PATROL_KAFKA_BOOTSTRAP / PATROL_DATABASE_URL unset they are the embedded ones;
with them set, the given servers are used (a fresh database is created on the
given server and dropped afterwards). Tansu is slow to form consumer groups, so
every test shares the worker and tells its own data apart by unique ids.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from streams.embedded import embedded_infrastructure, free_port, spawn_child, stop_child
from streams.migrate import migrate
from streams.publish import Outgoing, publish
from streams.settings import Settings
from streams.topics import ensure_topics


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory) -> Settings:
    settings = Settings(metrics_port=0, app_id=f"patrol-test-{uuid.uuid4().hex[:8]}")
    workdir = tmp_path_factory.mktemp("infra")
    with embedded_infrastructure(settings, workdir) as live:
        scratch = None
        if not settings.uses_embedded_database:
            scratch = f"patrol_test_{uuid.uuid4().hex[:10]}"
            asyncio.run(_admin(live.database_url, f'CREATE DATABASE "{scratch}"'))
            live = live.with_overrides(database_url=_with_database(live.database_url, scratch))
        try:
            asyncio.run(migrate(live.database_url))
            asyncio.run(ensure_topics(live))
            yield live.with_overrides(data_dir=workdir)
        finally:
            if scratch:
                asyncio.run(_admin(settings.database_url, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))


class WorkerProcess:
    def __init__(self, settings: Settings, log: Path):
        self.settings = settings
        self.log = log
        self.process = None

    def start(self) -> "WorkerProcess":
        env = {**os.environ, **self.settings.to_env()}
        self.process = spawn_child([sys.executable, "-m", "streams.cli", "worker"], log=self.log,
                                   death_signal=signal.SIGTERM, env=env)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_child(self.process, signal.SIGTERM, timeout=30)

    def assert_alive(self) -> None:
        assert self.process.poll() is None, f"worker died: {self.log.read_text()[-3000:]}"


@pytest.fixture(scope="session")
def worker(infrastructure: Settings) -> WorkerProcess:
    settings = infrastructure.with_overrides(metrics_port=free_port())
    process = WorkerProcess(settings, Path(infrastructure.data_dir) / "worker.log").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def db(infrastructure: Settings):
    connection = await asyncpg.connect(infrastructure.database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def send(settings: Settings, messages: list[Outgoing]) -> None:
    await publish(settings, messages)


async def eventually(probe, timeout: float = 90.0, interval: float = 0.25):
    """Await `probe()` until it returns a truthy value; fails with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:.0f} s; last value: {last!r}")
