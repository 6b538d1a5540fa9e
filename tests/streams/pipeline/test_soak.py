"""Soak (`make soak`): twice the sample district's peak load for several minutes — lag stays bounded, memory flat."""

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import pytest

from streams.simulation.day_run import play_day
from streams.reference import load_catalogue, load_geography
from streams.simulation.simulator import FieldCrew, plan_day, scaled_catalogue
from tests.streams.conftest import WorkerProcess
from tests.streams.runtime.test_metrics import scrape, value

pytestmark = [pytest.mark.integration, pytest.mark.soak]

SPEEDUP = 360.0
HOURS = 18.0  # three minutes of wall time at 360×


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_twice_the_peak_for_minutes_keeps_lag_bounded_and_memory_flat(second_site, capsys):
    from streams.operations.embedded import free_port

    text = resources.files("processors.data").joinpath("catalogue.yaml").read_text()
    scaled = Path(second_site.data_dir) / "catalogue.scaled.yaml"
    scaled.write_text(scaled_catalogue(text, SPEEDUP))
    site = second_site.with_overrides(catalogue=scaled, tick_interval_s=0.1, metrics_port=free_port())
    catalogue, geography = load_catalogue(site), load_geography(site)
    roster = [json.loads(line) for line in
              resources.files("processors.data").joinpath("roster.jsonl").read_text().splitlines()]
    start = datetime.now(timezone.utc) - timedelta(hours=HOURS)
    plan = plan_day(catalogue, geography, roster, seed=11, hours=HOURS, start=start, intensity=2.0)
    crew = FieldCrew(roster, catalogue, seed=11, speedup=SPEEDUP)
    worker = WorkerProcess(site, Path(site.data_dir) / "worker.log").start()
    samples: list[tuple[float, float, float]] = []  # (seconds, rss MB, total lag)
    began = time.monotonic()

    def watch(progress) -> None:
        if samples and time.monotonic() - began - samples[-1][0] < 5:
            return
        try:
            families = scrape(site.metrics_port)
            lag = value(families.get("patrol_consumer_lag", []), "patrol_consumer_lag")
        except OSError:
            lag = float("nan")
        samples.append((time.monotonic() - began, rss_mb(worker.process.pid), lag))

    try:
        time.sleep(8)  # the worker's group forms
        asyncio.run(play_day(site, plan, crew, SPEEDUP, watch))
        worker.assert_alive()
    finally:
        worker.stop()
    steady = [s for s in samples if s[0] > 30]  # after warm-up
    rss = [s[1] for s in steady]
    lags = [s[2] for s in steady if s[2] == s[2]]
    reports = sum(1 for m in plan.messages if m.topic == "incident.reports")
    with capsys.disabled():
        print(f"\n[soak] {reports} reports in {samples[-1][0]:.0f} s (2× peak of the sample district, {SPEEDUP:g}×): "
              f"RSS {min(rss):.0f}–{max(rss):.0f} MB, consumer lag max {max(lags):.0f} messages")
    assert max(lags) < 500, "consumer lag grew without bound"
    assert max(rss) - min(rss) < 60, "worker memory kept growing"
