"""The unit register: a log-on that contradicts it is refused with a reason; changes apply at run time; the
shipped register lists the sample district's roster."""

from __future__ import annotations

import json
from datetime import timedelta
from importlib import resources

import pytest
from pydantic import ValidationError

from processors.intake import REASONS, Rejected, admit_unit_event, Limits
from processors.messages import LogOn
from processors.register import RegisterChange, RegisterError, UnitRegister, check_log_on, parse_register
from tests.processors.conftest import NOW, inbound

REGISTER = parse_register("""
unlisted: refuse
units:
  - {unit_id: CM-1, agency: city_management, kind: officer, home_street: JJ-SYJ, mode: bike,
     delegations: [{category: TR-PARKING, granted_by: traffic, until: '2026-12-31T00:00:00Z'},
                   {category: CM-OLD, granted_by: traffic, until: '2026-01-01T00:00:00Z'}]}
  - {unit_id: AUX-1, agency: police, kind: auxiliary, home_street: JJ-SYJ}
""")


def log_on(unit_id="CM-1", **overrides) -> LogOn:
    doc = {"schema_version": 1, "event_id": "e1", "unit_id": unit_id, "at": NOW.isoformat(), "type": "log_on",
           "agency": "city_management", "kind": "officer", "district": "JINJIANG", "home_street": "JJ-SYJ",
           "mode": "bike", "delegations": ["TR-PARKING"], "lat": 30.652, "lon": 104.0765, **overrides}
    return LogOn.model_validate(doc)


def test_a_log_on_that_says_what_the_register_says_is_allowed():
    assert check_log_on(REGISTER, log_on(), NOW) is None
    assert check_log_on(REGISTER, log_on(delegations=[]), NOW) is None  # claiming less is no contradiction


@pytest.mark.parametrize("overrides, says", [
    ({"agency": "police"}, "agency 'police' is not the registered 'city_management'"),
    ({"kind": "auxiliary"}, "kind 'auxiliary' is not the registered 'officer'"),
    ({"home_street": "JJ-CXL"}, "home_street 'JJ-CXL' is not the registered 'JJ-SYJ'"),
    ({"mode": "car"}, "mode 'car' is not the registered 'bike'"),
    ({"delegations": ["PS-FIGHT"]}, "PS-FIGHT (never granted)"),
    ({"delegations": ["CM-OLD"]}, "CM-OLD (expired)"),
])
def test_a_log_on_that_contradicts_the_register_is_refused_with_what_it_contradicts(overrides, says):
    refused = check_log_on(REGISTER, log_on(**overrides), NOW)
    assert refused.reason == "register_mismatch" and says in refused.error


def test_an_auxiliary_cannot_log_on_as_an_officer():
    refused = check_log_on(REGISTER, log_on("AUX-1", agency="police", kind="officer", mode="car", delegations=[]), NOW)
    assert refused.reason == "register_mismatch" and "kind 'officer'" in refused.error


def test_a_delegation_ends_when_its_grant_does():
    later = NOW.replace(year=2027)
    assert "TR-PARKING (expired)" in check_log_on(REGISTER, log_on(), later).error


def test_a_made_up_unit_is_refused_unless_the_register_admits_unlisted_units():
    assert check_log_on(REGISTER, log_on("MADE-UP"), NOW).reason == "unregistered_unit"
    assert check_log_on(REGISTER.model_copy(update={"unlisted": "admit"}), log_on("MADE-UP"), NOW) is None


def test_intake_refuses_the_log_on_whoever_published_it(geography):
    record = inbound(log_on(agency="police").model_dump(mode="json"), topic="unit.events", key=b"CM-1")
    refused = admit_unit_event(record, geography, Limits(), None, REGISTER)
    assert isinstance(refused, Rejected) and refused.reason == "register_mismatch"
    for reason in ("unregistered_unit", "register_mismatch", "implausible_location", "register_change_invalid"):
        assert reason in REASONS


def change(**overrides) -> RegisterChange:
    doc = {"schema_version": 1, "change_id": "c1", "unit_id": "NEW-1", "action": "set", "changed_by": "duty-officer-li",
           "reason": "new unit joins the brigade", "at": NOW.isoformat(),
           "entry": {"unit_id": "NEW-1", "agency": "police", "kind": "officer", "home_street": "JJ-SYJ"}, **overrides}
    return RegisterChange.model_validate(doc)


def test_a_change_adds_replaces_and_removes_units_leaving_the_old_register_as_it_was():
    added = REGISTER.apply(change())
    assert check_log_on(added, log_on("NEW-1", agency="police", mode="car", delegations=[]), NOW) is None
    assert REGISTER.get("NEW-1") is None
    removed = added.apply(change(action="remove", entry=None, change_id="c2"))
    assert check_log_on(removed, log_on("NEW-1", agency="police", delegations=[]), NOW).reason == "unregistered_unit"


def test_a_change_says_who_and_why_and_its_entry_names_its_unit():
    with pytest.raises(ValidationError):
        change(changed_by="")
    with pytest.raises(ValidationError):
        change(reason="")
    with pytest.raises(ValidationError):
        change(entry={"unit_id": "OTHER", "agency": "police", "kind": "officer", "home_street": "JJ-SYJ"})


def test_a_unit_listed_twice_is_an_error():
    with pytest.raises(RegisterError, match="listed twice"):
        parse_register("units: [{unit_id: A, agency: p, kind: officer, home_street: S},"
                       " {unit_id: A, agency: p, kind: officer, home_street: S}]")


def test_the_shipped_register_lists_every_unit_of_the_sample_roster_as_it_logs_on():
    register = parse_register(resources.files("processors.data").joinpath("units.yaml").read_text())
    assert register.unlisted == "refuse"
    roster = resources.files("processors.data").joinpath("roster.jsonl").read_text().splitlines()
    for line in roster:
        event = LogOn.model_validate(json.loads(line))
        assert check_log_on(register, event, NOW + timedelta(days=30)) is None, event.unit_id
