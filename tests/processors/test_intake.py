import hashlib
import json

import pytest

from processors.dead_letters import dead_letter
from processors.intake import REASONS, Limits, Rejected, admit_report, admit_unit_event
from processors.register import UnitRegister
from tests.processors.conftest import NOW, inbound, report

LIMITS = Limits()
# a register that takes any unlisted unit at its word: these tests are about intake, not the register
OPEN_REGISTER = UnitRegister(unlisted="admit")


def admit(value, catalogue, geography, limits=LIMITS):
    return admit_report(inbound(value), catalogue, geography, limits)


def test_a_valid_report_enters_the_work_log_of_its_district_and_street(catalogue, geography):
    admitted = admit(report(), catalogue, geography)
    assert not isinstance(admitted, Rejected)
    item = admitted.item
    assert (item.kind, item.district, item.street) == ("report", "JINJIANG", "JJ-SYJ")
    assert item.report.report_id == "R-1"
    assert item.at == NOW
    assert item.provenance.offset == 0


def test_an_admitted_report_enters_the_work_log_without_its_reporter_and_without_its_bytes(catalogue, geography):
    record = inbound(report(reporter={"name": "Wang Fang", "phone": "13812345678"},
                            description="two men fighting by the noodle shop"), offset=7)
    admitted = admit_report(record, catalogue, geography, LIMITS)
    entry = admitted.item.model_dump_json(exclude_none=True)  # as the worker writes it to the work log
    assert "Wang" not in entry and "5678" not in entry and "reporter" not in entry
    assert "noodle" not in entry and "description" not in entry
    # where the record is and which bytes those are, so that a rejection in the core can still point to it
    origin = admitted.item.provenance
    assert (origin.topic, origin.partition, origin.offset, origin.key) == ("incident.reports", 0, 7, "R-1")
    assert (origin.raw, origin.raw_truncated, origin.raw_masked) == ("", True, False)
    assert (origin.raw_length, origin.raw_sha256) == (len(record.value), hashlib.sha256(record.value).hexdigest())
    # the reporter and the description leave intake apart, exactly as given
    assert admitted.reporter.model_dump(mode="json") == {
        "report_id": "R-1", "reporter": {"name": "Wang Fang", "phone": "13812345678"},
        "description": "two men fighting by the noodle shop", "received_at": "2026-11-25T08:00:00Z"}


@pytest.mark.parametrize("doc", [report(), report(reporter={}), report(reporter={"name": None, "phone": ""}),
                                 report(description="")])
def test_a_report_naming_nobody_and_saying_nothing_has_no_reporter_to_pass_on(doc, catalogue, geography):
    assert admit(doc, catalogue, geography).reporter is None


def test_a_description_without_a_reporter_leaves_intake_apart_too(catalogue, geography):
    admitted = admit(report(reporter={}, description="a car on fire"), catalogue, geography)
    assert (admitted.reporter.reporter, admitted.reporter.description) == (None, "a car on fire")
    assert admitted.item.report.description is None


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"not json {", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (report(schema_version=2), "unsupported_schema_version"),
        ({k: v for k, v in report().items() if k != "schema_version"}, "unsupported_schema_version"),
        (report(lat="thirty"), "schema_violation"),
        ({k: v for k, v in report().items() if k != "report_id"}, "schema_violation"),
        (report(source="pigeon"), "schema_violation"),
        (report(lat=95.0), "schema_violation"),
        (report(reported_at="2026-11-25T07:59:00"), "schema_violation"),  # no UTC offset
        (report(description="x" * 4001), "schema_violation"),
        (report(confidence=1.5), "schema_violation"),
        (report(category="XX-NOPE"), "unknown_category"),
        (report(lat=31.2304, lon=121.4737), "outside_area"),
        (report(reported_at="2026-11-25T09:00:00Z"), "reported_in_future"),
        (report(attributes={"blob": "x" * 70_000}), "oversize"),
    ],
)
def test_bad_reports_are_rejected_with_a_stable_reason(value, reason, catalogue, geography):
    result = admit(value, catalogue, geography)
    assert isinstance(result, Rejected)
    assert result.reason == reason
    assert reason in REASONS
    assert result.error


def test_nan_coordinates_are_refused(catalogue, geography):
    raw = json.dumps(report()).replace("30.652", "NaN").encode()
    result = admit(raw, catalogue, geography)
    assert isinstance(result, Rejected) and result.reason == "schema_violation"


def test_a_small_clock_skew_is_tolerated(catalogue, geography):
    assert not isinstance(admit(report(reported_at="2026-11-25T08:04:00Z"), catalogue, geography), Rejected)


