"""The SLA clock and the escalation ladder, driven by tick messages (no wall clock anywhere)."""

from datetime import timedelta

import pytest

from processors.catalogue import parse_catalogue
from processors.deadlines import DeadlineBook
from tests.processors.scenario import T0, Scenario

SPOT = (30.620, 104.070)


def east(m: float):
    return (SPOT[0], SPOT[1] + m / 95_800)


@pytest.fixture
def s(catalogue, geography):
    return Scenario(catalogue, geography)


def sla(catalogue, code):
    return catalogue.get(code).sla


def ladder(s):
    return [(e.level, e.reason) for e in s.escalations()]


def test_an_unacknowledged_order_is_cancelled_and_reassigned_at_its_deadline(s, catalogue):
    s.log_on("P1", "police", *east(100))
    s.log_on("P2", "police", *east(800))
    s.report("R1", "PS-FIGHT", *SPOT)
    [order] = s.orders()
    assert order.unit_id == "P1"
    s.wait((order.ack_by - s.clock).total_seconds() - 0.5)
    assert s.escalations() == [] and s.orders("cancel") == []
    s.wait(1)
    [escalation] = s.escalations()
    assert (escalation.level, escalation.reason, escalation.deadline) == (1, "ack_overdue", order.ack_by)
    assert (escalation.incident_id, escalation.street, escalation.category) == (
        order.incident_id, "JJ-LZL", "PS-FIGHT")
    assert [o.unit_id for o in s.orders("cancel")] == ["P1"]
    assert s.orders()[-1].unit_id == "P2"
    types = [e.type for e in s.events(incident_id=order.incident_id)]
    assert types[-2:] == ["escalated", "reassigned"]
    assert s.events("reassigned")[0].data["reason"] == "ack_overdue"


def test_a_unit_that_never_acknowledges_is_not_chosen_again_and_level_one_is_raised_once(s, catalogue):
    for i, d in enumerate((100, 800, 1500)):
        s.log_on(f"P{i + 1}", "police", *east(d))
    s.report("R1", "PS-FIGHT", *SPOT)
    ack_s = sla(catalogue, "PS-FIGHT").ack_s
    for _ in range(3):
        s.wait(ack_s + 1)
    assert [o.unit_id for o in s.orders()] == ["P1", "P2", "P3"]
    assert [o.unit_id for o in s.orders("cancel")] == ["P1", "P2", "P3"]
    assert ladder(s).count((1, "ack_overdue")) == 1
    # nobody left who has not failed it: the incident waits, and the ladder climbs on
    assert s.events("queued")
    s.wait(sla(catalogue, "PS-FIGHT").arrive_s)
    assert (2, "no_eligible_unit") in ladder(s) and (3, "no_eligible_unit") in ladder(s)
    # the silent units are not handed other work either, until they say they are available
    s.report("R2", "PS-THEFT", *east(1200))
    assert s.orders()[-1].unit_id == "P3"
    s.unit_event("P1", "available")
    assert s.orders()[-1].unit_id == "P1" and s.orders()[-1].category == "PS-THEFT"


def test_arrival_overdue_goes_to_the_supervisor_once(s, catalogue):
    s.log_on("P1", "police", *east(100))
    s.report("R1", "PS-FIGHT", *SPOT)
    dispatched_at = s.clock
    s.status("P1", "ack")
    s.status("P1", "en_route")
    arrive_s = sla(catalogue, "PS-FIGHT").arrive_s
    s.wait(arrive_s - 3)
    assert ladder(s) == []
    s.wait(5)
    s.wait(600)
    assert ladder(s) == [(2, "arrival_overdue")]
    assert s.escalations()[0].deadline == dispatched_at + timedelta(seconds=arrive_s)


def test_resolution_overdue_goes_to_the_command_centre(s, catalogue):
    s.log_on("P1", "police", *east(100))
    s.report("R1", "PS-FIGHT", *SPOT)
    created = s.clock
    s.status("P1", "on_scene")
    s.wait(sla(catalogue, "PS-FIGHT").resolve_s)
    assert ladder(s) == [(3, "resolve_overdue")]
    assert s.escalations()[0].deadline == created + timedelta(seconds=sla(catalogue, "PS-FIGHT").resolve_s)


