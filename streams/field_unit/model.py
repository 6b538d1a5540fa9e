"""The field unit's state, with no I/O: the stages of an order, what each key means and when it is refused, the
orders held (`FieldUnit`, changed only by orders read and events sent or read back), and the log_on event built
from the command line. Everything the terminal shows or sends is decided here."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import TypeAdapter, ValidationError

from processors.messages import (
    SCHEMA_VERSION,
    DispatchOrder,
    Identifier,
    LogOff,
    LogOn,
    OrderStatus,
    Resolved,
    UnitEvent,
)

STAGES = ("assigned", "acknowledged", "en_route", "on_scene", "resolved")
STAGE_LABEL = {s: s.replace("_", " ") for s in STAGES}
_RANK = {s: i for i, s in enumerate(STAGES)}

HELP = "a acknowledge  e en route  s on scene  r resolved  d decline  l log off  q quit"


@dataclass(frozen=True)
class _Action:
    event_type: str
    verb: str
    # The unit's lifecycle is ack → en route → on scene → resolved (docs/contracts.md);
    # the terminal refuses steps out of that order so the district core never
    # has to guess what a skipped step meant. Walking up to an incident one is
    # already at (no en route) is real, so on scene may follow ack directly.
    allowed_from: tuple[str, ...]
    refusal: str


_ACTIONS = {
    "a": _Action("ack", "acknowledge", ("assigned",), "{order} is already {stage}"),
    "e": _Action("en_route", "set en route", ("acknowledged",), "{order} is {stage}: acknowledge (a) before en route"),
    "s": _Action("on_scene", "set on scene", ("acknowledged", "en_route"),
                 "{order} is {stage}: acknowledge (a) before on scene"),
    "r": _Action("resolved", "resolve", ("on_scene",), "{order} is {stage}: set on scene (s) before resolving"),
    "d": _Action("decline", "decline", ("assigned", "acknowledged", "en_route"),
                 "{order} is {stage}: resolve (r) it rather than decline"),
}
_EVENT_STAGE = {"ack": "acknowledged", "en_route": "en_route", "on_scene": "on_scene"}
_STAGE_REFUSALS = {  # a refusal worded for an order that has already gone past the step
    ("a", "en_route"): "{order} is already {stage}",
    ("a", "on_scene"): "{order} is already {stage}",
    ("e", "en_route"): "{order} is already {stage}",
    ("e", "on_scene"): "{order} is already {stage}",
    ("s", "on_scene"): "{order} is already {stage}",
}

_unit_id_adapter: TypeAdapter[str] = TypeAdapter(Identifier)


def validate_unit_id(unit_id: str) -> str:
    """The unit id as the contract allows it (it becomes the key and part of every event id)."""
    try:
        return _unit_id_adapter.validate_python(unit_id)
    except ValidationError as exc:
        raise ValueError(f"unit id {unit_id!r}: {_first_error(exc)}") from None


def new_event_id(unit_id: str) -> str:
    # unit id prefix keeps ids readable in the audit log; truncated so the id stays a valid Identifier
    return f"{unit_id[:100]}-{uuid.uuid4().hex[:12]}"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class HeldOrder:
    order: DispatchOrder
    stage: str
    seq: int  # arrival order on dispatch.orders: the newest active order is the current one


@dataclass(frozen=True)
class Press:
    """What one key did: the event to publish (None: nothing to send), what to tell the officer, whether to exit."""

    event: UnitEvent | None
    message: str
    exit: bool = False


@dataclass(frozen=True)
class LogLine:
    at: datetime
    text: str
    level: str = "info"  # info | warning


@dataclass
class FieldUnit:
    """One unit's view of its work, changed only by orders read and events sent or read back; no I/O."""

    unit_id: str
    orders: dict[str, HeldOrder] = field(default_factory=dict)
    profile: LogOn | None = None
    status: str = "assumed logged on"
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=50))
    # Orders finished (resolved, declined, cancelled) stay remembered so that a
    # replay of dispatch.orders from the beginning does not resurrect them.
    closed: dict[str, str] = field(default_factory=dict)
    # Progress read back from unit.events for an order not yet read from
    # dispatch.orders (the two topics are read side by side, in no fixed order).
    early: dict[str, str] = field(default_factory=dict)
    own_event_ids: set[str] = field(default_factory=set)
    _seq: int = 0

    # -- queries --

    @property
    def current(self) -> HeldOrder | None:
        return max(self.orders.values(), key=lambda h: h.seq, default=None)

    @property
    def others(self) -> list[HeldOrder]:
        current = self.current
        return sorted((h for h in self.orders.values() if h is not current), key=lambda h: -h.seq)

    def note(self, text: str, level: str = "info", at: datetime | None = None) -> None:
        self.log.append(LogLine(at or utc_now(), text, level))

    # -- inputs --

    def apply_order(self, order: DispatchOrder, at: datetime | None = None) -> str | None:
        """Take one record of dispatch.orders; returns what the officer is told (None: nothing new)."""
        oid = order.order_id
        if order.unit_id != self.unit_id:
            message = f"ignored order {oid}: addressed to {order.unit_id}, not {self.unit_id}"
            self.note(message, "warning", at)
            return message
        if order.kind == "cancel":
            self.closed[oid] = "cancelled"
            self.early.pop(oid, None)
            if self.orders.pop(oid, None) is None:
                return None  # nothing on screen to take away (e.g. already resolved here)
            message = f"order {oid} cancelled by command centre"
            self.note(message, "warning", at)
            return message
        if oid in self.closed:
            return None  # a replayed order this unit has already finished
        held = self.orders.get(oid)
        if held is not None:
            held.order = order  # a re-issue (e.g. new ETA): keep the progress made
            message = f"order {oid} updated"
        else:
            self._seq += 1
            self.orders[oid] = HeldOrder(order, self.early.pop(oid, "assigned"), self._seq)
            where = order.address or f"{order.lat:.5f}, {order.lon:.5f}"
            message = f"new order {oid}: {order.category} P{order.priority} {order.role} at {where}"
        self.note(message, "info", at)
        return message

    def press(self, key: str, at: datetime | None = None, event_id: Callable[[str], str] = new_event_id) -> Press:
        """What `key` means now. Changes nothing: the caller publishes the event, then applies it."""
        key = key.lower()
        at = at or utc_now()
        if key == "q":
            return Press(None, "terminal closed (no event sent)", exit=True)
        if key == "l":
            event = LogOff(schema_version=SCHEMA_VERSION, event_id=event_id(self.unit_id), unit_id=self.unit_id,
                           at=at, type="log_off")
            return Press(event, f"{self.unit_id} logged off", exit=True)
        action = _ACTIONS.get(key)
        if action is None:
            return Press(None, f"unknown key {key!r} — {HELP}")
        held = self.current
        if held is None:
            return Press(None, f"no current order to {action.verb}")
        oid = held.order.order_id
        if held.stage not in action.allowed_from:
            refusal = _STAGE_REFUSALS.get((key, held.stage), action.refusal)
            return Press(None, refusal.format(order=oid, stage=STAGE_LABEL[held.stage]))
        common = dict(schema_version=SCHEMA_VERSION, event_id=event_id(self.unit_id), unit_id=self.unit_id, at=at,
                      order_id=oid)
        if action.event_type == "resolved":
            return Press(Resolved(type="resolved", outcome="resolved", **common), f"resolved {oid}")
        event = OrderStatus(type=action.event_type, **common)
        done = {"ack": "acknowledged", "en_route": "en route to", "on_scene": "on scene at", "decline": "declined"}
        return Press(event, f"{done[action.event_type]} {oid}")

    def apply_event(self, event: UnitEvent) -> None:
        """Take one of this unit's events — just sent, or read back from unit.events. Applying twice is harmless."""
        if event.type == "log_on":
            self.profile, self.status = event, "logged on"
        elif event.type == "log_off":
            self.status = "logged off"
        elif event.type in ("resolved", "decline"):
            self.closed[event.order_id] = event.type
            self.orders.pop(event.order_id, None)
            self.early.pop(event.order_id, None)
        elif event.type in _EVENT_STAGE:
            stage = _EVENT_STAGE[event.type]
            held = self.orders.get(event.order_id)
            if held is not None:
                # forward only: a read-back of an older step must not undo a newer one
                if _RANK[stage] > _RANK[held.stage]:
                    held.stage = stage
            elif event.order_id not in self.closed:
                if _RANK[stage] > _RANK[self.early.get(event.order_id, "assigned")]:
                    self.early[event.order_id] = stage

    def read_back(self, event: UnitEvent) -> None:
        """An event of this unit read back (the field API's `progress`): ours from this session, or history to
        restore from."""
        self.apply_event(event)
        if event.event_id not in self.own_event_ids:
            order = getattr(event, "order_id", None)
            self.note(f"restored: {event.type}" + (f" {order}" if order else ""))


def build_log_on(unit_id: str, *, agency: str | None, kind: str, street: str | None, mode: str,
                 lat: float | None, lon: float | None, district: str, delegations: list[str] | None,
                 at: datetime | None = None) -> LogOn:
    """The log_on event for the command-line profile; ValueError names what is missing or wrong."""
    missing = [name for name, value in (("--agency", agency), ("--street", street), ("--lat", lat), ("--lon", lon))
               if value is None]
    if missing:
        raise ValueError(f"--log-on needs {', '.join(missing)}")
    try:
        return LogOn(schema_version=SCHEMA_VERSION, event_id=new_event_id(unit_id), unit_id=unit_id,
                     at=at or utc_now(), type="log_on", agency=agency, kind=kind, district=district,
                     home_street=street, mode=mode, delegations=delegations or [], lat=lat, lon=lon)
    except ValidationError as exc:
        raise ValueError(f"log_on: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "value"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg')}{more}"
