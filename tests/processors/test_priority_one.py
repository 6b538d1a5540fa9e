"""The rules that get an officer to a priority-1 incident in time, and those that keep the rest fair: pre-emption
off lesser on-scene work and of a much faster busy unit, the bumped task at the head of its queue, no street
balancing for priority 1, ageing of priority 5, joint incidents that close only when every place was filled,
and auxiliaries in support places."""

from datetime import timedelta

import pytest

from processors.candidates import DispatchPolicy, aged, reach_order
from tests.processors.scenario import Scenario
from tests.processors.test_district import CXL, HJT, LZL, SS, near


@pytest.fixture
def s(catalogue, geography):
    return Scenario(catalogue, geography)


def under(policy: DispatchPolicy, catalogue, geography) -> Scenario:
    """A scenario whose district core dispatches by `policy` (to show a rule's effect against the rule off)."""
    s = Scenario(catalogue, geography)
    s.core.policy = policy
    return s


def test_priority_one_pulls_a_unit_off_on_scene_work_of_priority_two_to_five(s):
    s.log_on("P1", "police", *near(LZL, east_m=100))
    s.report("R-NOISE", "PS-NOISE", *LZL)  # priority 3
    s.status("P1", "on_scene")
    s.report("R-FIGHT", "PS-FIGHT", *near(LZL, north_m=500))
    [cancel] = s.orders("cancel")
    assert (cancel.unit_id, cancel.incident_id) == ("P1", s.incident_of("R-NOISE"))
    assert s.orders()[-1].incident_id == s.incident_of("R-FIGHT")
    assert s.events("queued", s.incident_of("R-NOISE"))[-1].data["reason"] == "preempted"


def test_priority_one_takes_a_busy_unit_three_minutes_faster_than_the_best_free_one(s):
    s.log_on("P-NEAR", "police", *near(LZL, east_m=100))
    s.report("R-NOISE", "PS-NOISE", *LZL)
    s.status("P-NEAR", "ack")
    # the free car is 2.5 km further: ~6.5 minutes slower than the busy one
    s.log_on("P-FAR", "police", *near(LZL, north_m=3000), street="JJ-LZL")
    s.report("R-FIGHT", "PS-FIGHT", *near(LZL, north_m=200))
    sent = {o.incident_id: o.unit_id for o in s.orders()}
    assert sent[s.incident_of("R-FIGHT")] == "P-NEAR"
    assert [c.unit_id for c in s.orders("cancel")] == ["P-NEAR"]
    assert sent[s.incident_of("R-NOISE")] == "P-FAR"  # the noise complaint gets the free car instead


def test_a_busy_unit_less_than_three_minutes_faster_is_left_on_its_task(s):
    s.log_on("P-NEAR", "police", *near(LZL, east_m=100))
    s.report("R-NOISE", "PS-NOISE", *LZL)
    s.status("P-NEAR", "ack")
    s.log_on("P-FREE", "police", *near(LZL, north_m=900), street="JJ-LZL")  # ~2 minutes slower
    s.report("R-FIGHT", "PS-FIGHT", *near(LZL, north_m=200))
    assert s.orders()[-1].unit_id == "P-FREE" and s.orders("cancel") == []


def test_the_bumped_task_goes_to_the_head_of_its_priority(catalogue, geography):
    # a building-site check (priority 3, promised within 2 h) is interrupted for a loose manhole (priority 1);
    # two street-stall complaints (priority 3, promised sooner) are waiting meanwhile
    for policy, expected in ((DispatchPolicy(), "R-BUMPED"), (DispatchPolicy(bumped_first=False), "R-STALL")):
        s = under(policy, catalogue, geography)
        s.log_on("C1", "city_management", *near(SS, east_m=100))
        s.report("R-BUMPED", "CM-BUILD", *SS)
        s.status("C1", "on_scene")
        s.report("R-STALL", "CM-VENDING", *near(SS, east_m=50))
        s.report("R-BBQ", "CM-BBQ", *near(SS, east_m=80))
        s.report("R-MANHOLE", "CM-MANHOLE", *near(SS, north_m=300))
        assert s.orders()[-1].incident_id == s.incident_of("R-MANHOLE")
        s.status("C1", "resolved")
        assert s.orders()[-1].incident_id == s.incident_of(expected), policy


