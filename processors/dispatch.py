"""Dispatching: filling an incident's empty agency places with the units chosen for them, pre-empting for
priority 1, queueing what cannot be filled yet, and offering a freed unit to the queue.

Every function takes the district core (its state, catalogue and policy) and appends what it decides to `out`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from processors.candidates import CANDIDATES_EXPLAINED, pick, preempt_choice, preemptable, queue_order, rank, reach_order
from processors.incidents import Incident, record_event
from processors.messages import Message
from processors.orders import assign, withdraw
from processors.units import Unit

if TYPE_CHECKING:
    from processors.district import DistrictCore


def dispatch(core: DistrictCore, incident: Incident, at: datetime, out: list[Message], *,
             reason: str | None = None, replaces: str | None = None) -> None:
    """Fill every empty agency place of `incident` with the best free unit, or queue what cannot be filled.

    `reason` / `replaces` say why a place is being filled again (a decline, a log-off, …),
    which makes the event a `reassigned` rather than a `dispatched`.
    """
    state = core.state
    chosen, explained, bumped = _choose(core, incident, at, out)
    if chosen:
        _send(core, incident, chosen, explained, at, out, reason=reason, replaces=replaces)

    for other, unit_id in bumped:
        # now that the unit holds its new order, the bumped task may find another free unit
        dispatch(core, other, at, out, reason="preempted", replaces=unit_id)

    missing = incident.missing()
    if missing and incident.incident_id not in state.queue:
        state.queue.add(incident.incident_id)
        record_event(incident, "queued", at, out, {
            "missing_agencies": missing, "reason": reason or "no_eligible_unit", "candidates": explained})
    elif not missing:
        state.queue.discard(incident.incident_id)
    watch_waiting(core, incident, at)


def _choose(core: DistrictCore, incident: Incident, at: datetime, out: list[Message]):
    """The unit for each empty place as (agency, unit, eta), the candidates weighed (to explain the choice), and
    the tasks a unit was pulled off for this incident (already withdrawn)."""
    state = core.state
    chosen: list[tuple[str, Unit, float]] = []
    explained: list[dict] = []
    taken: set[str] = set()
    bumped: list[tuple[Incident, str]] = []
    for agency in incident.missing():
        ranking = rank(state, incident, agency, taken)
        explained += [
            {"unit_id": uid, "agency": agency, "eta_s": round(eta, 1),
             "street": state.units[uid].home_street,
             "street_pressure": round(state.load.pressure(state.units[uid].home_street), 3)}
            for eta, _, uid in ranking[:CANDIDATES_EXPLAINED]
        ]
        policy = core.policy
        chosen_one = pick(state, core.catalogue, policy, ranking, incident, at)
        if incident.priority == 1 and policy.preempt and (chosen_one is None or policy.preempt_margin_s is not None):
            # with no free unit any lesser task may give way; with one at hand, a task from `preempt_margin_from`
            busy_from = 2 if chosen_one is None else policy.preempt_margin_from
            busy = preempt_choice(chosen_one, preemptable(state, incident, agency, taken, policy.preempt_on_scene_from,
                                                          busy_from), policy.preempt_margin_s)
            if busy is not None:
                chosen_one = busy
                bumped.append(preempt(core, state.units[busy[1]], incident, at, out))
        if chosen_one is not None:
            eta, unit_id = chosen_one
            taken.add(unit_id)
            chosen.append((agency, state.units[unit_id], eta))
    return chosen, explained, bumped


def _send(core: DistrictCore, incident: Incident, chosen: list[tuple[str, Unit, float]], explained: list[dict],
          at: datetime, out: list[Message], *, reason: str | None, replaces: str | None) -> None:
    """Issue the chosen units' orders, each naming its team, and tell the incident's story."""
    state = core.state
    orders = [assign(state, core.catalogue, incident, agency, unit, eta, at) for agency, unit, eta in chosen]
    incident.bumped = False  # back on the road: no longer ahead of its priority's queue
    team = sorted(a.unit_id for a in incident.active.values())
    for order in orders:
        out.append(order.model_copy(update={"joint_with": [u for u in team if u != order.unit_id]}))
    data = {
        "units": [{"unit_id": o.unit_id, "agency": o.agency, "role": o.role, "order_id": o.order_id,
                   "eta_s": o.eta_s} for o in orders],
        "candidates": explained,
    }
    if reason:
        data["reason"] = reason
    if replaces:
        data["replaces"] = replaces
    record_event(incident, "reassigned" if replaces else "dispatched", at, out, data)
    if incident.first_dispatched_at is None:
        incident.first_dispatched_at = at
        incident.arrive_by = core.catalogue.deadline(incident.category, at, incident.category.sla.arrive_s)
        state.deadlines.set(("arrive", incident.incident_id), incident.arrive_by)


def watch_waiting(core: DistrictCore, incident: Incident, at: datetime) -> None:
    """Start or stop the clocks of an incident that has nobody on it at all."""
    book, sla = core.state.deadlines, incident.category.sla
    if incident.active or not incident.is_open:
        incident.waiting_since = None
        book.drop(("waiting", incident.incident_id, 2))
        book.drop(("waiting", incident.incident_id, 3))
    elif incident.waiting_since is None:
        incident.waiting_since = at
        book.set(("waiting", incident.incident_id, 2), core.catalogue.deadline(incident.category, at, sla.ack_s))
        book.set(("waiting", incident.incident_id, 3),
                 core.catalogue.deadline(incident.category, at, sla.arrive_s))


def preempt(core: DistrictCore, unit: Unit, by: Incident, at: datetime, out: list[Message]) -> tuple[Incident, str]:
    """Pull `unit` off its lower-priority task for `by`; that task is re-queued, and says so."""
    state = core.state
    bumped = state.incidents[unit.incident_id]
    agency = withdraw(state, unit, bumped, at, out, exclude=False)
    bumped.bumped = True
    state.queue.add(bumped.incident_id)
    record_event(bumped, "queued", at, out, {
        "reason": "preempted", "by_incident": by.incident_id, "unit_id": unit.unit_id,
        "missing_agencies": [agency]})
    return bumped, unit.unit_id


def offer(core: DistrictCore, unit: Unit, at: datetime, out: list[Message]) -> None:
    """A unit has come free: it takes over a priority-1 place it reaches much sooner than the unit on its way
    there, or else queued incidents it could serve are dispatched again, most urgent first."""
    take_over(core, unit, at, out)
    state = core.state
    incidents = state.incidents
    policy = core.policy
    if policy.queue_by_reach:
        def order(i: str) -> tuple:
            return reach_order(core.catalogue, unit, incidents[i], at, policy)
    else:
        def order(i: str) -> tuple:
            return queue_order(policy, incidents[i], at)
    for incident_id in sorted(state.queue, key=order):
        if not unit.free:
            return
        incident = state.incidents[incident_id]
        if unit.unit_id in incident.excluded:
            continue
        if any(unit.may_act_for(incident.category, a) for a in incident.missing()):
            dispatch(core, incident, at, out, reason="unit_available")


def replace(core: DistrictCore, unit: Unit, at: datetime, out: list[Message], reason: str) -> None:
    """The unit drops its task (declined, logged off): cancel its order and fill its place again."""
    incident = core.state.incidents[unit.incident_id]
    withdraw(core.state, unit, incident, at, out, exclude=True)
    dispatch(core, incident, at, out, reason=reason, replaces=unit.unit_id)


# Only priority-1 incidents this close (in the freed unit's travel time) are looked at for a take-over.
TAKE_OVER_WITHIN_S = 15 * 60.0
TAKE_OVER_LOOKED_AT = 4
EN_ROUTE_STAGES = ("assigned", "acknowledged", "en_route")


def take_over(core: DistrictCore, unit: Unit, at: datetime, out: list[Message]) -> None:
    """A unit come free takes a priority-1 place from a unit still on its way there, if it arrives at least
    `take_over_margin_s` sooner than that unit's remaining travel; the unit relieved is offered work in turn."""
    policy, state = core.policy, core.state
    if policy.take_over_margin_s is None or not unit.free:
        return
    codes = tuple(c.code for c in core.catalogue.categories
                  if c.priority == 1 and any(unit.may_act_for(c, a) for a in c.agencies))
    if not codes:
        return
    within_m = TAKE_OVER_WITHIN_S / unit.seconds_per_m
    for _, distance, incident_id in state.open_incidents.nearest(codes, unit.lat, unit.lon, TAKE_OVER_LOOKED_AT,
                                                                   1.0, within_m=within_m):
        incident = state.incidents[incident_id]
        if unit.unit_id in incident.excluded:
            continue
        eta = unit.eta_s(distance)
        for agency, assignment in sorted(incident.active.items()):
            remaining = assignment.eta_s - (at - assignment.issued_at).total_seconds()
            if (assignment.stage in EN_ROUTE_STAGES and unit.may_act_for(incident.category, agency)
                    and remaining >= eta + policy.take_over_margin_s):
                relieved = state.units[assignment.unit_id]
                withdraw(state, relieved, incident, at, out, exclude=False)
                _send(core, incident, [(agency, unit, eta)], [], at, out, reason="faster_unit",
                      replaces=relieved.unit_id)
                offer(core, relieved, at, out)
                return
