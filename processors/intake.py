"""Intake: decide for one raw inbound message whether it enters a district's work log or the dead-letter topic.

An admitted report enters the work log without its reporter and its description: the name, the phone and the
free text leave intake apart, as a ReporterRecord for the incident record, so that nothing the district cores
replay or publish holds them.

Every rejection carries a stable `reason` code that operators and dashboards
count by; the codes are listed in `REASONS` and must never be renamed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import pydantic_core
from pydantic import ValidationError

from processors.catalogue import Catalogue
from processors.dead_letters import Rejected, bare_provenance, provenance
from processors.geography import Geography
from processors.messages import IncidentReport, LogOn, ReporterRecord, WorkItem, unit_event_adapter
from processors.register import UnitRegister, check_log_on

T = TypeVar("T")

REASONS = {
    "oversize": "the message is larger than the configured limit",
    "invalid_json": "the bytes are not UTF-8 JSON (or nest deeper than the parser's limit of 200 levels)",
    "not_an_object": "the JSON value is not an object",
    "nul_character": "the text holds a NUL character, which no text field of the audit trail can store",
    "unsupported_schema_version": "schema_version is missing or not one this release reads",
    "schema_violation": "a field is missing, has the wrong type or is out of range",
    "unknown_category": "the category code is not in the catalogue",
    "outside_area": "the coordinates lie outside every street of the served area",
    "reported_in_future": "reported_at is later than arrival plus the allowed clock skew",
    "unknown_district": "a unit logs on to a district the geography does not have",
    "unknown_unit": "an event for a unit that has not logged on",
    "unregistered_unit": "a unit logs on that the unit register does not list",
    "register_mismatch": "a log-on contradicts the unit register (agency, kind, home street, mode or a delegation "
                         "not granted or expired)",
    "implausible_location": "a location further from the unit's last one than its mode of travel can cover in the "
                            "time between them",
    "register_change_invalid": "a change of the unit register that cannot be read or applied",
    "key_mismatch": "a unit event whose message key is not its unit_id",
    "unit_not_assigned": "a status event for an order the unit does not hold",
    "invalid_work_item": "an unreadable entry in a district work log",
    "unknown_incident": "a dispatcher command for an incident its district does not hold (processors/commands.py)",
    "conflicting_resend": "a report under a report_id already used by a report with other content (category, place, "
                          "address or description)",
    "sink_invalid": "a message on an audit topic that the sink cannot read",
    "sink_refused": "a message whose row PostgreSQL refuses for what it holds (a value out of range, a broken constraint)",
    "processing_error": "a defect of ours met this message; it is kept here instead of stopping the worker",
    "publish_failed": "an output decided for this message could not be published (the broker refused it for good)",
}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 64 * 1024
    future_skew: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class Inbound:
    """A raw record as it came off a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    received_at: datetime


@dataclass(frozen=True)
class Admitted:
    """An admitted report: its work-log entry (no personal data in it) and, if it named one, its reporter."""

    item: WorkItem
    reporter: ReporterRecord | None


def admit_report(record: Inbound, catalogue: Catalogue, geography: Geography, limits: Limits) -> Admitted | Rejected:
    report = read_message(record, limits, IncidentReport.model_validate)
    if isinstance(report, Rejected):
        return report
    if catalogue.get(report.category) is None:
        return Rejected("unknown_category", f"category {report.category!r} is not in the catalogue")
    street = geography.locate(report.lat, report.lon)
    if street is None:
        return Rejected("outside_area", f"({report.lat}, {report.lon}) lies outside every street served")
    if report.reported_at > record.received_at + limits.future_skew:
        return Rejected(
            "reported_in_future",
            f"reported_at {report.reported_at.isoformat()} is after arrival {record.received_at.isoformat()}",
        )
    item = WorkItem(
        kind="report",
        district=street.district,
        street=street.street,
        at=record.received_at,
        report=report.model_copy(update={"reporter": None, "description": None}),
        # its bytes hold the reporter (an excerpt would only mask it): where the record is, and which bytes those
        # are, is enough for a rejection in the core to be dead-lettered; the bytes stay on their topic
        provenance=bare_provenance(record),
    )
    return Admitted(item, reporter_of(report, record.received_at))


def reporter_of(report: IncidentReport, received_at: datetime) -> ReporterRecord | None:
    """The report's reporter (if it names one: a name or a phone) and its description as a record of their own,
    if it has either."""
    reporter = report.reporter if report.reporter is not None and (report.reporter.name or report.reporter.phone) \
        else None
    if reporter is None and not report.description:
        return None
    return ReporterRecord(report_id=report.report_id, reporter=reporter, description=report.description or None,
                          received_at=received_at)


def admit_unit_event(
    record: Inbound, geography: Geography, limits: Limits, unit_district: str | None, register: UnitRegister
) -> WorkItem | Rejected:
    """`unit_district` is the district the unit last logged on to (None if it never did); a log-on must agree
    with the unit `register` (processors/register.py), whoever published it."""
    event = read_message(record, limits, unit_event_adapter.validate_python)
    if isinstance(event, Rejected):
        return event
    if isinstance(event, LogOn):
        if event.district not in geography.districts:
            return Rejected("unknown_district", f"district {event.district!r} is not served")
        refused = check_log_on(register, event, record.received_at)
        if refused is not None:
            return refused
        district = event.district
    elif unit_district is None:
        return Rejected("unknown_unit", f"unit {event.unit_id!r} has not logged on")
    else:
        district = unit_district
    return WorkItem(
        kind="unit_event",
        district=district,
        at=record.received_at,
        unit_event=event,
        provenance=provenance(record),
    )


def read_message(record: Inbound, limits: Limits, validate: Callable[[dict], T]) -> T | Rejected:
    """The record's JSON object as the contract's message (`validate`: a model's validator), or why it is not one."""
    parsed = _parse_object(record, limits)
    if isinstance(parsed, Rejected):
        return parsed
    try:
        return validate(parsed)
    except ValidationError as exc:
        return _schema_rejection(exc)


def _parse_object(record: Inbound, limits: Limits) -> dict | Rejected:
    value = record.value or b""
    if len(value) > limits.max_bytes:
        return Rejected("oversize", f"{len(value)} bytes exceeds the limit of {limits.max_bytes}")
    try:
        # nesting is bounded (200 levels) where json.loads would recurse until RecursionError; invalid UTF-8,
        # lone surrogates and numbers beyond range are refused the same way, as a ValueError
        parsed = pydantic_core.from_json(value)
    except ValueError as exc:
        return Rejected("invalid_json", f"not UTF-8 JSON: {exc}")
    # PostgreSQL's text and jsonb cannot hold NUL: such a message would block the audit trail
    if b"\x00" in value or b"\\u0000" in value:
        return Rejected("nul_character", "a string holds a NUL character (\\u0000)")
    if not isinstance(parsed, dict):
        return Rejected("not_an_object", f"expected a JSON object, got {type(parsed).__name__}")
    if parsed.get("schema_version") != 1:
        return Rejected(
            "unsupported_schema_version",
            f"schema_version {parsed.get('schema_version')!r} is not supported (expected 1)",
        )
    return parsed


def _schema_rejection(exc: ValidationError) -> Rejected:
    # The input values are left out of the text: they may hold a reporter's name or phone.
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(message)'}: {err['msg']}" for err in exc.errors()[:10]
    )
    return Rejected("schema_violation", problems)