def test_priority_one_is_not_balanced_across_streets(catalogue, geography):
    border = (30.650, 104.072)
    for policy, expected in ((DispatchPolicy(), "P-BUSY"), (DispatchPolicy(balance_priority_1=True), "P-IDLE")):
        s = under(policy, catalogue, geography)
        s.log_on("P-BUSY", "police", *near(border, east_m=-150), street="JJ-CXL")
        s.log_on("P-IDLE", "police", *near(border, east_m=160), street="JJ-SYJ")
        for i in range(3):
            s.report(f"Q{i}", "CM-GARBAGE", *near(CXL, north_m=-300 * i))
        s.report("R1", "PS-FIGHT", *border)
        assert s.orders()[-1].unit_id == expected, policy


def test_priority_five_ages_into_priority_fours_broken_promises_only(s, catalogue):
    s.log_on("C1", "city_management", *near(SS, east_m=100))
    s.report("R-BIKES", "CM-BIKES", *near(SS, north_m=200))  # priority 5
    s.status("C1", "on_scene")
    s.report("R-FRONTAGE", "CM-FRONTAGE", *near(SS, north_m=100))  # priority 4, promised within the hour
    state = s.core.state
    bikes = state.incidents[s.incident_of("R-BIKES")]
    frontage = state.incidents[s.incident_of("R-FRONTAGE")]
    unit = state.units["C1"]
    policy, strict = DispatchPolicy(), DispatchPolicy(age_after_s=None)
    later = s.clock + timedelta(seconds=policy.age_after_s)
    assert not aged(policy, bikes, s.clock) and aged(policy, bikes, later) and not aged(strict, bikes, later)
    assert not aged(policy, frontage, later + timedelta(hours=5))  # priority 4 never ages past priority 4's own
    # a priority 4 whose promise can still be kept comes first, aged or not
    assert reach_order(catalogue, unit, frontage, s.clock, policy) < reach_order(catalogue, unit, bikes, later, policy)
    # once its promise is broken too, the older, aged priority 5 goes first; without ageing, never
    broken = later + timedelta(hours=3)
    assert reach_order(catalogue, unit, bikes, broken, policy) < reach_order(catalogue, unit, frontage, broken, policy)
    assert reach_order(catalogue, unit, frontage, broken, strict) < reach_order(catalogue, unit, bikes, broken, strict)


def test_a_joint_incident_does_not_close_while_an_agencys_place_is_unfilled(s, catalogue):
    agencies = catalogue.get("EM-CROWD").agencies
    for agency in agencies[:-1]:
        s.log_on(f"U-{agency}", agency, *near(HJT, east_m=200))
    s.report("R1", "EM-CROWD", *HJT)
    for agency in agencies[:-1]:
        s.status(f"U-{agency}", "resolved")
    # neither closed nor asking the complainant yet: the last agency's place is still queued
    assert s.events("closed") == [] and s.events("awaiting_verification") == []
    assert s.incident_of("R1") in s.core.state.queue
    s.log_on(f"U-{agencies[-1]}", agencies[-1], *near(HJT, east_m=300))
    assert s.orders()[-1].unit_id == f"U-{agencies[-1]}"
    s.status(f"U-{agencies[-1]}", "resolved")
    s.verify("R1", "satisfied")
    [closed] = s.events("closed")
    assert closed.data["units"] == sorted(f"U-{a}" for a in agencies)


