"""`patrol bench` in quick mode: every benchmark runs and yields figures of the right shape.

Shared machines are noisy, so nothing here asserts a speed: only that each figure
exists, is sane (positive rates, ordered percentiles, shares between 0 and 1) and
lands in BENCHMARKS.md with the command that produced it.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys

import pytest
from rich.console import Console

from streams.bench.suite import QUICK, dispatch_quality, reference, run_bench, simulate_day
from streams.bench.brokers import broker_label, brokers_to_run
from streams.settings import Settings
from streams.simulation.simulator import plan_day

pytestmark = pytest.mark.integration

POLICIES = {"ours", "before", "closest-idle", "ceiling"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bench")
    out = workdir / "report" / "BENCHMARKS.md"
    console = Console(file=io.StringIO(), width=160)
    result = run_bench(Settings(data_dir=workdir / "run", metrics_port=0), console, quick=True, out=out,
                       command="patrol bench --quick --out report/BENCHMARKS.md")
    return result, out, console.file.getvalue()


def test_throughput_is_measured_next_to_the_raw_pipe(quick_run):
    result, _, _ = quick_run
    t = result.throughput
    assert t.reports == QUICK.throughput_reports
    assert t.rate > 0 and t.pipe_rate > 0 and t.ratio > 0
    assert t.pipe_records == QUICK.pipe_records
    assert 0 < t.orders <= t.reports


def test_latency_has_ordered_percentiles_at_every_offered_rate(quick_run):
    result, _, _ = quick_run
    assert [s.rate for s in result.latency] == list(QUICK.rates)
    for step in result.latency:
        assert step.skipped is None, step.skipped
        assert step.sent == int(step.rate * QUICK.rate_seconds)
        assert step.latencies_ms and all(v > 0 for v in step.latencies_ms)
        assert len(step.latencies_ms) + step.merged + step.unanswered == step.sent
        assert step.quantile(0.5) <= step.quantile(0.95) <= step.quantile(0.99) <= max(step.latencies_ms)
        assert step.pipe_ms and step.quantile(0.5, step.pipe_ms) <= step.quantile(0.99, step.pipe_ms)
        assert step.achieved_rate > 0
        # the worker's own view of the path: the wait before intake and the decision after it
        assert 0 < step.intake_ms["p50"] <= step.intake_ms["p99"]
        assert 0 < step.worker_ms["p50"] <= step.worker_ms["p99"]


def test_the_streams_phases_run_on_each_broker_kafka_first_side_by_side(quick_run):
    result, out, _ = quick_run
    expected = brokers_to_run(Settings())
    assert [r.broker for r in result.brokers] == expected
    assert result.brokers[0].throughput is result.throughput  # the detailed sections describe the first broker
    for run in result.brokers:
        assert run.throughput.reports == QUICK.throughput_reports
        assert [s.rate for s in run.latency] == list(QUICK.rates)
        # the worker's CPU per report against the raw pipe's for the same records
        assert run.throughput.worker_ms_per_report > 0 and run.throughput.floor_ms_per_report > 0
    # where the worker's CPU went in the burst, sampled by py-spy from outside
    profile = result.throughput.profile
    assert profile.error is None and profile.samples > 0 and profile.own and profile.areas
    text = out.read_text()
    assert "### Where the worker's CPU goes" in text
    section = text.split("## Brokers side by side", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| **")]
    assert [row.split("**")[1] for row in rows] == [broker_label(b) for b in expected]
    targets = {t for t, _, _ in result.targets()}
    assert any(t.startswith("one worker ≥ 2,500 reports/s into PostgreSQL") for t in targets)
    assert any(t.startswith("worker CPU per report ≤ 2 × the floor") for t in targets)


def test_decision_cost_has_a_row_per_size_and_a_growth_exponent(quick_run):
    result, _, _ = quick_run
    rows = result.cost.rows
    assert [r.units for r in rows] == list(QUICK.cost_units)
    for r in rows:
        assert len(r.apply_us) == r.samples == QUICK.cost_samples
        assert r.mean("apply_us") > 0 and r.mean("search_us") > 0 and r.mean("brute_us") > 0
    assert math.isfinite(result.cost.exponent()) and math.isfinite(result.cost.tail_exponent())


def test_quality_compares_three_policies_on_the_same_day(quick_run):
    result, _, _ = quick_run
    assert len(result.quality) == len(QUICK.day_intensities)
    for day in result.quality:
        assert {r.policy for r in day.rows} == POLICIES
        # the ceiling meets the same incidents as ours (the policies may merge a report or two differently)
        assert day.row("ceiling").incidents == day.row("ours").incidents > 0
        for r in day.rows:
            assert 0 <= r.late_sla <= r.judged <= r.incidents
            assert 0.0 <= r.late_share <= 1.0 and 0.0 <= r.late_report_share <= 1.0
            assert r.reached == len(r.arrival_s) and all(a >= 0 for a in r.arrival_s)
            if r.arrival_s:
                assert r.mean_arrival_s <= max(r.arrival_s) and r.p90_arrival_s <= max(r.arrival_s)
            assert r.workload_cv >= 0
    assert {t for t, _, _ in result.targets()} >= {
        "throughput ≥ 0.5 × raw pipe", "assignment time grows sub-linearly with units"}


def test_memory_per_unit_and_incident_is_positive(quick_run):
    result, _, _ = quick_run
    mem = result.memory
    assert mem.traced["per_unit"] > 0 and mem.traced["per_open_incident"] > 0
    assert mem.traced["per_closed_incident"] > 0
    assert set(mem.resident) == set(mem.traced)
    assert mem.worker["rss_units"] > 0 and mem.worker["units"] == QUICK.stream_units + 3


def test_a_takeover_after_a_sigkill_is_split_into_detection_and_recovery(quick_run):
    result, _, _ = quick_run
    (takeover,) = result.recovery.takeovers
    assert takeover.days == QUICK.recovery_days[0] and takeover.snapshot
    assert takeover.detection_s > 0 and takeover.recovery_s > 0
    # the survivor restored the owner's snapshot and replayed only the entries after it
    assert 0 <= takeover.replayed < takeover.entries and takeover.snapshot_bytes > 0
    assert 0 < takeover.kept_by_retention <= takeover.entries


def test_the_report_names_the_command_machine_and_plots(quick_run):
    result, out, printed = quick_run
    text = out.read_text()
    assert "`patrol bench --quick --out report/BENCHMARKS.md`" in text
    for heading in ("## Targets", "## 1. Throughput", "## 2. Latency", "## 3. Decision cost",
                    "## 4. Dispatch quality", "## 5. Memory", "## 6. Recovery"):
        assert heading in text
    assert result.machine.cpu in text and result.machine.python in text
    names = {p.name for p in result.plots}
    assert names == {"latency.png", "decision_cost.png", "quality.png", "throughput.png"}
    for plot in result.plots:
        assert plot.parent == out.parent / "benchmarks" and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"benchmarks/{plot.name}" in text or plot.name == "throughput.png"
    assert "Targets" in printed


def test_the_simulated_day_is_deterministic():
    catalogue, geography, roster = reference(Settings())
    plan = plan_day(catalogue, geography, roster, seed=4, hours=3.0)
    from processors.district import DispatchPolicy

    one, two = (simulate_day(catalogue, geography, plan, DispatchPolicy(), "ours", seed=4) for _ in range(2))
    assert {k: (c.dispatched_s, c.arrived_s) for k, c in one.cases.items()} == \
        {k: (c.dispatched_s, c.arrived_s) for k, c in two.cases.items()}
    assert one.handled == two.handled and one.cases
    day = dispatch_quality(catalogue, geography, roster, hours=3.0, intensity=1.0, seeds=(4,))
    assert day.row("ours").late_sla == dispatch_quality(catalogue, geography, roster, hours=3.0, intensity=1.0,
                                                        seeds=(4,)).row("ours").late_sla


def test_patrol_lists_the_bench_verb():
    result = subprocess.run([sys.executable, "-m", "streams.cli", "bench", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout and "--out" in result.stdout
