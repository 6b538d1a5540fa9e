"""`patrol simulate` against workers of its own: a compressed day on the workers' compressed clock is lived in
simulated seconds, so the crew's positions are believed; an epoch without a zone is refused before anything runs."""

import asyncio
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from streams.operations.embedded import embedded_infrastructure, free_port, stop_child
from streams.runtime.topics import ensure_topics
from streams.settings import Settings
from streams.simulation.up import start_worker
from streams.sink.migrate import migrate
from tests.streams.conftest import eventually

pytestmark = pytest.mark.integration


def _env(**patrol: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    return {**env, **patrol, "COLUMNS": "120"}


def test_an_epoch_without_a_zone_is_refused():
    done = subprocess.run([sys.executable, "-m", "streams.cli", "simulate", "--speedup", "360",
                           "--clock-epoch", "2026-12-02T08:00:00"], env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "no time zone" in done.stderr


async def _outcome(database_url: str) -> tuple[int, int, dict[str, int]]:
    connection = await asyncpg.connect(database_url)
    try:
        incidents = await connection.fetchval("SELECT count(*) FROM incidents WHERE report_id LIKE 'SIM4-%'")
        on_scene = await connection.fetchval("SELECT count(*) FROM incident_events WHERE type = 'on_scene'")
        letters = await connection.fetch("SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason")
        return incidents, on_scene, {r["reason"]: r["n"] for r in letters}
    finally:
        await connection.close()


def test_a_compressed_day_on_the_workers_clock_keeps_the_units_where_they_are(tmp_path):
    settings = Settings(kafka_bootstrap=None, database_url=None, data_dir=tmp_path, metrics_port=0)
    with embedded_infrastructure(settings, tmp_path) as live:
        asyncio.run(migrate(live.database_url))
        asyncio.run(ensure_topics(live))
        epoch = datetime.now(timezone.utc) + timedelta(seconds=30)
        worker = start_worker(live.with_overrides(metrics_port=free_port(), clock_rate=600.0, clock_epoch=epoch,
                                                  tick_interval_s=0.05), tmp_path / "worker.log")
        try:
            played = subprocess.run(
                [sys.executable, "-m", "streams.cli", "simulate", "--hours", "1.5", "--speedup", "600", "--seed", "4",
                 "--clock-epoch", epoch.isoformat()],
                env=_env(**{k: v for k, v in live.to_env().items() if k in (
                    "PATROL_KAFKA_BOOTSTRAP", "PATROL_DATABASE_URL", "PATROL_DATA_DIR")}),
                capture_output=True, text=True, timeout=300)
            assert played.returncode == 0, played.stdout[-2000:] + played.stderr[-2000:]
            assert "note:" not in played.stderr  # told how the workers run: nothing to warn about

            async def settled():
                incidents, on_scene, letters = await _outcome(live.database_url)
                return (incidents, on_scene, letters) if incidents and on_scene else None

            _, _, letters = asyncio.run(eventually(settled, timeout=60))
            # the units drove at their mode's speed in simulated seconds, and the workers believed them
            assert "implausible_location" not in letters, letters
        finally:
            stop_child(worker, signal.SIGTERM, timeout=30)
