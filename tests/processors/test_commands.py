"""Dispatcher commands decided by the district core: each command, each refusal, and the audit stamp."""

import pytest

from processors.commands import REFUSALS
from processors.snapshot import restore, snapshot
from tests.processors.scenario import Scenario

SPOT = (30.620, 104.070)
SUPERVISOR = ("zhang.min", "supervisor")


def east(m: float):
    return (SPOT[0], SPOT[1] + m / 95_800)


@pytest.fixture
def s(catalogue, geography):
    return Scenario(catalogue, geography)


def refused(s) -> dict:
    [event] = s.events("command_refused")[-1:]
    return event.data


def fight_with_units(s, *units):
    """A fight at SPOT; the first unit (nearest) is dispatched by the machine."""
    for i, unit in enumerate(units):
        s.log_on(unit, "police", *east(100 + 400 * i))
    s.report("R1", "PS-FIGHT", *SPOT)
    return s.incident_of("R1")


def test_assign_sends_a_unit_the_machine_had_passed_over_and_names_the_dispatcher(s):
    incident = fight_with_units(s, "P1")
    s.status("P1", "decline")  # never chosen again for it by the machine: the incident waits
    assert s.events("queued", incident) and s.core.state.units["P1"].free
    s.command("assign", incident, unit_id="P1")
    order = s.orders()[-1]
    assert (order.unit_id, order.kind, order.agency, order.role) == ("P1", "assign", "police", "lead")
    event = s.events(incident_id=incident)[-1]
    assert event.type == "dispatched" and event.data["reason"] == "dispatcher"
    assert event.data["by"] == {"name": "li.wei", "role": "dispatcher"} and event.data["command_id"]
    assert incident not in s.core.state.queue


def _unit_for(s, setup: str) -> str:
    """Makes the case; returns the unit the dispatcher names for the fight R1."""
    if setup in ("off_duty", "unavailable", "busy", "same"):
        s.log_on("P1", "police", *east(100))
    if setup == "off_duty":
        s.unit_event("P1", "log_off")
    elif setup == "unavailable":
        s.unit_event("P1", "unavailable")
    elif setup == "busy":
        s.report("R0", "PS-THEFT", *east(3000))
    elif setup == "traffic":
        s.log_on("T1", "traffic", *east(100))
    elif setup == "auxiliary":
        s.log_on("A1", "police", *east(100), kind="auxiliary")  # a fight needs an officer
    s.report("R1", "PS-FIGHT", *SPOT)
    return {"traffic": "T1", "auxiliary": "A1", "unknown": "NOBODY"}.get(setup, "P1")


@pytest.mark.parametrize("setup, reason", [
    ("off_duty", "unit_off_duty"),
    ("unavailable", "unit_unavailable"),
    ("busy", "unit_busy"),
    ("unknown", "unknown_unit"),
    ("traffic", "lacks_authority"),
    ("auxiliary", "lacks_authority"),
    ("same", "unit_already_on_incident"),
])
def test_assign_is_refused_with_its_reason_and_changes_nothing(s, setup, reason):
    unit = _unit_for(s, setup)
    incident = s.incident_of("R1")
    before = (len(s.orders()), len(s.orders("cancel")), s.core.state.incidents[incident].status)
    s.command("assign", incident, unit_id=unit)
    data = refused(s)
    assert data["reason"] == reason and data["command"] == "assign" and data["unit_id"] == unit
    assert data["by"] == {"name": "li.wei", "role": "dispatcher"} and data["error"]
    assert (len(s.orders()), len(s.orders("cancel")), s.core.state.incidents[incident].status) == before
    assert reason in REFUSALS


def test_a_command_for_an_unknown_incident_is_dead_lettered(s):
    s.command("assign", "INC-JINJIANG-000000000000", unit_id="P1")
    [letter] = s.dead_letters()
    assert letter.reason == "unknown_incident" and letter.topic == "dispatch.commands"


def test_add_unit_gives_a_second_unit_a_support_place(s):
    incident = fight_with_units(s, "P1", "P2")
    assert s.active_units("R1") == {"police": "P1"}
    s.command("add_unit", incident, unit_id="P2")
    order = s.orders()[-1]
    assert (order.unit_id, order.role, order.agency, order.joint_with) == ("P2", "support", "police", ["P1"])
    assert set(s.active_units("R1").values()) == {"P1", "P2"}
    # the added unit's news moves the incident like any other; it closes only when both have resolved
    s.status("P2", "resolved")
    assert s.events("awaiting_verification") == []
    s.status("P1", "resolved")
    assert s.events("awaiting_verification")[0].data["units"] == ["P1", "P2"]
    # a refusal: the unit already on it
    s.command("add_unit", incident, unit_id="P1")
    assert refused(s)["reason"] == "awaiting_verification"


def test_reassign_to_a_named_unit_and_its_refusals(s):
    incident = fight_with_units(s, "P1", "P2")
    s.command("reassign", incident, replaces="P2", unit_id="P1")
    assert refused(s)["reason"] == "unit_not_on_incident"
    s.command("reassign", incident)
    assert refused(s)["reason"] == "missing_field"
    s.command("reassign", incident, replaces="P1", unit_id="P2")
    assert [o.unit_id for o in s.orders("cancel")] == ["P1"] and s.orders()[-1].unit_id == "P2"
    assert s.active_units("R1") == {"police": "P2"}
    assert s.core.state.units["P1"].free


