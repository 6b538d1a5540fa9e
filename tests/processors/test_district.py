"""The district core's rules: incidents, duplicates, who is sent, joint dispatch, pre-emption, queue and field lifecycle."""

from datetime import timedelta

import pytest

from processors.geography import distance_m
from tests.processors.scenario import Scenario

# points inside streets of the sample district
CXL = (30.654, 104.066)  # Chunxilu, old town
SYJ = (30.654, 104.0765)  # Shuyuanjie, next door
HJT = (30.654, 104.0865)
LZL = (30.620, 104.070)  # Longzhoulu, middle band
SS = (30.580, 104.120)  # Sansheng, the large southern street


def near(point, north_m=0.0, east_m=0.0):
    lat, lon = point
    return (lat + north_m / 111_000, lon + east_m / 95_800)


@pytest.fixture
def s(catalogue, geography):
    return Scenario(catalogue, geography)


def test_a_report_creates_an_incident_and_sends_the_nearest_eligible_unit(s, catalogue):
    s.log_on("P-NEAR", "police", *near(CXL, east_m=300))
    s.log_on("P-FAR", "police", *near(CXL, east_m=2500))
    s.log_on("T-CLOSE", "traffic", *near(CXL, east_m=50))  # closer, but not police
    s.report("R1", "PS-FIGHT", *CXL)
    created, dispatched = s.events()
    assert (created.type, dispatched.type) == ("created", "dispatched")
    [order] = s.orders()
    assert (order.unit_id, order.kind, order.role, order.agency) == ("P-NEAR", "assign", "lead", "police")
    assert order.incident_id == created.incident_id and order.category == "PS-FIGHT" and order.priority == 1
    assert order.ack_by == order.issued_at + timedelta(seconds=catalogue.get("PS-FIGHT").sla.ack_s)
    assert order.eta_s == pytest.approx(300 * 1.3 / 8.3, rel=0.02)
    # the decision explains itself: chosen unit and the candidates considered, with ETAs
    assert dispatched.data["units"][0]["unit_id"] == "P-NEAR"
    considered = {c["unit_id"]: c["eta_s"] for c in dispatched.data["candidates"]}
    assert set(considered) == {"P-NEAR", "P-FAR"} and considered["P-NEAR"] < considered["P-FAR"]


def test_time_of_arrival_not_distance_decides(s):
    s.log_on("P-FOOT", "police", *near(LZL, east_m=1200), mode="foot")
    s.log_on("P-CAR", "police", *near(LZL, north_m=3000), mode="car")
    s.report("R1", "PS-FIGHT", *LZL)
    assert s.orders()[0].unit_id == "P-CAR"


def test_delegated_authority_lets_another_agency_take_the_category(s):
    s.log_on("CM-1", "city_management", *near(LZL, east_m=100))
    s.report("R1", "TR-PARKING", *LZL)
    assert s.orders() == [] and s.events("queued")
    s.log_on("CM-DEL", "city_management", *near(LZL, east_m=400), delegations=("TR-PARKING",))
    [order] = s.orders()
    assert (order.unit_id, order.agency) == ("CM-DEL", "traffic")


def test_auxiliaries_act_alone_only_where_the_catalogue_allows(s, catalogue):
    assert not catalogue.get("PS-FIGHT").auxiliary_ok and catalogue.get("CM-GARBAGE").auxiliary_ok
    s.log_on("PA-1", "police", *near(SS, east_m=100), kind="auxiliary")
    s.log_on("CMA-1", "city_management", *near(SS, east_m=100), kind="auxiliary")
    s.report("R1", "PS-FIGHT", *SS)
    s.report("R2", "CM-GARBAGE", *near(SS, north_m=2000))
    assert [(o.unit_id, o.category) for o in s.orders()] == [("CMA-1", "CM-GARBAGE")]
    assert [e.incident_id for e in s.events("queued")] == [s.incident_of("R1")]


def test_a_joint_category_gets_one_unit_of_each_agency_linked_together(s, catalogue):
    agencies = catalogue.get("EM-CROWD").agencies
    assert len(agencies) >= 2
    for i, agency in enumerate(agencies):
        s.log_on(f"U-{agency}", agency, *near(HJT, east_m=100 * (i + 1)))
        s.log_on(f"U-{agency}-2", agency, *near(HJT, east_m=900 + 100 * i))
    s.report("R1", "EM-CROWD", *HJT)
    orders = s.orders()
    assert sorted(o.agency for o in orders) == sorted(agencies)
    assert {o.unit_id for o in orders} == {f"U-{a}" for a in agencies}
    assert [o.role for o in orders if o.agency == agencies[0]] == ["lead"]
    for o in orders:
        assert sorted(o.joint_with) == sorted(x.unit_id for x in orders if x is not o)