def test_limits_met_in_time_raise_nothing(s, catalogue):
    s.log_on("P1", "police", *east(100))
    s.report("R1", "PS-FIGHT", *SPOT)
    for step in ("ack", "en_route", "on_scene", "resolved"):
        s.wait(20)
        s.status("P1", step)
    s.verify("R1", "satisfied")  # closed on verification (核查结案), not on `resolved`
    s.wait(sla(catalogue, "PS-FIGHT").resolve_s * 2)
    assert ladder(s) == [] and s.events("closed")
    # no limit left running: only the day after which the closed incident is forgotten
    assert len(s.core.state.deadlines) == 1 and ("forget", s.incident_of("R1")) in s.core.state.deadlines


def test_an_incident_nobody_can_take_climbs_to_the_supervisor_then_the_command_centre(s, catalogue):
    limits = sla(catalogue, "PS-FIGHT")
    s.report("R1", "PS-FIGHT", *SPOT)
    s.wait(limits.ack_s - 1)
    assert ladder(s) == []
    s.wait(2)
    assert ladder(s) == [(2, "no_eligible_unit")]
    s.wait(limits.arrive_s - limits.ack_s)
    assert ladder(s) == [(2, "no_eligible_unit"), (3, "no_eligible_unit")]


def test_a_unit_arriving_in_time_stops_the_unassigned_clock(s, catalogue):
    limits = sla(catalogue, "PS-FIGHT")
    s.report("R1", "PS-FIGHT", *SPOT)
    s.wait(limits.ack_s + 1)
    s.log_on("P1", "police", *east(100))
    s.status("P1", "ack")
    s.wait(limits.arrive_s)
    assert (3, "no_eligible_unit") not in ladder(s)
    assert (2, "no_eligible_unit") in ladder(s)


def test_in_a_joint_dispatch_only_the_silent_place_is_reassigned(s, catalogue):
    agencies = catalogue.get("EM-CROWD").agencies
    for agency in agencies:
        s.log_on(f"A-{agency}", agency, *east(100))
    s.log_on(f"B-{agencies[-1]}", agencies[-1], *east(900))
    s.report("R1", "EM-CROWD", *SPOT)
    for agency in agencies[:-1]:
        s.status(f"A-{agency}", "ack")
    s.wait(sla(catalogue, "EM-CROWD").ack_s + 1)
    assert [o.unit_id for o in s.orders("cancel")] == [f"A-{agencies[-1]}"]
    replacement = s.orders()[-1]
    assert replacement.unit_id == f"B-{agencies[-1]}"
    assert sorted(replacement.joint_with) == sorted(f"A-{a}" for a in agencies[:-1])


def test_a_preempted_task_starts_waiting_and_escalates_if_nobody_comes(s, catalogue):
    s.log_on("P1", "police", *east(100))
    s.report("R-NOISE", "PS-NOISE", *SPOT)
    s.status("P1", "ack")
    s.report("R-FIGHT", "PS-FIGHT", *east(300))
    noise = s.incident_of("R-NOISE")
    s.wait(sla(catalogue, "PS-NOISE").ack_s + 1)
    assert any(e.incident_id == noise and (e.level, e.reason) == (2, "no_eligible_unit") for e in s.escalations())


def test_replaying_a_log_with_ticks_reproduces_every_escalation_exactly_once(s, catalogue, geography):
    from processors.district import DistrictCore

    s.log_on("P1", "police", *east(100))
    s.report("R1", "PS-FIGHT", *SPOT)
    cut = len(s.log)  # a worker dies here, after the deadline was set and before it fell due
    for _ in range(30):
        s.wait(10)
    assert ladder(s).count((1, "ack_overdue")) == 1
    # the new worker rebuilds from the log up to its committed point, then processes the rest live
    restored = DistrictCore(s.district, catalogue)
    for item in s.log[:cut]:
        restored.apply(item)
    live = [m for item in s.log[cut:] for m in restored.apply(item)]
    assert [e.to_json_bytes() for e in live if e.__class__.__name__ == "Escalation"] == [
        e.to_json_bytes() for e in s.escalations()]


