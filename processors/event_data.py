"""What each type of incident event carries in its `data`: one model per type, so that an event the core writes
is checked against its type's fields when it is made, and a reader of `incident.events` learns them from the
contract's schema (a discriminated union on `type`, processors/messages.py).

Fields an earlier release did not write are optional. The contract grows by addition, so a newer writer's extra
fields are kept (not refused, not dropped). A payload also reads like the mapping it is on the wire
(`data["unit_id"]`, `data.get("reason")`), which is how the sink and the metrics, which treat every type alike,
read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    """The payload of one incident event; read-only, like the event."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def as_dict(self) -> dict[str, Any]:
        """The payload as it goes on the wire (fields not given are left out)."""
        return self.model_dump(mode="json", exclude_none=True)

    # --- read as a mapping ---
    def keys(self) -> list[str]:
        return list(self.as_dict())

    def items(self):
        return self.as_dict().items()

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, None) if key in type(self).model_fields else (self.model_extra or {}).get(key)
        return default if value is None else value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, dict):
            return self.as_dict() == other
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment] - a payload is compared, never hashed, as the dict it was

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _MISSING) is not _MISSING

    def __len__(self) -> int:
        return len(self.as_dict())

    def __iter__(self) -> Iterator[str]:  # type: ignore[override] - keys, as a mapping's iteration gives
        return iter(self.as_dict())


_MISSING = object()


class Timing(EventData):
    """What the incident is and how long it has been open: carried by the lifecycle events the KPIs read."""

    category: str | None = None
    domain: str | None = None
    priority: int | None = None
    since_created_s: float | None = None


class Created(EventData):
    report_id: str
    category: str
    priority: int
    district: str
    street: str
    lat: float
    lon: float
    domain: str | None = None
    agencies: list[str] | None = None
    source: str | None = None
    reported_at: str | None = None
    address: str | None = None


class ReportMerged(EventData):
    report_id: str
    source: str | None = None
    distance_m: float | None = None


class Dispatched(EventData):
    """The units chosen (unit, agency, role, ETA) and the candidates considered."""

    units: list[dict[str, Any]]
    candidates: list[dict[str, Any]] | None = None
    reason: str | None = None
    added: bool | None = None


class Reassigned(Dispatched):
    replaces: str | None = None


class Queued(EventData):
    reason: str | None = None
    missing_agencies: list[str] | None = None
    candidates: list[dict[str, Any]] | None = None
    by_incident: str | None = None
    unit_id: str | None = None


class Stage(Timing):
    """A unit's progress on its order: acknowledged, en route, on scene, resolved."""

    unit_id: str
    order_id: str
    agency: str | None = None
    since_order_s: float | None = None
    since_dispatch_s: float | None = None
    ack_on_time: bool | None = None
    arrive_on_time: bool | None = None
    outcome: str | None = None


class Closed(Timing):
    units: list[str] | None = None
    open_s: float | None = None
    resolve_on_time: bool | None = None
    verification: str | None = None
    channel: str | None = None
    note: str | None = None


class Cancelled(EventData):
    units: list[str] | None = None
    note: str | None = None


class Escalated(EventData):
    escalation_id: str
    level: int
    reason: str
    deadline: str | None = None
    unit_id: str | None = None


class CommandRefused(EventData):
    command: str
    reason: str
    error: str | None = None
    unit_id: str | None = None
    replaces: str | None = None
    escalation_id: str | None = None


class EscalationAcknowledged(EventData):
    escalation_id: str
    level: int | None = None
    reason: str | None = None


class AwaitingVerification(Timing):
    units: list[str] | None = None
    verify_by: str | None = None
    resolved_s: float | None = None  # from the report to the last unit's `resolved`
    resolve_on_time: bool | None = None


class Reopened(Timing):
    units: list[str] | None = None
    resolve_by: str | None = None
    channel: str | None = None


# each event type and the payload it carries (docs/contracts.md, IncidentEvent)
DATA_OF_TYPE: dict[str, type[EventData]] = {
    "created": Created,
    "report_merged": ReportMerged,
    "dispatched": Dispatched,
    "reassigned": Reassigned,
    "queued": Queued,
    "acknowledged": Stage,
    "en_route": Stage,
    "on_scene": Stage,
    "resolved": Stage,
    "closed": Closed,
    "cancelled": Cancelled,
    "escalated": Escalated,
    "command_refused": CommandRefused,
    "escalation_acknowledged": EscalationAcknowledged,
    "awaiting_verification": AwaitingVerification,
    "reopened": Reopened,
}
