"""`patrol roster plan`: shifts that follow the hours the work comes in, for the same head count, and the sample
roster is the planner's own proposal."""

import json
import subprocess
import sys
from collections import Counter
from importlib import resources

from streams.simulation.roster_plan import FLOOR_SHARE, coverage, plan_shifts
from streams.simulation.simulator import SHIFT_HOURS


def unit(unit_id: str, agency: str = "traffic", mode: str = "car", kind: str = "officer") -> dict:
    return {"unit_id": unit_id, "agency": agency, "mode": mode, "kind": kind}


def test_the_busy_hours_get_the_officers_and_the_quiet_hours_keep_a_floor():
    roster = [unit(f"T{i:02d}") for i in range(12)]
    # all the work in the morning rush and the evening rush
    work = {"traffic": [10.0 if h in (7, 8, 17, 18) else 0.0 for h in range(24)]}
    cover = coverage(roster, plan_shifts(roster, work))["traffic"]
    assert min(cover[h] for h in (7, 8, 17, 18)) > max(cover[h] for h in (1, 2, 3, 4))
    # the quiet hours still have officers: at least the floor's share of the group's average cover
    average = len(roster) * SHIFT_HOURS / 24
    assert min(cover) >= int(FLOOR_SHARE * average)


def test_the_head_count_is_kept_and_each_group_is_planned_on_its_agencys_work():
    roster = [unit(f"T{i}") for i in range(6)] + [unit(f"P{i}", agency="police") for i in range(6)]
    work = {"traffic": [5.0 if 6 <= h < 12 else 0.0 for h in range(24)],
            "police": [5.0 if h >= 18 or h < 2 else 0.0 for h in range(24)]}
    starts = plan_shifts(roster, work)
    assert set(starts) == {u["unit_id"] for u in roster}
    cover = coverage(roster, starts)
    assert sum(cover["traffic"]) == sum(cover["police"]) == 6 * SHIFT_HOURS
    assert cover["traffic"][9] > cover["traffic"][21] and cover["police"][21] > cover["police"][9]


def test_the_sample_roster_is_what_patrol_roster_plan_proposes(tmp_path):
    written = tmp_path / "roster.jsonl"
    done = subprocess.run([sys.executable, "-m", "streams.cli", "roster", "plan", "--write", str(written)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    proposed = {u["unit_id"]: u["shift_start_h"] for u in map(json.loads, written.read_text().splitlines())}
    shipped = [json.loads(line) for line in
               resources.files("processors.data").joinpath("roster.jsonl").read_text().splitlines()]
    assert {u["unit_id"]: u["shift_start_h"] for u in shipped} == proposed
    # and it is a real plan, not every unit on one shift
    assert len(Counter(proposed.values())) > 3