OFFICE = """
calendars:
  office: {utc_offset: "+08:00", days: [mon, tue, wed, thu, fri], hours: [["09:00", "12:00"], ["13:30", "17:30"]]}
categories:
  - {code: CM-BUILD, name: Illegal construction, domain: city_management, agencies: [city_management],
     priority: 3, calendar: office, sla: {ack_s: 3600, arrive_s: 14400, resolve_s: 86400},
     dedup: {radius_m: 50, window_s: 60}}
"""


def test_a_working_hours_category_counts_only_working_time(geography):
    catalogue = parse_catalogue(OFFICE)
    s = Scenario(catalogue, geography)
    s.clock = T0.replace(day=27, hour=9)  # Friday 2026-11-27 17:00 in Chengdu
    s.log_on("C1", "city_management", *east(100))
    s.report("R1", "CM-BUILD", *SPOT)
    [order] = s.orders()
    # dispatched at 17:00:02: the hour runs to 17:30, then on Monday from 09:00
    assert order.ack_by.astimezone(catalogue.calendars["office"].tz).isoformat() == "2026-11-30T09:30:02+08:00"
    s.wait(2 * 86400)  # the weekend passes: nothing is overdue
    assert ladder(s) == []
    s.wait(17 * 3600)  # Monday 10:00: the working hour is over, the four working hours to arrive are not
    assert ladder(s) == [(1, "ack_overdue")]


def test_the_deadline_book_returns_due_items_in_order_and_skips_moved_ones():
    book = DeadlineBook()
    book.set(("a",), T0 + timedelta(seconds=30))
    book.set(("b",), T0 + timedelta(seconds=10))
    book.set(("c",), T0 + timedelta(seconds=20))
    book.set(("a",), T0 + timedelta(seconds=5))  # moved earlier
    book.drop(("c",))
    assert book.pop_due(T0 + timedelta(seconds=25)) == [(T0 + timedelta(seconds=5), ("a",)),
                                                        (T0 + timedelta(seconds=10), ("b",))]
    assert book.pop_due(T0 + timedelta(hours=1)) == [] and len(book) == 0


def test_a_category_naming_an_unknown_calendar_is_refused():
    from processors.catalogue import CatalogueError

    with pytest.raises(CatalogueError, match="names calendar 'office'"):
        parse_catalogue(OFFICE.split("categories:")[0].replace("office:", "shifts:") + "categories:"
                        + OFFICE.split("categories:")[1])


def test_stage_events_say_how_long_it_took_and_whether_the_limit_was_met(s, catalogue):
    limits = sla(catalogue, "PS-FIGHT")
    s.log_on("P1", "police", *east(100))
    s.report("R1", "PS-FIGHT", *SPOT)
    s.wait(29)
    s.status("P1", "ack")
    s.wait(limits.arrive_s)
    s.status("P1", "on_scene")
    s.status("P1", "resolved")
    s.wait(600)
    s.verify("R1", "satisfied")  # closed on verification, not on `resolved`: resolve_on_time is the resolution's
    [ack] = s.events("acknowledged")
    assert ack.data["since_order_s"] == 30 and ack.data["ack_on_time"] is True
    assert (ack.data["category"], ack.data["domain"]) == ("PS-FIGHT", "public_security")
    [arrival] = s.events("on_scene")
    assert arrival.data["since_dispatch_s"] == 30 + limits.arrive_s + 1 and arrival.data["arrive_on_time"] is False
    [closed] = s.events("closed")
    assert closed.data["resolve_on_time"] is True and closed.data["open_s"] == closed.data["since_created_s"]
    assert closed.data["verification"] == "verified" and closed.data["channel"] == "callback"