def test_cancel_and_close_need_a_supervisor(s):
    incident = fight_with_units(s, "P1")
    for command in ("cancel", "close"):
        s.command(command, incident)
        assert refused(s)["reason"] == "supervisor_required"
    assert s.core.state.incidents[incident].status == "dispatched"
    s.command("cancel", incident, by=SUPERVISOR, note="false alarm")
    cancelled = s.events("cancelled")[0]
    assert cancelled.data["by"] == {"name": "zhang.min", "role": "supervisor"} and cancelled.data["units"] == ["P1"]
    assert s.orders("cancel")[-1].unit_id == "P1" and s.core.state.units["P1"].free
    s.command("close", incident, by=SUPERVISOR)
    assert refused(s)["reason"] == "incident_closed"
    s.command("assign", incident, unit_id="P1")
    assert refused(s)["reason"] == "incident_closed"


def test_a_supervisor_closes_an_incident_by_hand(s):
    incident = fight_with_units(s, "P1")
    s.command("close", incident, by=SUPERVISOR, note="handled by the station")
    [closed] = s.events("closed")
    assert closed.data["verification"] == "closed_by_command" and closed.data["by"]["role"] == "supervisor"
    assert s.core.state.units["P1"].free and not s.core.state.incidents[incident].is_open


def test_acknowledging_an_escalation(s, catalogue):
    incident = fight_with_units(s, "P1", "P2")
    s.wait(catalogue.get("PS-FIGHT").sla.ack_s + 1)  # P1 never acknowledges: level 1
    [escalation] = s.escalations()
    s.command("acknowledge_escalation", incident, escalation_id="nope")
    assert refused(s)["reason"] == "unknown_escalation"
    s.command("acknowledge_escalation", incident)
    assert refused(s)["reason"] == "missing_field"
    status = s.core.state.incidents[incident].status
    s.command("acknowledge_escalation", incident, escalation_id=escalation.escalation_id)
    [ack] = s.events("escalation_acknowledged")
    assert (ack.data["escalation_id"], ack.data["level"], ack.data["by"]["name"]) == (
        escalation.escalation_id, 1, "li.wei")
    assert s.core.state.incidents[incident].status == status  # not a status of its own
    s.command("acknowledge_escalation", incident, escalation_id=escalation.escalation_id)
    assert refused(s)["reason"] == "already_acknowledged"


def test_a_level_three_escalation_is_acknowledged_by_a_supervisor_only(s, catalogue):
    s.report("R1", "PS-FIGHT", *SPOT)
    incident = s.incident_of("R1")
    s.wait(catalogue.get("PS-FIGHT").sla.arrive_s + 1)
    level3 = next(e for e in s.escalations() if e.level == 3)
    s.command("acknowledge_escalation", incident, escalation_id=level3.escalation_id)
    assert refused(s)["reason"] == "supervisor_required"
    s.command("acknowledge_escalation", incident, escalation_id=level3.escalation_id, by=SUPERVISOR)
    assert s.events("escalation_acknowledged")[0].data["level"] == 3


def test_a_complainant_may_only_verify(s):
    incident = fight_with_units(s, "P1")
    s.command("assign", incident, unit_id="P1", by=("R1", "complainant"))
    assert refused(s)["reason"] == "not_allowed"


def test_a_resent_command_changes_nothing(s):
    incident = fight_with_units(s, "P1", "P2")
    produced = s.command("add_unit", incident, unit_id="P2")
    item = s.log[-1]
    assert produced and s.feed(item) == []


def test_commands_survive_a_snapshot_and_replay_the_same(s, catalogue):
    incident = fight_with_units(s, "P1", "P2")
    s.command("add_unit", incident, unit_id="P2")
    s.wait(catalogue.get("PS-FIGHT").sla.ack_s + 1)
    [escalation, *_] = s.escalations()
    s.command("acknowledge_escalation", incident, escalation_id=escalation.escalation_id)
    restored = restore(snapshot(s.core), catalogue)
    item = s.log[-1]
    assert restored.apply(item) == []  # the command is remembered: its resend is one
    replay = Scenario(catalogue, s.geography)
    again = [m for entry in s.log for m in replay.core.apply(entry)]
    assert [m.to_json_bytes() for m in again] == [m.to_json_bytes() for m in s.out]


def test_reassigning_an_added_unit_gives_the_new_one_a_support_place(s):
    incident = fight_with_units(s, "P1", "P2", "P3")
    s.command("add_unit", incident, unit_id="P2")
    s.command("reassign", incident, replaces="P2", unit_id="P3")
    assert s.orders("cancel")[-1].unit_id == "P2" and s.orders()[-1].unit_id == "P3"
    assert s.orders()[-1].role == "support" and set(s.active_units("R1").values()) == {"P1", "P3"}
    assert s.core.state.units["P2"].free
