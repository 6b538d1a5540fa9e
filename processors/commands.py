"""Dispatcher commands: the command centre overruling the machine, decided by the district core like any other
entry of its work log — assign a named unit, reassign, cancel, add a unit, close, acknowledge an escalation, and
enter a verification outcome.

A command that cannot be carried out changes nothing and is refused with a stable reason (REFUSALS): a
`command_refused` event on the incident, or a dead letter when there is no such incident in the district.
Every event a command causes carries who gave it (`by`: the dispatcher's name and role) and its `command_id`,
so that the audit trail says who did what. A command resent under the same id changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from processors.dead_letters import reject_item
from processors.dispatch import _send, dispatch, offer, watch_waiting
from processors.geography import distance_m
from processors.incidents import Incident, record_event
from processors.messages import DispatcherCommand, IncidentEvent, Message, WorkItem
from processors.orders import assign, withdraw
from processors.units import Unit
from processors.verification import AWAITING, BY_COMMAND, close, retire, verify

if TYPE_CHECKING:
    from processors.district import DistrictCore

# Commands that end an incident's work without its units: a supervisor's decision. (The command API enforces
# the same list at its door: streams/gateway/commands.py.)
SUPERVISOR_ONLY = frozenset({"cancel", "close"})
# An escalation of this level goes to the command centre: only a supervisor may acknowledge it.
SUPERVISOR_LEVEL = 3

REFUSALS = {
    "unknown_incident": "the district has no such incident (never, or forgotten a day after closing)",
    "incident_closed": "the incident is closed or cancelled",
    "awaiting_verification": "the incident's units have resolved it; it awaits verification, not units",
    "not_awaiting_verification": "a verification outcome for an incident that does not await one",
    "supervisor_required": "the command (or the escalation's level) needs the supervisor role",
    "not_allowed": "the complainant may only answer a verification",
    "missing_field": "a field the command type needs is missing",
    "unknown_unit": "the unit has never logged on to this district",
    "unit_off_duty": "the unit has logged off",
    "unit_unavailable": "the unit has said it is unavailable",
    "unit_busy": "the unit holds an order for another incident",
    "unit_already_on_incident": "the unit already holds an order for this incident",
    "unit_not_on_incident": "the unit to be replaced holds no order for this incident",
    "lacks_authority": "the unit may not act for the category (its agency, kind or delegations)",
    "no_open_place": "every place of the incident is filled: reassign replaces a unit, add_unit adds one",
    "unknown_escalation": "the incident has raised no such escalation",
    "already_acknowledged": "the escalation was acknowledged before",
}


class Refused(Exception):
    """A command that cannot be carried out, with its REFUSALS reason and a sentence for the operator."""

    def __init__(self, reason: str, error: str):
        super().__init__(error)
        self.reason, self.error = reason, error


def on_command(core: DistrictCore, item: WorkItem, out: list[Message]) -> None:
    command = item.command
    incident = core.state.incidents.get(command.incident_id)
    if incident is None:
        reject_item(item, "unknown_incident",
                    f"command {command.command_id}: no incident {command.incident_id} in {core.state.district}", out)
        return
    if command.command_id in incident.commands:
        return  # a resend: decided before
    incident.commands.append(command.command_id)
    start = len(out)
    try:
        _authorised(command)
        HANDLERS[command.type](core, incident, command, item.at, out)
    except Refused as refusal:
        # every check is made before anything changes, so a refusal leaves nothing half done
        del out[start:]
        record_event(incident, "command_refused", item.at, out, {
            "command": command.type, "reason": refusal.reason, "error": refusal.error,
            **{k: v for k, v in (("unit_id", command.unit_id), ("replaces", command.replaces),
                                 ("escalation_id", command.escalation_id)) if v}})
    _stamp(out, start, command)


def _authorised(command: DispatcherCommand) -> None:
    role = command.by.role
    if role == "complainant" and command.type != "verify":
        raise Refused("not_allowed", f"a complainant may not {command.type}")
    if command.type in SUPERVISOR_ONLY and role != "supervisor":
        raise Refused("supervisor_required", f"{command.type} needs a supervisor; {command.by.name} is a {role}")


def _stamp(out: list[Message], start: int, command: DispatcherCommand) -> None:
    """Every incident event the command caused names who gave it (events are immutable: replaced by stamped copies)."""
    stamp = {"command_id": command.command_id, "by": command.by.model_dump()}
    for i in range(start, len(out)):
        if isinstance(out[i], IncidentEvent):
            out[i] = out[i].with_data(**stamp)


# ----------------------------------------------------------------------------- checks


def _workable(incident: Incident) -> None:
    """Units may be sent to it: open, and not resolved already."""
    if not incident.is_open:
        raise Refused("incident_closed", f"{incident.incident_id} is {incident.status}")
    if incident.status == AWAITING:
        raise Refused("awaiting_verification", f"{incident.incident_id} awaits verification")


def _usable(core: DistrictCore, incident: Incident, unit_id: str | None) -> Unit:
    """The named unit, free to be sent."""
    if unit_id is None:
        raise Refused("missing_field", "unit_id is required")
    unit = core.state.units.get(unit_id)
    if unit is None:
        raise Refused("unknown_unit", f"unit {unit_id} has never logged on to {core.state.district}")
    if not unit.on_duty:
        raise Refused("unit_off_duty", f"unit {unit_id} is off duty")
    if unit.incident_id == incident.incident_id:
        raise Refused("unit_already_on_incident", f"unit {unit_id} already holds {unit.order_id}")
    if unit.order_id is not None:
        raise Refused("unit_busy", f"unit {unit_id} holds {unit.order_id} for {unit.incident_id}")
    if not unit.available:
        raise Refused("unit_unavailable", f"unit {unit_id} has said it is unavailable")
    return unit


def _may_fill(unit: Unit, incident: Incident, agencies: list[str]) -> list[str]:
    fillable = [a for a in agencies if unit.may_act_for(incident.category, a)]
    if not fillable:
        raise Refused("lacks_authority", f"unit {unit.unit_id} ({unit.kind}, {unit.agency}) may not act for "
                                         f"{incident.category.code} as {' or '.join(agencies)}")
    return fillable


def _eta(unit: Unit, incident: Incident) -> float:
    return unit.eta_s(distance_m(unit.lat, unit.lon, incident.lat, incident.lon))


def _send_named(core: DistrictCore, incident: Incident, agency: str, unit: Unit, at: datetime,
                out: list[Message], replaces: str | None = None) -> None:
    """The named unit takes the agency place, as a dispatch would send it; the queue and clocks follow."""
    # chosen by a person: the one the dispatcher named may be one the machine had excluded
    incident.excluded.discard(unit.unit_id)
    _send(core, incident, [(agency, unit, _eta(unit, incident))], [], at, out, reason="dispatcher",
          replaces=replaces)
    if not incident.missing():
        core.state.queue.discard(incident.incident_id)
    watch_waiting(core, incident, at)


# ----------------------------------------------------------------------------- the commands


def _assign(core: DistrictCore, incident: Incident, command: DispatcherCommand, at: datetime,
            out: list[Message]) -> None:
    """A named unit takes an empty place of the incident."""
    _workable(incident)
    unit = _usable(core, incident, command.unit_id)
    missing = incident.missing()
    if not missing:
        raise Refused("no_open_place", f"every place of {incident.incident_id} is filled")
    _send_named(core, incident, _may_fill(unit, incident, missing)[0], unit, at, out)


def _add_unit(core: DistrictCore, incident: Incident, command: DispatcherCommand, at: datetime,
              out: list[Message]) -> None:
    """One more unit for the incident: an empty place if it may fill one, else a support place of its own."""
    _workable(incident)
    unit = _usable(core, incident, command.unit_id)
    fillable = [a for a in incident.missing() if unit.may_act_for(incident.category, a)]
    if fillable:
        _send_named(core, incident, fillable[0], unit, at, out)
        return
    agency = _may_fill(unit, incident, list(incident.category.agencies))[0]
    incident.excluded.discard(unit.unit_id)
    order = assign(core.state, core.catalogue, incident, agency, unit, _eta(unit, incident), at,
                   place=f"{agency}+{unit.unit_id}")
    team = sorted(a.unit_id for a in incident.active.values())
    out.append(order.model_copy(update={"joint_with": [u for u in team if u != unit.unit_id]}))
    record_event(incident, "dispatched", at, out, {
        "units": [{"unit_id": unit.unit_id, "agency": agency, "role": order.role, "order_id": order.order_id,
                   "eta_s": order.eta_s}], "reason": "dispatcher", "added": True})


def _reassign(core: DistrictCore, incident: Incident, command: DispatcherCommand, at: datetime,
              out: list[Message]) -> None:
    """The unit `replaces` is taken off; its place goes to `unit_id`, or (none named) to the best free unit."""
    _workable(incident)
    if command.replaces is None:
        raise Refused("missing_field", "replaces (the unit taken off) is required")
    places = [p for p, a in incident.active.items() if a.unit_id == command.replaces]
    if not places:
        raise Refused("unit_not_on_incident", f"unit {command.replaces} holds no order for {incident.incident_id}")
    place = places[0]
    agency, extra = incident.active[place].agency, place != incident.active[place].agency
    new = None
    if command.unit_id is not None:
        new = _usable(core, incident, command.unit_id)
        _may_fill(new, incident, [agency])
    state = core.state
    old = state.units[command.replaces]
    withdraw(state, old, incident, at, out, exclude=True)
    if new is not None and not extra:
        _send_named(core, incident, agency, new, at, out, replaces=old.unit_id)
    elif new is not None:  # a support place a dispatcher had added: the new unit gets one of its own
        _add_unit(core, incident, command, at, out)
    else:
        dispatch(core, incident, at, out, reason="dispatcher", replaces=old.unit_id)
    offer(core, old, at, out)


def _cancel(core: DistrictCore, incident: Incident, command: DispatcherCommand, at: datetime,
            out: list[Message]) -> None:
    """Supervisor: the incident needs no work (a false alarm, a matter for another body); its units go free."""
    if not incident.is_open:
        raise Refused("incident_closed", f"{incident.incident_id} is {incident.status}")
    freed = _withdraw_all(core, incident, at, out)
    retire(core, incident, at)
    record_event(incident, "cancelled", at, out, {"units": freed, "note": command.note} if command.note
                 else {"units": freed})
    _offer_all(core, freed, at, out)


def _close(core: DistrictCore, incident: Incident, command: DispatcherCommand, at: datetime,
           out: list[Message]) -> None:
    """Supervisor: the incident is closed now, whatever its units or verification stand at."""
    if not incident.is_open:
        raise Refused("incident_closed", f"{incident.incident_id} is {incident.status}")
    freed = _withdraw_all(core, incident, at, out)
    close(core, incident, at, out, verification=BY_COMMAND, **({"note": command.note} if command.note else {}))
    _offer_all(core, freed, at, out)


def _acknowledge(core: DistrictCore, incident: Incident, command: DispatcherCommand, at: datetime,
                 out: list[Message]) -> None:
    """The command centre has seen an escalation and taken it on: it leaves the action list."""
    wanted = command.escalation_id
    if wanted is None:
        raise Refused("missing_field", "escalation_id is required")
    raised = {f"{incident.incident_id}:L{level}:{reason}": (level, reason) for level, reason in incident.raised}
    if wanted not in raised:
        raise Refused("unknown_escalation", f"{incident.incident_id} raised no {wanted}")
    if wanted in incident.acknowledged:
        raise Refused("already_acknowledged", f"{wanted} was acknowledged before")
    level, reason = raised[wanted]
    if level >= SUPERVISOR_LEVEL and command.by.role != "supervisor":
        raise Refused("supervisor_required", f"a level-{level} escalation is acknowledged by a supervisor")
    incident.acknowledged.append(wanted)
    record_event(incident, "escalation_acknowledged", at, out,
                 {"escalation_id": wanted, "level": level, "reason": reason})


def _verify(core: DistrictCore, incident: Incident, command: DispatcherCommand, at: datetime,
            out: list[Message]) -> None:
    """The complainant's answer: a call-back's outcome entered by the command centre, or their own."""
    if command.outcome is None:
        raise Refused("missing_field", "outcome (satisfied or not_resolved) is required")
    if incident.status != AWAITING:
        raise Refused("not_awaiting_verification", f"{incident.incident_id} is {incident.status}")
    channel = command.channel or ("open311" if command.by.role == "complainant" else "callback")
    verify(core, incident, command.outcome, channel, at, out)


def _withdraw_all(core: DistrictCore, incident: Incident, at: datetime, out: list[Message]) -> list[str]:
    freed = []
    for assignment in sorted(incident.active.values(), key=lambda a: a.order_id):
        unit = core.state.units[assignment.unit_id]
        withdraw(core.state, unit, incident, at, out, exclude=False)
        freed.append(unit.unit_id)
    return freed


def _offer_all(core: DistrictCore, unit_ids: list[str], at: datetime, out: list[Message]) -> None:
    for unit_id in unit_ids:
        offer(core, core.state.units[unit_id], at, out)


HANDLERS = {"assign": _assign, "add_unit": _add_unit, "reassign": _reassign, "cancel": _cancel, "close": _close,
            "acknowledge_escalation": _acknowledge, "verify": _verify}
