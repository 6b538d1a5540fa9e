"""What the field API refuses before it publishes a unit's event, and why: each a `Refusal` with an HTTP status and
the same stable reason code intake would dead-letter it with (processors/intake.py REASONS), so that a device
hears at once what the pipeline would otherwise only record. The pipeline checks again whoever publishes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from processors.geography import Geography
from processors.messages import Location, LogOn, OrderStatus, Resolved
from processors.register import UnitRegister, check_log_on
from processors.units import Unit, implausible_move


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    error: str


@dataclass
class Position:
    lat: float
    lon: float
    at: datetime
    mode: str


def refusal(event, unit_id: str, order_holder: str | None, register: UnitRegister, geography: Geography,
            last: Position | None, now: datetime) -> Refusal | None:
    """Why the unit `unit_id` (its token's) may not publish `event`; None if it may. `order_holder` is the unit the
    event's order was given to (None: no order, or one unknown), `last` the unit's last accepted position."""
    if event.unit_id != unit_id:
        return Refusal(403, "not_your_unit", f"this device is bound to unit {unit_id}, not {event.unit_id}")
    if isinstance(event, (OrderStatus, Resolved)) and order_holder != unit_id:
        return Refusal(403, "not_your_order", f"order {event.order_id} is not held by unit {unit_id}")
    if isinstance(event, LogOn):
        if event.district not in geography.districts:
            return Refusal(422, "unknown_district", f"district {event.district!r} is not served")
        refused = check_log_on(register, event, now)
        if refused is not None:
            return Refusal(409, refused.reason, refused.error)
    if isinstance(event, Location) and last is not None:
        unit = Unit(unit_id=unit_id, agency="", kind="officer", home_street="", mode=last.mode,
                    delegations=frozenset(), lat=last.lat, lon=last.lon, located_at=last.at)
        why = implausible_move(unit, event.lat, event.lon, now)
        if why is not None:
            return Refusal(422, "implausible_location", why)
    return None


def moved(event, last: Position | None, now: datetime) -> Position | None:
    """The unit's position after an accepted `event`."""
    if isinstance(event, LogOn):
        return Position(event.lat, event.lon, now, event.mode)
    if isinstance(event, Location) and last is not None:
        return Position(event.lat, event.lon, now, last.mode)
    return last