def test_a_joint_place_nobody_can_fill_is_queued_and_filled_when_a_unit_logs_on(s, catalogue):
    agencies = catalogue.get("EM-CROWD").agencies
    for agency in agencies[:-1]:
        s.log_on(f"U-{agency}", agency, *near(HJT, east_m=100))
    s.report("R1", "EM-CROWD", *HJT)
    [queued] = s.events("queued")
    assert queued.data["missing_agencies"] == [agencies[-1]]
    s.log_on("LATE", agencies[-1], *near(HJT, east_m=600))
    late = s.orders()[-1]
    assert (late.unit_id, late.agency) == ("LATE", agencies[-1])
    assert sorted(late.joint_with) == sorted(f"U-{a}" for a in agencies[:-1])
    assert s.events("dispatched")[-1].data["reason"] == "unit_available"


def test_a_second_report_of_the_same_matter_is_merged_not_dispatched_again(s, catalogue):
    dedup = catalogue.get("PS-FIGHT").dedup
    s.log_on("P1", "police", *near(CXL, east_m=100))
    s.log_on("P2", "police", *near(CXL, east_m=200))
    s.report("R1", "PS-FIGHT", *CXL)
    s.report("R2", "PS-FIGHT", *near(CXL, north_m=dedup.radius_m * 0.5), source="sensor")
    [merged] = s.events("report_merged")
    assert merged.incident_id == s.incident_of("R1") == s.incident_of("R2")
    assert merged.data["report_id"] == "R2" and merged.data["distance_m"] < dedup.radius_m
    assert len(s.orders()) == 1


def test_reports_beyond_the_radius_the_window_or_of_another_category_are_new_incidents(s, catalogue):
    dedup = catalogue.get("PS-FIGHT").dedup
    s.report("R1", "PS-FIGHT", *CXL)
    s.report("R2", "PS-FIGHT", *near(CXL, north_m=dedup.radius_m * 1.5))
    s.report("R3", "PS-NOISE", *CXL)
    s.tick(dedup.window_s + 1)
    s.report("R4", "PS-FIGHT", *CXL)
    assert len({s.incident_of(r) for r in ("R1", "R2", "R3", "R4")}) == 4
    assert s.events("report_merged") == []


def test_queued_incidents_are_served_most_urgent_first(s):
    s.report("R-LOW", "PS-NOISE", *SS)
    s.report("R-URGENT", "PS-FIGHT", *near(SS, north_m=3000))
    s.log_on("P1", "police", *near(SS, east_m=100))
    [order] = s.orders()
    assert order.incident_id == s.incident_of("R-URGENT")
    s.status("P1", "ack")
    s.status("P1", "resolved")
    assert s.orders()[-1].incident_id == s.incident_of("R-LOW")


def test_priority_one_preempts_a_lower_priority_task_short_of_the_scene(s):
    s.log_on("P1", "police", *near(LZL, east_m=100))
    s.report("R-NOISE", "PS-NOISE", *LZL)
    s.status("P1", "ack")
    s.report("R-FIGHT", "PS-FIGHT", *near(LZL, north_m=500))
    [cancel] = s.orders("cancel")
    assert (cancel.unit_id, cancel.incident_id) == ("P1", s.incident_of("R-NOISE"))
    assert s.orders()[-1].incident_id == s.incident_of("R-FIGHT")
    [bumped] = s.events("queued", s.incident_of("R-NOISE"))
    assert bumped.data["reason"] == "preempted" and bumped.data["by_incident"] == s.incident_of("R-FIGHT")
    # once the fight is resolved the noise complaint gets its unit back
    s.status("P1", "resolved")
    assert s.orders()[-1].incident_id == s.incident_of("R-NOISE")