def test_unknown_fields_from_a_newer_producer_are_ignored(catalogue, geography):
    assert not isinstance(admit(report(weather="rain"), catalogue, geography), Rejected)


def test_schema_errors_do_not_echo_personal_data(catalogue, geography):
    result = admit(report(reporter={"name": "Wang Fang", "phone": 13800000000}), catalogue, geography)
    assert isinstance(result, Rejected) and result.reason == "schema_violation"
    assert "13800000000" not in result.error and "Wang" not in result.error


def test_a_dead_letter_keeps_the_original_bytes_and_where_they_came_from(catalogue, geography):
    record = inbound(b"\xff not utf-8", offset=42)
    letter = dead_letter(record, admit_report(record, catalogue, geography, LIMITS), NOW)
    assert (letter.reason, letter.topic, letter.partition, letter.offset, letter.key) == (
        "invalid_json", "incident.reports", 0, 42, "R-1")
    assert letter.raw_encoding == "base64"
    import base64

    assert base64.b64decode(letter.raw) == b"\xff not utf-8"


def log_on(**overrides):
    doc = {
        "schema_version": 1, "event_id": "E-1", "unit_id": "U-1", "at": "2026-11-25T07:00:00Z",
        "type": "log_on", "agency": "police", "kind": "officer", "district": "JINJIANG",
        "home_street": "JJ-CXL", "mode": "car", "lat": 30.65, "lon": 104.07,
    }
    doc.update(overrides)
    return doc


def test_a_log_on_routes_the_unit_to_its_district(geography):
    item = admit_unit_event(inbound(log_on(), topic="unit.events", key=b"U-1"), geography, LIMITS, None, OPEN_REGISTER)
    assert not isinstance(item, Rejected)
    assert (item.kind, item.district, item.unit_event.type) == ("unit_event", "JINJIANG", "log_on")


def test_an_admitted_unit_event_keeps_its_excerpt_as_it_holds_no_personal_data(geography):
    item = admit_unit_event(inbound(log_on(), topic="unit.events", key=b"U-1"), geography, LIMITS, None, OPEN_REGISTER)
    assert json.loads(item.provenance.raw) == log_on() and not item.provenance.raw_truncated


def test_later_events_follow_the_district_of_the_last_log_on(geography):
    event = {"schema_version": 1, "event_id": "E-2", "unit_id": "U-1", "at": "2026-11-25T07:01:00Z",
             "type": "ack", "order_id": "O-1"}
    item = admit_unit_event(inbound(event, topic="unit.events", key=b"U-1"), geography, LIMITS, "JINJIANG",
                            OPEN_REGISTER)
    assert item.district == "JINJIANG" and item.unit_event.order_id == "O-1"
    rejected = admit_unit_event(inbound(event, topic="unit.events", key=b"U-1"), geography, LIMITS, None, OPEN_REGISTER)
    assert isinstance(rejected, Rejected) and rejected.reason == "unknown_unit"


@pytest.mark.parametrize(
    "event, reason",
    [
        (log_on(district="ATLANTIS"), "unknown_district"),
        (log_on(type="teleport"), "schema_violation"),
        (log_on(mode="horse"), "schema_violation"),
        ({"schema_version": 1, "event_id": "E", "unit_id": "U-1", "at": "2026-11-25T07:00:00Z", "type": "ack"},
         "schema_violation"),  # an ack without its order
    ],
)
def test_bad_unit_events_are_rejected(event, reason, geography):
    result = admit_unit_event(inbound(event, topic="unit.events", key=b"U-1"), geography, LIMITS, "JINJIANG",
                              OPEN_REGISTER)
    assert isinstance(result, Rejected) and result.reason == reason


@pytest.mark.parametrize("raw", [
    json.dumps(report(description="before\x00after")).encode(),
    json.dumps(report()).encode().replace(b'"R-1"', b'"R-\\u00001"'),
])
def test_nul_characters_are_refused_since_the_audit_trail_cannot_store_them(raw, catalogue, geography):
    result = admit(raw, catalogue, geography)
    assert isinstance(result, Rejected) and result.reason == "nul_character"


def test_a_dead_letter_of_bytes_with_nul_keeps_them_as_base64(catalogue, geography):
    raw = b'{"a": "\x00"}'
    record = inbound(raw, key=b"K\x00")
    letter = dead_letter(record, admit_report(record, catalogue, geography, LIMITS), NOW)
    assert letter.raw_encoding == "base64" and "\x00" not in (letter.key or "")
