"""Verification and closure (核查结案): resolved is not closed; the complainant's answer closes, reopens, or the
window closes it as unverified. And the promise counted from the report (`due_by`) escalates."""

from datetime import timedelta

import pytest

from processors.catalogue import parse_catalogue
from processors.snapshot import restore, snapshot
from tests.processors.scenario import Scenario

SPOT = (30.620, 104.070)


def east(m: float):
    return (SPOT[0], SPOT[1] + m / 95_800)


@pytest.fixture
def s(catalogue, geography):
    return Scenario(catalogue, geography)


def resolved_fight(s):
    s.log_on("P1", "police", *east(100))
    s.report("R1", "PS-FIGHT", *SPOT)
    for step in ("ack", "on_scene", "resolved"):
        s.status("P1", step)
    return s.incident_of("R1")


def test_an_incident_whose_units_resolved_it_awaits_verification(s, catalogue):
    incident = resolved_fight(s)
    [waiting] = s.events("awaiting_verification")
    assert s.core.state.incidents[incident].status == "awaiting_verification" and s.events("closed") == []
    assert waiting.data["units"] == ["P1"]
    window = timedelta(seconds=catalogue.get("PS-FIGHT").verify_window_s)
    assert waiting.data["verify_by"] == (waiting.at + window).isoformat()
    assert s.core.state.units["P1"].free  # the unit is free at once; only the incident waits


def test_satisfied_closes_it_as_verified(s):
    resolved_fight(s)
    s.verify("R1", "satisfied", by=("R1", "complainant"))
    [closed] = s.events("closed")
    assert (closed.data["verification"], closed.data["channel"]) == ("verified", "open311")
    assert closed.data["by"] == {"name": "R1", "role": "complainant"}


def test_not_resolved_reopens_and_dispatches_again(s):
    incident = resolved_fight(s)
    s.verify("R1", "not_resolved")
    types = [e.type for e in s.events(incident_id=incident)]
    assert types[-3:] == ["awaiting_verification", "reopened", "dispatched"]
    reopened = s.events("reopened")[0]
    assert reopened.data["units"] == ["P1"] and reopened.data["channel"] == "callback"
    assert s.orders()[-1].unit_id == "P1" and s.orders()[-1].incident_id == incident
    # worked again, resolved again, verified
    for step in ("ack", "on_scene", "resolved"):
        s.status("P1", step)
    assert len(s.events("awaiting_verification")) == 2
    s.verify("R1", "satisfied")
    assert s.events("closed")[0].data["verification"] == "verified"


def test_no_answer_within_the_window_closes_it_as_unverified(s, catalogue):
    incident = resolved_fight(s)
    window = catalogue.get("PS-FIGHT").verify_window_s
    s.wait(window - 5)
    assert s.events("closed") == []
    s.wait(10)
    [closed] = s.events("closed")
    assert closed.data["verification"] == "unverified" and "by" not in closed.data
    # too late now: the answer is refused, not lost
    s.verify("R1", "not_resolved")
    assert s.events("command_refused")[-1].data["reason"] == "not_awaiting_verification"
    assert not s.core.state.incidents[incident].is_open


def test_a_verification_outcome_before_resolution_is_refused(s):
    s.log_on("P1", "police", *east(100))
    s.report("R1", "PS-FIGHT", *SPOT)
    s.verify("R1", "satisfied")
    assert s.events("command_refused")[-1].data["reason"] == "not_awaiting_verification"
    s.command("verify", s.incident_of("R1"))
    assert s.events("command_refused")[-1].data["reason"] == "missing_field"


def test_the_window_is_set_per_category_in_the_catalogue(catalogue, geography):
    text = "categories:\n" + "\n".join(
        f"  - {{code: {c.code}, name: {c.name}, domain: {c.domain}, agencies: {list(c.agencies)}, "
        f"priority: {c.priority}, sla: {{ack_s: {c.sla.ack_s}, arrive_s: {c.sla.arrive_s}, "
        f"resolve_s: {c.sla.resolve_s}}}, dedup: {{radius_m: 100, window_s: 600}}"
        + (", verify_window_s: 600" if c.code == "PS-FIGHT" else "") + "}"
        for c in catalogue.categories)
    short = parse_catalogue(text)
    assert short.get("PS-FIGHT").verify_window_s == 600
    assert short.get("PS-THEFT").verify_window_s == 86400  # the default
    s = Scenario(short, geography)
    resolved_fight(s)
    s.wait(601)
    assert s.events("closed")[0].data["verification"] == "unverified"


def test_the_promise_counted_from_the_report_escalates(s, catalogue):
    limits = catalogue.get("PS-FIGHT").sla
    s.report("R1", "PS-FIGHT", *SPOT)  # nobody on duty
    s.wait(limits.ack_s / 2)
    s.log_on("P1", "police", *east(100))  # dispatched late: its arrival limit runs later than the promise
    s.status("P1", "ack")
    incident = s.core.state.incidents[s.incident_of("R1")]
    s.wait((incident.due_by - s.clock).total_seconds() + 1)
    promise = [e for e in s.escalations() if e.reason == "promise_overdue"]
    assert [(e.level, e.deadline) for e in promise] == [(2, incident.due_by)]
    assert (2, "arrival_overdue") not in {(e.level, e.reason) for e in s.escalations()}


def test_a_promise_met_raises_nothing(s, catalogue):
    s.report("R1", "PS-FIGHT", *SPOT)
    s.wait(10)
    s.log_on("P1", "police", *east(100))
    s.status("P1", "on_scene")
    s.wait(catalogue.get("PS-FIGHT").sla.arrive_s)
    assert [e for e in s.escalations() if e.reason == "promise_overdue"] == []


def test_awaiting_verification_survives_a_snapshot(s, catalogue):
    resolved_fight(s)
    restored = restore(snapshot(s.core), catalogue)
    s.core = restored
    s.verify("R1", "not_resolved")
    assert s.events("reopened") and s.orders()[-1].unit_id == "P1"


def test_a_snapshot_taken_before_verification_existed_still_restores(s, catalogue):
    resolved_fight(s)
    doc = snapshot(s.core)
    for incident in doc["incidents"]:
        for newer in ("resolved_at", "acknowledged", "commands"):
            incident.pop(newer)
    restored = restore(doc, catalogue)
    [incident] = restored.state.incidents.values()
    assert (incident.resolved_at, incident.acknowledged, incident.commands) == (None, [], [])