def test_field_events_drive_the_incident_to_closed_and_free_the_unit(s):
    s.log_on("P1", "police", *near(CXL, east_m=100))
    s.report("R1", "PS-FIGHT", *CXL)
    for step in ("ack", "en_route", "on_scene"):
        s.status("P1", step)
    s.status("P1", "resolved", outcome="dispersed")
    # resolved is not closed: the incident awaits the complainant's verification first (核查结案)
    s.verify("R1", "satisfied")
    incident = s.incident_of("R1")
    assert [e.type for e in s.events(incident_id=incident)] == [
        "created", "dispatched", "acknowledged", "en_route", "on_scene", "resolved", "awaiting_verification",
        "closed"]
    assert [e.seq for e in s.events(incident_id=incident)] == list(range(1, 9))
    assert s.events("resolved")[0].data["outcome"] == "dispersed"
    assert s.core.state.units["P1"].free
    s.report("R2", "PS-THEFT", *SYJ)
    assert s.orders()[-1].unit_id == "P1"


def test_a_joint_incident_closes_only_when_every_unit_has_resolved(s, catalogue):
    agencies = catalogue.get("EM-CROWD").agencies
    for agency in agencies:
        s.log_on(f"U-{agency}", agency, *near(HJT, east_m=200))
    s.report("R1", "EM-CROWD", *HJT)
    for agency in agencies[:-1]:
        s.status(f"U-{agency}", "resolved")
    assert s.events("awaiting_verification") == []
    s.status(f"U-{agencies[-1]}", "resolved")
    s.verify("R1", "satisfied")
    [closed] = s.events("closed")
    assert closed.data["units"] == sorted(f"U-{a}" for a in agencies)


def test_events_for_orders_a_unit_does_not_hold_are_dead_lettered_and_change_nothing(s):
    s.log_on("P1", "police", *near(CXL, east_m=100))
    s.log_on("P2", "police", *near(CXL, east_m=5000))
    s.report("R1", "PS-FIGHT", *CXL)
    order = s.order_of("P1")
    before = len(s.events())
    s.status("P2", "ack", order_id=order)
    s.status("P1", "ack", order_id="INC-NOPE-O1")
    s.unit_event("GHOST", "location", lat=30.6, lon=104.1)
    assert [d.reason for d in s.dead_letters()] == ["unit_not_assigned", "unit_not_assigned", "unknown_unit"]
    assert s.dead_letters()[0].topic == "unit.events"
    assert len(s.events()) == before
    assert s.core.state.units["P2"].free and s.core.state.units["P1"].stage == "assigned"


def test_a_decline_reassigns_to_the_next_best_unit_and_never_back(s):
    s.log_on("P1", "police", *near(CXL, east_m=100))
    s.log_on("P2", "police", *near(CXL, east_m=900))
    s.report("R1", "PS-FIGHT", *CXL)
    s.status("P1", "decline")
    [cancel] = s.orders("cancel")
    assert cancel.unit_id == "P1"
    [reassigned] = s.events("reassigned")
    assert reassigned.data["replaces"] == "P1" and reassigned.data["reason"] == "declined"
    assert s.orders()[-1].unit_id == "P2"
    s.status("P2", "decline")
    # nobody left who has not declined: it waits, and P1 is not asked again
    assert s.events("queued") and s.orders()[-1].unit_id == "P2"
    # the decliner is free for other work
    s.report("R2", "PS-THEFT", *near(HJT, north_m=-2000))
    assert s.orders()[-1].unit_id in ("P1", "P2")


def test_logging_off_during_a_task_hands_it_on(s):
    s.log_on("P1", "police", *near(CXL, east_m=100))
    s.log_on("P2", "police", *near(CXL, east_m=900))
    s.report("R1", "PS-FIGHT", *CXL)
    s.status("P1", "ack")
    s.unit_event("P1", "log_off")
    assert [o.unit_id for o in s.orders("cancel")] == ["P1"]
    assert s.orders()[-1].unit_id == "P2"
    assert s.events("reassigned")[0].data["reason"] == "log_off"
    assert "P1" not in s.core.state.grid


def test_unavailable_units_are_not_sent_and_available_ones_take_the_queue(s):
    s.log_on("P1", "police", *near(CXL, east_m=100))
    s.unit_event("P1", "unavailable")
    s.report("R1", "PS-FIGHT", *CXL)
    assert s.orders() == []
    s.unit_event("P1", "available")
    assert s.orders()[0].unit_id == "P1"


def test_location_updates_move_the_unit(s):
    s.log_on("P1", "police", *near(SS, east_m=100))
    s.log_on("P2", "police", *near(CXL, east_m=100))
    s.tick(600)  # the drive over takes time: an instant jump would be refused as implausible
    s.unit_event("P2", "location", lat=SS[0], lon=SS[1] + 0.0001)
    s.report("R1", "PS-FIGHT", *SS)
    assert s.orders()[0].unit_id == "P2"