def test_an_auxiliary_fills_a_support_place_beside_an_officer_where_the_catalogue_allows(s, catalogue):
    flood = catalogue.get("EM-FLOOD")
    assert flood.auxiliary_support_ok and not flood.auxiliary_ok
    lead, support = flood.agencies
    s.log_on("AUX-LEAD", lead, *near(LZL, east_m=50), kind="auxiliary")
    s.log_on("OFF-LEAD", lead, *near(LZL, east_m=300))
    s.log_on("AUX-SUP", support, *near(LZL, east_m=100), kind="auxiliary")
    s.report("R1", "EM-FLOOD", *LZL)
    assert {o.agency: o.unit_id for o in s.orders()} == {lead: "OFF-LEAD", support: "AUX-SUP"}
    # where the catalogue does not allow it, the support place waits for an officer
    package = catalogue.get("EM-PACKAGE")
    assert not package.auxiliary_support_ok
    s.log_on("AUX-TR", package.agencies[1], *near(SS, east_m=100), kind="auxiliary")
    s.log_on("OFF-PS", package.agencies[0], *near(SS, east_m=100))
    s.report("R2", "EM-PACKAGE", *SS)
    sent = [o.unit_id for o in s.orders() if o.incident_id == s.incident_of("R2")]
    assert "OFF-PS" in sent and "AUX-TR" not in sent


def test_a_priority_two_task_gives_up_a_unit_three_minutes_faster_than_the_free_one(catalogue, geography):
    # the busy car is minutes faster; it is on its way to a drunk (priority 2), who gets the free car instead
    for policy, expected in ((DispatchPolicy(), "P-NEAR"), (DispatchPolicy(preempt_margin_from=3), "P-FAR")):
        s = under(policy, catalogue, geography)
        s.log_on("P-NEAR", "police", *near(LZL, east_m=100))
        s.report("R-DRUNK", "PS-DRUNK", *LZL)
        s.status("P-NEAR", "ack")
        s.log_on("P-FAR", "police", *near(LZL, north_m=3000), street="JJ-LZL")
        s.report("R-FIGHT", "PS-FIGHT", *near(LZL, north_m=200))
        assert s.active_units("R-FIGHT") == {"police": expected}, policy
        if expected == "P-NEAR":
            assert s.active_units("R-DRUNK") == {"police": "P-FAR"}


def test_with_no_free_unit_priority_one_pulls_a_unit_off_on_scene_priority_two_work(catalogue, geography):
    for policy, pulled in ((DispatchPolicy(), True), (DispatchPolicy(preempt_on_scene_from=3), False)):
        s = under(policy, catalogue, geography)
        s.log_on("P1", "police", *near(LZL, east_m=100))
        s.report("R-DRUNK", "PS-DRUNK", *LZL)
        s.status("P1", "on_scene")
        s.report("R-FIGHT", "PS-FIGHT", *near(LZL, north_m=500))
        assert (s.active_units("R-FIGHT") == {"police": "P1"}) is pulled, policy


def test_priority_one_never_takes_a_unit_from_priority_one(s):
    s.log_on("P1", "police", *near(LZL, east_m=100))
    s.report("R-ASSAULT", "PS-ASSAULT", *LZL)
    s.status("P1", "on_scene")
    s.report("R-FIGHT", "PS-FIGHT", *near(LZL, north_m=500))
    assert s.orders("cancel") == [] and s.active_units("R-ASSAULT") == {"police": "P1"}


def test_a_unit_come_free_takes_over_a_fight_from_a_unit_still_far_away(catalogue, geography):
    for policy, expected in ((DispatchPolicy(), "P-NEAR"), (DispatchPolicy(take_over_margin_s=None), "P-FAR")):
        s = under(policy, catalogue, geography)
        s.log_on("P-NEAR", "police", *near(LZL, east_m=100))
        s.report("R-ASSAULT", "PS-ASSAULT", *LZL)  # priority 1 on scene: never pulled off
        s.status("P-NEAR", "on_scene")
        s.log_on("P-FAR", "police", *near(LZL, north_m=4000), street="JJ-LZL")
        s.report("R-FIGHT", "PS-FIGHT", *near(LZL, north_m=200))
        assert s.active_units("R-FIGHT") == {"police": "P-FAR"}
        s.status("P-FAR", "ack", order_id=s.order_of("P-FAR"))
        s.status("P-NEAR", "resolved")
        assert s.active_units("R-FIGHT") == {"police": expected}, policy
    assert s.core.state.units["P-NEAR"].free
