"""`patrol up` (what `make run` runs) on a machine with nothing configured: it reports and leaves nothing behind."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.streams.processes import descendants, wait_gone

pytestmark = pytest.mark.integration


def start_up(tmp_path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    env.update(PATROL_DATA_DIR=str(tmp_path), PATROL_METRICS_PORT="0", COLUMNS="120")
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "up", *(args or ("--sample",))], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_up_accounts_for_every_sample_report_and_stops_everything(tmp_path):
    up = start_up(tmp_path)
    family: set[int] = set()
    deadline = time.monotonic() + 180
    while up.poll() is None and time.monotonic() < deadline:
        family |= descendants(up.pid)
        time.sleep(0.2)
    output, _ = up.communicate(timeout=10)
    assert up.returncode == 0, output
    assert "incidents created" in output
    rows = {line.split("│")[1].strip(): line.split("│")[2:4] for line in output.splitlines() if line.count("│") == 4}
    assert [c.strip() for c in rows["incidents created"]] == ["10", "10"]
    assert [c.strip() for c in rows["dead letter: outside_area"]] == ["1", "1"]
    assert len(family) >= 3, "expected a broker, a database and a worker"
    assert wait_gone(family) == set()


def test_ctrl_c_stops_the_worker_broker_and_database(tmp_path):
    up = start_up(tmp_path)
    seen = ""
    for line in up.stdout:
        seen += line
        if "worker started" in line:
            break
    else:
        pytest.fail(f"patrol up never started its worker:\n{seen}")
    family = descendants(up.pid)
    assert len(family) >= 3
    os.killpg(up.pid, signal.SIGINT)  # what a terminal's Ctrl-C does to its foreground job
    up.communicate(timeout=60)
    assert up.returncode == 130
    assert wait_gone(family) == set()


def test_a_simulated_day_ends_with_a_report_and_plots_on_disk(tmp_path):
    up = start_up(tmp_path, "--hours", "1.5", "--speedup", "600", "--seed", "4")
    output, _ = up.communicate(timeout=240)
    assert up.returncode == 0, output[-3000:]
    report = (tmp_path / "report" / "report.md").read_text()
    created = int(next(line for line in report.splitlines() if line.startswith("| incidents created")).split("|")[2])
    assert created > 0
    assert "priority-1 reached within 15 min" in report and "| acknowledge |" in report
    for plot in ("response_times.png", "street_workload.png"):
        assert (tmp_path / "report" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "The day in numbers" in output and "Response times by domain" in output
    # the worker lives the day on its compressed clock: a crew that drives at its mode's speed is believed
    # (on the wall clock every arrival's position read as kilometres in a fraction of a second, and was refused)
    assert "implausible_location" not in output