def test_near_ties_go_to_the_unit_whose_home_street_can_spare_it(s):
    # two equally close police units; the one from the busy street stays home
    border = (30.650, 104.072)  # on the line between Chunxilu and Shuyuanjie
    s.log_on("P-BUSY", "police", *near(border, east_m=-150), street="JJ-CXL")
    s.log_on("P-IDLE", "police", *near(border, east_m=160), street="JJ-SYJ")
    for i in range(3):  # Chunxilu has open incidents waiting for someone
        s.report(f"Q{i}", "CM-GARBAGE", *near(CXL, north_m=-300 * i))
    s.report("R1", "PS-DRUNK", *border)  # priority 2: priority 1 is never balanced (test_priority_one.py)
    assert s.orders()[-1].unit_id == "P-IDLE"
    candidates = {c["unit_id"]: c for c in s.events("dispatched")[-1].data["candidates"]}
    assert candidates["P-BUSY"]["street_pressure"] > candidates["P-IDLE"]["street_pressure"]
    assert candidates["P-BUSY"]["eta_s"] <= candidates["P-IDLE"]["eta_s"]


def test_status_news_out_of_order_moves_forward_only(s):
    s.log_on("P1", "police", *near(CXL, east_m=100))
    s.report("R1", "PS-FIGHT", *CXL)
    s.status("P1", "on_scene")  # the ack was lost on the way; arrival implies it
    s.status("P1", "ack")  # late news: changes nothing
    s.status("P1", "on_scene")  # a resend: changes nothing
    assert [e.type for e in s.events()][2:] == ["on_scene"]


def test_a_resent_report_is_not_a_second_incident(s):
    s.report("R1", "PS-FIGHT", *CXL)
    n = len(s.out)
    assert s.report("R1", "PS-FIGHT", *CXL) == []
    assert len(s.out) == n and len(s.core.state.incidents) == 1


def test_incident_ids_depend_on_the_report_not_on_arrival_order(catalogue, geography):
    one, two = Scenario(catalogue, geography), Scenario(catalogue, geography)
    one.report("R-A", "PS-FIGHT", *CXL)
    one.report("R-B", "PS-FIGHT", *SS)
    two.report("R-B", "PS-FIGHT", *SS)
    two.report("R-A", "PS-FIGHT", *CXL)
    assert one.incident_of("R-A") == two.incident_of("R-A") != one.incident_of("R-B")


def test_the_created_event_carries_what_the_audit_trail_needs(s):
    s.report("R1", "PS-FIGHT", *CXL)
    data = s.events("created")[0].data
    assert {"report_id", "category", "priority", "district", "street", "lat", "lon"} <= set(data)
    assert (data["district"], data["street"]) == ("JINJIANG", "JJ-CXL")
    assert distance_m(data["lat"], data["lon"], *CXL) < 1


def test_a_reporter_in_a_work_log_entry_written_before_they_left_it_reaches_no_event(s):
    from processors.messages import IncidentReport, Reporter, WorkItem

    for n, report_id in enumerate(["R1", "R2"]):  # the second is another call about the same fight: merged
        s.tick()
        report = IncidentReport(schema_version=1, report_id=report_id, source="hotline", category="PS-FIGHT",
                                lat=CXL[0], lon=CXL[1] + n * 0.0001, reported_at=s.clock,
                                reporter=Reporter(name="Wang Fang", phone="13812345678"))
        s.feed(WorkItem(kind="report", district="JINJIANG", street="JJ-CXL", at=s.clock, report=report))
    assert [e.type for e in s.events()] == ["created", "queued", "report_merged"]
    published = "".join(m.model_dump_json() for m in s.out)
    assert "Wang" not in published and "5678" not in published and "reporter" not in published


def test_the_closest_idle_policy_ignores_street_workload_and_never_preempts(catalogue, geography):
    from processors.district import CLOSEST_IDLE

    s = Scenario(catalogue, geography)
    s.core.policy = CLOSEST_IDLE
    border = (30.650, 104.072)
    s.log_on("P-BUSY", "police", *near(border, east_m=-150), street="JJ-CXL")
    s.log_on("P-IDLE", "police", *near(border, east_m=160), street="JJ-SYJ")
    for i in range(3):
        s.report(f"Q{i}", "CM-GARBAGE", *near(CXL, north_m=-300 * i))
    s.report("R1", "PS-FIGHT", *border)
    assert s.orders()[-1].unit_id == "P-BUSY"
    s.report("R-NOISE", "PS-NOISE", *near(border, north_m=-100))
    s.report("R-FIGHT", "PS-FIGHT", *near(LZL, north_m=500))
    assert s.orders("cancel") == [] and s.events("queued", s.incident_of("R-FIGHT"))


