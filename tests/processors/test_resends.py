"""A report under a used report id: the same content is a resend and changes nothing; other content is a dead letter
(`conflicting_resend`), never a silent drop — through a snapshot too."""

from datetime import timedelta

import pytest

from processors.messages import IncidentReport, WorkItem
from processors.reports import content_fingerprint
from processors.snapshot import restore, snapshot
from tests.processors.scenario import Scenario

CXL = (30.654, 104.066)
SYJ = (30.654, 104.0765)


@pytest.fixture
def s(catalogue, geography):
    return Scenario(catalogue, geography)


def send(s: Scenario, report_id: str, category: str, point, **fields) -> list:
    """A report as a producer sends it, with its own reported_at (a resend is stamped anew, as the gateway does)."""
    s.tick()
    report = IncidentReport(schema_version=1, report_id=report_id, source="hotline", category=category,
                            lat=point[0], lon=point[1], reported_at=s.clock, **fields)
    street = s.geography.locate(*point)
    return s.feed(WorkItem(kind="report", district=s.district, street=street.street, at=s.clock, report=report,
                           provenance=s._provenance("incident.reports", report_id)))


def test_a_resend_with_the_same_content_changes_nothing(s):
    send(s, "R1", "CM-MANHOLE", CXL, description="cover missing", address="Chunxi Road 1")
    assert send(s, "R1", "CM-MANHOLE", CXL, description="cover missing", address="Chunxi Road 1") == []
    assert len(s.core.state.incidents) == 1 and s.dead_letters() == []


@pytest.mark.parametrize("change", [
    {"category": "PS-FIGHT"},
    {"point": SYJ},
    {"description": "a knife fight"},
    {"address": "Shuyuan Street 3"},
])
def test_a_resend_with_other_content_is_a_dead_letter(s, change):
    first = {"category": "CM-MANHOLE", "point": CXL, "description": "cover missing", "address": "Chunxi Road 1"}
    args = {**first, **change}
    send(s, "R1", first["category"], first["point"], description=first["description"], address=first["address"])
    before = len(s.events())
    produced = send(s, "R1", args["category"], args["point"], description=args["description"],
                    address=args["address"])
    [dead] = s.dead_letters()
    assert produced == [dead]
    assert dead.reason == "conflicting_resend" and "R1" in dead.error
    assert dead.topic == "incident.reports" and dead.key == "R1"
    assert len(s.events()) == before and len(s.core.state.incidents) == 1


def test_a_merged_report_resent_with_other_content_is_a_dead_letter_too(s):
    send(s, "R1", "PS-MISSING", CXL)
    send(s, "R2", "PS-MISSING", CXL)  # another call about the same matter: merged
    assert len(s.events("report_merged")) == 1
    send(s, "R2", "PS-MISSING", CXL, description="a different matter altogether")
    assert [d.reason for d in s.dead_letters()] == ["conflicting_resend"]


def test_the_first_content_survives_a_snapshot(s, catalogue):
    send(s, "R1", "CM-MANHOLE", CXL, description="cover missing")
    s.core = restore(snapshot(s.core), catalogue)
    assert send(s, "R1", "CM-MANHOLE", CXL, description="cover missing") == []
    send(s, "R1", "CM-MANHOLE", CXL, description="a knife fight")
    assert [d.reason for d in s.dead_letters()] == ["conflicting_resend"]


def test_a_snapshot_from_before_fingerprints_recognises_resends_without_comparing(s, catalogue):
    send(s, "R1", "CM-MANHOLE", CXL, description="cover missing")
    doc = snapshot(s.core)
    doc["reports"] = [entry[:3] for entry in doc["reports"]]  # as an older release wrote them
    s.core = restore(doc, catalogue)
    assert send(s, "R1", "CM-MANHOLE", CXL, description="anything") == []
    assert s.dead_letters() == []


def test_the_fingerprint_is_what_the_report_says_not_when_or_by_whom():
    from datetime import datetime, timezone

    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    base = dict(schema_version=1, report_id="R1", source="hotline", category="CM-MANHOLE", lat=CXL[0], lon=CXL[1])
    one = IncidentReport(**base, reported_at=at)
    assert content_fingerprint(one) == content_fingerprint(
        IncidentReport(**base, reported_at=at + timedelta(minutes=5), attributes={"intake": "open311"}))
    assert content_fingerprint(one) != content_fingerprint(IncidentReport(**base, reported_at=at, description="x"))
