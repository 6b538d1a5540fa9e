"""One real broker, one real PostgreSQL and one real worker process for the whole session.

With PATROL_KAFKA_BOOTSTRAP / PATROL_DATABASE_URL unset they are the embedded ones;
with them set, the given servers are used (a fresh database is created on the
given server and dropped afterwards). Tansu is slow to form consumer groups, so
every test shares the worker and tells its own data apart by unique ids.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import yaml

from streams.runtime.consumer_loop import partitions_of
from streams.operations.embedded import broker_name, client_settings, embedded_broker, embedded_infrastructure, free_port, spawn_child, stop_child
from streams.sink.migrate import migrate
from streams.operations.publish import Outgoing, publish
from streams.settings import Settings
from streams.runtime.topics import INCIDENT_REPORTS, UNIT_EVENTS, ensure_topics


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


ISOLATED_DISTRICTS = 40


@dataclass(frozen=True)
class IsolatedDistrict:
    """A district of its own, far from the sample one, so that a test's units serve only that test's incidents."""

    district: str
    lat: float
    lon: float

    @property
    def streets(self) -> tuple[str, str]:
        return (f"{self.district}-W", f"{self.district}-E")

    def point(self, north_m: float = 0.0, east_m: float = 0.0) -> tuple[float, float]:
        """A point in the west street, offset from its centre (each street is about 2 km square)."""
        return (self.lat + north_m / 111_000, self.lon + east_m / 96_000)


def _isolated(i: int) -> IsolatedDistrict:
    return IsolatedDistrict(f"TEST{i:02d}", 20.0 + i * 0.5, 100.0)


def session_geography(path: Path) -> Path:
    """The shipped district plus isolated test districts, each two 0.02° squares side by side."""
    doc = json.loads(resources.files("processors.data").joinpath("geography.geojson").read_text())
    for i in range(ISOLATED_DISTRICTS):
        d = _isolated(i)
        for j, street in enumerate(d.streets):
            lon0 = d.lon - 0.01 + j * 0.02
            ring = [[lon0, d.lat - 0.01], [lon0 + 0.02, d.lat - 0.01], [lon0 + 0.02, d.lat + 0.01],
                    [lon0, d.lat + 0.01], [lon0, d.lat - 0.01]]
            doc["features"].append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                                    "properties": {"district": d.district, "street": street, "name": street}})
    path.write_text(json.dumps(doc))
    return path


# Categories with second-scale limits, so that SLA breaches happen within a test.
FAST_CATEGORIES = [
    {"code": "XT-FAST", "name": "Test: fast police matter", "domain": "public_security", "agencies": ["police"],
     "priority": 2, "sla": {"ack_s": 3, "arrive_s": 8, "resolve_s": 20}, "dedup": {"radius_m": 1, "window_s": 1}},
]


def session_catalogue(path: Path) -> Path:
    doc = yaml.safe_load(resources.files("processors.data").joinpath("catalogue.yaml").read_text())
    doc["categories"] += FAST_CATEGORIES
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def session_register(path: Path) -> Path:
    """The shipped unit register, admitting unlisted units at their word: the session's tests make up their units'
    ids; a test of the register adds its units at run time (a RegisterChange on unit.register)."""
    doc = yaml.safe_load(resources.files("processors.data").joinpath("units.yaml").read_text())
    doc["unlisted"] = "admit"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


_handed_out = itertools.count()


def fresh_district() -> IsolatedDistrict:
    """A district no other test (or hypothesis example) has used in this session."""
    n = next(_handed_out)
    assert n < ISOLATED_DISTRICTS, "raise ISOLATED_DISTRICTS: more tests need a district of their own"
    return _isolated(n)


@pytest.fixture
def isolated_district() -> IsolatedDistrict:
    return fresh_district()


def _tell(config, line: str) -> None:
    """A line on the terminal even while pytest captures output (-q shows no report header)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(line, flush=True)


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory, pytestconfig) -> Settings:
    workdir = tmp_path_factory.mktemp("infra")
    settings = Settings(metrics_port=0, app_id=f"patrol-test-{uuid.uuid4().hex[:8]}",
                        geography=session_geography(workdir / "geography.geojson"),
                        catalogue=session_catalogue(workdir / "catalogue.yaml"),
                        unit_register=session_register(workdir / "units.yaml"))
    _tell(pytestconfig, f"\nbroker: {broker_name(settings)} (PATROL_EMBEDDED_BROKER={settings.embedded_broker})")
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

    def kill(self) -> None:
        """A crash: no shutdown, no final commit."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

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
def second_site(infrastructure: Settings, tmp_path):
    """A broker and a database of their own (same settings otherwise), for tests that crash and restart workers
    without disturbing the session's shared worker."""
    broker = embedded_broker(infrastructure, tmp_path).start()
    name = f"patrol_site_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(infrastructure.database_url, f'CREATE DATABASE "{name}"'))
    site = client_settings(infrastructure, broker).with_overrides(
        database_url=_with_database(infrastructure.database_url, name),
        app_id=f"patrol-site-{uuid.uuid4().hex[:8]}", data_dir=tmp_path, metrics_port=0)
    try:
        asyncio.run(migrate(site.database_url))
        asyncio.run(ensure_topics(site))
        yield site
    finally:
        broker.stop()
        asyncio.run(_admin(infrastructure.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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


class TopicReader:
    """Reads a topic from its beginning without a consumer group (no group-formation wait), keeping records whose key is wanted."""

    def __init__(self, settings: Settings, topic: str, keys: set[str]):
        from aiokafka import AIOKafkaConsumer

        self.topic = topic
        self.keys = keys
        self.records: list[dict] = []
        self._consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                          fetch_max_wait_ms=settings.fetch_max_wait_ms,
                                          **settings.kafka_client_options())

    async def __aenter__(self) -> "TopicReader":
        await self._consumer.start()
        tps = await partitions_of(self._consumer, self.topic)
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._consumer.stop()

    async def poll(self) -> list[dict]:
        batch = await self._consumer.getmany(timeout_ms=100)
        for records in batch.values():
            for record in records:
                if record.key is not None and record.key.decode() in self.keys:
                    self.records.append(json.loads(record.value))
        return self.records

    async def wait_for(self, predicate, timeout: float = 60.0) -> list[dict]:
        async def probe():
            records = await self.poll()
            return records if predicate(records) else None

        return await eventually(probe, timeout, interval=0)


def message(topic: str, key: str, doc: dict) -> Outgoing:
    return Outgoing(topic, key.encode(), json.dumps(doc).encode())


class Field:
    """Builds what field units and hotlines publish, with unique ids per test run."""

    def __init__(self, district):
        self.district = district
        self.run = uuid.uuid4().hex[:6]
        self.n = 0

    def _event(self, unit_id: str, type_: str, **fields) -> Outgoing:
        self.n += 1
        return message(UNIT_EVENTS, unit_id, {
            "schema_version": 1, "event_id": f"{self.run}-{self.n}", "unit_id": unit_id,
            "at": "2026-11-25T08:00:00Z", "type": type_, **fields})

    def log_on(self, unit_id: str, agency: str, point, mode="car") -> Outgoing:
        return self._event(unit_id, "log_on", agency=agency, kind="officer", district=self.district.district,
                           home_street=self.district.streets[0], mode=mode, lat=point[0], lon=point[1])

    def status(self, unit_id: str, type_: str, order_id: str) -> Outgoing:
        return self._event(unit_id, type_, order_id=order_id)

    async def log_on_all(self, settings: Settings, db, units: list[tuple[str, str, tuple]]) -> None:
        """Log units on and wait until the district core knows them.

        Reports and unit events travel different topics, so without this a report could
        overtake a log-on. The barrier: a status for an order nobody holds is dead-lettered
        by the core only after the unit's log-on (same unit, same partition, in order)."""
        await send(settings, [self.log_on(uid, agency, point) for uid, agency, point in units])
        await send(settings, [self.status(uid, "ack", f"{self.run}-barrier") for uid, _, _ in units])

        async def known():
            n = await db.fetchval("SELECT count(*) FROM dead_letters WHERE reason = 'unit_not_assigned' "
                                  "AND key = ANY($1::text[])", [uid for uid, _, _ in units])
            return n == len(units)

        await eventually(known)

    def report(self, report_id: str, category: str, point) -> Outgoing:
        return message(INCIDENT_REPORTS, report_id, {
            "schema_version": 1, "report_id": report_id, "source": "hotline", "category": category,
            "lat": point[0], "lon": point[1], "reported_at": "2026-11-25T07:59:00Z"})