def test_a_freed_unit_takes_the_queued_incident_it_can_still_reach_in_time(s):
    # two noise complaints wait; the older one is an hour's walk from where the foot officer comes on duty
    s.report("R-FAR", "PS-NOISE", *near(SS, north_m=4000))
    s.report("R-NEAR", "PS-NOISE", *near(SS, east_m=200))
    s.log_on("P-FOOT", "police", *SS, mode="foot")
    assert s.orders()[-1].incident_id == s.incident_of("R-NEAR")
    # the far one is not forgotten: it is next
    s.status("P-FOOT", "on_scene")
    s.status("P-FOOT", "resolved")
    assert s.orders()[-1].incident_id == s.incident_of("R-FAR")


def test_among_queued_incidents_in_reach_the_promise_that_runs_out_first_is_kept_first(s):
    s.report("R-BUILD", "CM-BUILD", *near(SS, east_m=300))  # priority 3, on scene within 2 h
    s.tick(60)
    s.report("R-VENDING", "CM-VENDING", *near(SS, east_m=-300))  # priority 3, on scene within 45 min
    s.log_on("C1", "city_management", *SS, mode="bike")
    assert s.orders()[-1].incident_id == s.incident_of("R-VENDING")


def test_the_closest_idle_policy_serves_the_queue_oldest_first(catalogue, geography):
    from processors.district import CLOSEST_IDLE

    s = Scenario(catalogue, geography)
    s.core.policy = CLOSEST_IDLE
    s.report("R-FAR", "PS-NOISE", *near(SS, north_m=4000))
    s.report("R-NEAR", "PS-NOISE", *near(SS, east_m=200))
    s.log_on("P-FOOT", "police", *SS, mode="foot")
    assert s.orders()[-1].incident_id == s.incident_of("R-FAR")


@pytest.mark.parametrize(("category", "sent"), [("PS-FIGHT", "P-IDLE"), ("PS-ASSAULT", "P-BUSY")])
def test_street_balancing_never_makes_an_arrival_late(s, category, sent):
    # P-BUSY is ~240 s away, P-IDLE ~290 s: a near-tie. Both reach a fight (8 min) in time, so the street
    # that can spare its unit gives it; an assault (5 min) is reached in time only by P-BUSY, which goes.
    # (With priority 1 balanced, as it was: it no longer is by default.)
    from processors.district import DispatchPolicy

    s.core.policy = DispatchPolicy(balance_priority_1=True)
    border = (30.650, 104.072)
    s.log_on("P-BUSY", "police", *near(border, east_m=-1530), street="JJ-CXL")
    s.log_on("P-IDLE", "police", *near(border, east_m=1850), street="JJ-SYJ")
    for i in range(3):
        s.report(f"Q{i}", "CM-GARBAGE", *near(CXL, north_m=-300 * i))
    s.report("R1", category, *border)
    assert s.orders()[-1].unit_id == sent


def test_a_closed_incident_is_forgotten_after_a_day_and_its_report_never_opens_it_again(s):
    from processors.district import CLOSED_KEPT

    s.log_on("P1", "police", *near(CXL, east_m=100))
    s.report("R1", "PS-FIGHT", *CXL)
    incident, order = s.incident_of("R1"), s.order_of("P1")
    for step in ("ack", "on_scene", "resolved"):
        s.status("P1", step, order_id=order)
    s.verify("R1", "satisfied")  # closed on verification (核查结案), not on `resolved`
    s.wait(CLOSED_KEPT.total_seconds() - 60)
    assert incident in s.core.state.incidents  # the day's late field events are still told apart
    s.wait(120)
    assert incident not in s.core.state.incidents and order not in s.core.state.orders
    # what is left of it: its report id, so that a resend is still a resend, not a new incident
    events = len(s.events())
    s.report("R1", "PS-FIGHT", *CXL)
    assert len(s.events()) == events and incident not in s.core.state.incidents
    # its officer's late news is turned down as before, and the officer goes on working
    s.status("P1", "resolved", order_id=order)
    assert s.dead_letters()[-1].reason == "unit_not_assigned"
    s.report("R2", "PS-FIGHT", *CXL)
    assert s.orders()[-1].unit_id == "P1" and s.orders()[-1].incident_id == s.incident_of("R2")
