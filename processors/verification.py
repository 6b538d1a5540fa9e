"""Verification and closure (核查结案): an incident whose units have all resolved it is not closed at once. It
awaits the complainant's verification — a call-back outcome entered by the command centre, or the complainant's
own answer through their Open311 token — for the category's `verify_window_s`:

- satisfied: closed as `verified`;
- not resolved: reopened, its places filled again (a new resolution limit runs from the reopening);
- no answer within the window: closed as `unverified`.

A supervisor may also close or cancel an open incident by command (processors/commands.py); both leave the
district's indexes and clocks through `retire`, as every closure does.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from processors.dispatch import dispatch
from processors.incidents import CLOSED_KEPT, Incident, record_event, seconds, timing
from processors.messages import Message

if TYPE_CHECKING:
    from processors.district import DistrictCore

AWAITING = "awaiting_verification"
# how a closed incident was closed: the `verification` field of its `closed` event
VERIFIED, UNVERIFIED, BY_COMMAND = "verified", "unverified", "closed_by_command"


def await_verification(core: DistrictCore, incident: Incident, at: datetime, out: list[Message]) -> None:
    """Every place resolved: the limits of the work stop, the verification window starts."""
    state = core.state
    state.queue.discard(incident.incident_id)
    _drop_work_clocks(core, incident)
    incident.resolved_at = at
    verify_by = core.catalogue.deadline(incident.category, at, incident.category.verify_window_s)
    state.deadlines.set(("verify", incident.incident_id), verify_by)
    # the time to resolve ends here, when the units are done (the command centre watches it: the resolve stage of
    # patrol_response_seconds), not when the complainant is asked, which can take the verification window
    record_event(incident, AWAITING, at, out, {
        "units": sorted(a.unit_id for a in incident.resolved.values()), "verify_by": verify_by.isoformat(),
        "resolved_s": seconds(at - incident.created_at),
        "resolve_on_time": incident.resolve_by is None or at <= incident.resolve_by, **timing(incident, at)})


def verify(core: DistrictCore, incident: Incident, outcome: str, channel: str, at: datetime,
           out: list[Message]) -> None:
    """The complainant's answer to an incident awaiting verification (the caller has checked that it does)."""
    core.state.deadlines.drop(("verify", incident.incident_id))
    if outcome == "satisfied":
        close(core, incident, at, out, verification=VERIFIED, channel=channel)
    else:
        reopen(core, incident, at, out, channel=channel)


def reopen(core: DistrictCore, incident: Incident, at: datetime, out: list[Message], **detail) -> None:
    """Not resolved after all: the same incident is worked again — its places emptied and filled anew."""
    state = core.state
    units = sorted(a.unit_id for a in incident.resolved.values())
    incident.resolved.clear()
    incident.resolved_at = None
    incident.resolve_by = core.catalogue.deadline(incident.category, at, incident.category.sla.resolve_s)
    state.deadlines.set(("resolve", incident.incident_id), incident.resolve_by)
    record_event(incident, "reopened", at, out, {"units": units, "resolve_by": incident.resolve_by.isoformat(),
                                                 **detail, **timing(incident, at)})
    dispatch(core, incident, at, out, reason="reopened")


def verification_due(core: DistrictCore, incident: Incident, at: datetime, out: list[Message]) -> None:
    """The window ran out with no answer: closed, as unverified."""
    if incident.status == AWAITING:
        close(core, incident, at, out, verification=UNVERIFIED)


def close(core: DistrictCore, incident: Incident, at: datetime, out: list[Message], **detail) -> None:
    """The incident is closed: it leaves the queue, the index and the clocks, to be forgotten after CLOSED_KEPT.
    `detail` says how (`verification`: verified, unverified, closed_by_command; who, on which channel)."""
    retire(core, incident, at)
    resolved_at = incident.resolved_at or at
    record_event(incident, "closed", at, out, {
        "units": sorted(a.unit_id for a in incident.resolved.values()),
        "open_s": seconds(at - incident.created_at), "resolve_on_time": resolved_at <= incident.resolve_by,
        **detail, **timing(incident, at)})


def retire(core: DistrictCore, incident: Incident, at: datetime) -> None:
    """An incident closed or cancelled leaves the queue, the open-incident index, the street load and every clock
    of its own; it is forgotten CLOSED_KEPT later."""
    state = core.state
    state.queue.discard(incident.incident_id)
    state.open_incidents.remove(incident.incident_id)
    state.load.add(state.load.open_incidents, incident.street, -1)
    _drop_work_clocks(core, incident)
    state.deadlines.drop(("verify", incident.incident_id))
    state.deadlines.set(("forget", incident.incident_id), at + CLOSED_KEPT)


def _drop_work_clocks(core: DistrictCore, incident: Incident) -> None:
    for key in (("arrive", incident.incident_id), ("resolve", incident.incident_id), ("due", incident.incident_id),
                ("waiting", incident.incident_id, 2), ("waiting", incident.incident_id, 3)):
        core.state.deadlines.drop(key)
