"""The city simulator: a deterministic, realistic day, and field units that answer like people."""

import json
from collections import Counter

import pytest

from processors.catalogue import parse_catalogue
from processors.intake import Inbound, Limits, Rejected, admit_report
from processors.geography import distance_m
from streams.settings import Settings
from streams.reference import load_catalogue, load_geography
from streams.simulation.simulator import FieldCrew, plan_day, scaled_catalogue
from importlib import resources


@pytest.fixture(scope="module")
def world():
    settings = Settings()
    roster = [json.loads(line) for line in
              resources.files("processors.data").joinpath("roster.jsonl").read_text().splitlines()]
    return load_catalogue(settings), load_geography(settings), roster


def test_the_same_seed_plays_the_same_day(world):
    one, two, other = (plan_day(*world, seed=s) for s in (7, 7, 8))
    assert [m.value for m in one.messages] == [m.value for m in two.messages]
    assert [m.value for m in one.messages] != [m.value for m in other.messages]


def test_the_day_has_rush_hours_night_noise_and_uneven_streets(world):
    catalogue, geography, roster = world
    plan = plan_day(catalogue, geography, roster, seed=3)
    reports = [json.loads(m.value) for m in plan.messages if m.what == "report"]
    hour = lambda m: int(m.at_s // 3600)  # noqa: E731
    by_hour_domain = Counter((hour(m), catalogue.get(json.loads(m.value)["category"]).domain)
                             for m in plan.messages if m.what == "report")
    traffic = lambda h: by_hour_domain[(h, "traffic")]  # noqa: E731
    assert traffic(8) + traffic(18) > 3 * (traffic(3) + traffic(4))
    night = sum(1 for m in plan.messages if m.what == "report" and hour(m) in (22, 23, 0, 1)
                and json.loads(m.value)["category"] in ("PS-NOISE", "CM-NOISE"))
    morning = sum(1 for m in plan.messages if m.what == "report" and hour(m) in (9, 10, 11, 12)
                  and json.loads(m.value)["category"] in ("PS-NOISE", "CM-NOISE"))
    assert night > morning
    # streets are uneven on a typical day (the hotspots are the district's; one day alone may be evener)
    ratios = []
    for seed in range(1, 6):
        day = plan_day(catalogue, geography, roster, seed=seed)
        streets = Counter(geography.locate(r["lat"], r["lon"]).street
                          for r in (json.loads(m.value) for m in day.messages if m.what == "report"))
        ratios.append(max(streets.values()) / min(streets.values()))
    assert sorted(ratios)[2] > 3
    assert {r["source"] for r in reports} == {"sensor", "hotline", "patrol", "app"}


def test_repeat_calls_are_about_the_same_matter_and_bad_input_is_mixed_in(world):
    catalogue, geography, roster = world
    plan = plan_day(catalogue, geography, roster, seed=5)
    first = {m.key: json.loads(m.value) for m in plan.messages if m.what == "report"}
    for m in (m for m in plan.messages if m.what == "duplicate"):
        doc = json.loads(m.value)
        origin = first[doc["report_id"].rsplit("-D", 1)[0]]
        assert doc["category"] == origin["category"]
        assert distance_m(doc["lat"], doc["lon"], origin["lat"], origin["lon"]) <= catalogue.get(
            doc["category"]).dedup.radius_m
    assert plan.count("duplicate") > 50 and plan.count("resend") > 0
    from datetime import datetime, timezone

    late = datetime(2030, 1, 1, tzinfo=timezone.utc)
    verdicts = Counter(
        isinstance(admit_report(Inbound("incident.reports", 0, i, None, m.value, late), catalogue, geography,
                                Limits()), Rejected)
        for i, m in enumerate(plan.messages) if m.what == "malformed")
    assert verdicts[True] == plan.count("malformed") > 0


def test_units_log_on_and_off_by_shift(world):
    plan = plan_day(*world, seed=1, hours=24)
    on = Counter(m.key for m in plan.messages if m.what == "log_on")
    off = Counter(m.key for m in plan.messages if m.what == "log_off")
    assert len(on) == len(world[2])
    assert sum(off.values()) >= len(world[2]) // 2


def test_the_crew_answers_an_order_step_by_step_and_drops_cancelled_ones(world):
    catalogue, _, roster = world
    crew = FieldCrew(roster, catalogue, seed=1, speedup=60)
    unit = roster[0]["unit_id"]
    order = {"kind": "assign", "order_id": "O-1", "unit_id": unit, "category": "PS-FIGHT", "eta_s": 120,
             "lat": 30.65, "lon": 104.07}
    from datetime import datetime, timezone

    now = datetime(2026, 11, 25, tzinfo=timezone.utc)
    types = []
    for seed in range(40):
        crew = FieldCrew(roster, catalogue, seed=seed, speedup=60)
        crew.on_order(order, now=0.0)
        types.append([json.loads(v)["type"] for _, v in crew.due(10_000.0, now)])
    # the officer reports where they are on reaching the scene, as the offline crew does
    assert ["ack", "en_route", "location", "on_scene", "resolved"] in types
    assert all(t[:1] in (["ack"], ["decline"], ["available"], []) for t in types)
    crew = FieldCrew(roster, catalogue, seed=0, speedup=60)
    crew.on_order(order, now=0.0)
    crew.on_order({**order, "kind": "cancel"}, now=0.1)
    assert [json.loads(v)["type"] for _, v in crew.due(10_000.0, now)] in ([], ["available"])


def test_a_compressed_day_compresses_the_limits():
    text = resources.files("processors.data").joinpath("catalogue.yaml").read_text()
    fast = parse_catalogue(scaled_catalogue(text, 60))
    slow = parse_catalogue(text)
    assert fast.get("PS-FIGHT").sla.ack_s == slow.get("PS-FIGHT").sla.ack_s / 60
    assert fast.get("PS-FIGHT").dedup.window_s == slow.get("PS-FIGHT").dedup.window_s / 60
    assert fast.get("PS-FIGHT").dedup.radius_m == slow.get("PS-FIGHT").dedup.radius_m


def test_the_live_crew_is_the_offline_crew_on_a_compressed_clock(world):
    """One crew model: `patrol up` / `patrol simulate` answer an order exactly as the benchmark's offline day does,
    at the same simulated moments (wall seconds × the speed-up), travelling from the same place."""
    from datetime import datetime, timezone

    from streams.simulation.crew import Crew

    catalogue, _, roster = world
    unit = roster[0]
    order = {"kind": "assign", "order_id": "I-1-O1", "incident_id": "I-1", "unit_id": unit["unit_id"],
             "category": "PS-FIGHT", "eta_s": 120, "lat": unit["lat"] + 0.01, "lon": unit["lon"]}
    now = datetime(2026, 11, 25, tzinfo=timezone.utc)
    for seed in range(10):
        offline = Crew(catalogue, seed)
        offline.log_on(unit["unit_id"], unit["mode"], unit["lat"], unit["lon"])
        expected = [(round(at, 6), fields["type"]) for at, _, fields in offline.on_order(order, 0.0)]
        live = FieldCrew(roster, catalogue, seed=seed, speedup=60)
        live.on_order(order, now=0.0)
        due = sorted(live.pending)
        assert [(round(at * 60, 6), event["type"]) for at, _, _, event in due] == expected


def test_hotspots_are_the_districts_not_the_days(world):
    """Demand varies from day to day, its places do not: every seed's reports gather at the same hotspots."""
    import json as _json

    from processors.geography import distance_m
    from streams.simulation.simulator import hotspots

    catalogue, geography, roster = world
    spots = hotspots(geography)
    assert spots == hotspots(geography)
    for seed in (1, 2, 3):
        plan = plan_day(catalogue, geography, roster, seed=seed, hours=12)
        points = [_json.loads(m.value) for m in plan.messages if m.what == "report"]
        near = sum(1 for p in points if any(distance_m(p["lat"], p["lon"], lat, lon) <= 400 for lat, lon, _ in spots))
        assert near > 0.6 * len(points)


def test_time_on_scene_follows_its_categorys_distribution(world):
    """A parking ticket takes minutes, a fight half an hour, a cordon at a crowd over an hour: HANDLING_S, not a
    share of the resolve limit (which made a parking ticket an hour's work)."""
    import random
    import statistics

    from streams.simulation.crew import HANDLING_S, CrewHabits

    catalogue = world[0]
    habits = CrewHabits()
    for code in ("TR-PARKING", "PS-FIGHT", "EM-CROWD"):
        draws = [habits.handle_s(random.Random(k), catalogue.get(code)) for k in range(2000)]
        assert statistics.median(draws) == pytest.approx(HANDLING_S[code][0], rel=0.1), code
    assert set(HANDLING_S) >= {c.code for c in catalogue.categories if c.code in __import__(
        "streams.simulation.simulator", fromlist=["CATEGORY_MIX"]).CATEGORY_MIX}


def test_broker_transit_is_kept_out_of_a_compressed_day(world):
    """The crew times its answers from when the worker issued the order, not when the order reached it, and the
    acknowledgement limit allows for the answer's own hop back: what transit costs at 360× stays out."""
    catalogue, _, roster = world
    text = resources.files("processors.data").joinpath("catalogue.yaml").read_text()
    fast = parse_catalogue(scaled_catalogue(text, 360, ack_transit_s=0.1))
    slow = parse_catalogue(text)
    assert fast.get("PS-FIGHT").sla.ack_s == pytest.approx(slow.get("PS-FIGHT").sla.ack_s / 360 + 0.1, abs=1e-3)
    assert fast.get("PS-FIGHT").sla.arrive_s == pytest.approx(slow.get("PS-FIGHT").sla.arrive_s / 360, abs=1e-3)
    order = {"kind": "assign", "order_id": "I-1-O1", "incident_id": "I-1", "unit_id": roster[0]["unit_id"],
             "category": "PS-FIGHT", "lat": roster[0]["lat"], "lon": roster[0]["lon"]}
    prompt, late = (FieldCrew(roster, catalogue, seed=2, speedup=360) for _ in range(2))
    prompt.on_order(order, now=10.0)
    late.on_order(order, now=10.05, transit_s=0.05)
    assert [round(p[0], 9) for p in prompt.pending] == [round(p[0], 9) for p in late.pending]


def test_the_live_crew_starts_each_shift_at_its_post(world):
    catalogue, _, roster = world
    unit = roster[0]
    crew = FieldCrew(roster, catalogue, seed=1, speedup=60)
    crew.crew.units[unit["unit_id"]].lat += 0.05  # where its last task took it
    crew.logged_on(unit["unit_id"])
    assert (crew.crew.units[unit["unit_id"]].lat, crew.crew.units[unit["unit_id"]].lon) == (unit["lat"], unit["lon"])
