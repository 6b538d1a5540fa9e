"""The contract messages of docs/contracts.md as pydantic models, plus two internal ones: work item, reporter record.

They live in the core because the core's vocabulary *is* these messages: it is
handed one and returns others. Pydantic does no I/O, so the core stays pure;
``streams.operations.schemas`` exports their JSON Schema for producers in other languages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, SerializeAsAny, create_model, model_validator

from processors.event_data import DATA_OF_TYPE, EventData

SCHEMA_VERSION = 1

Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@/-]+$")]
Text = Annotated[str, Field(max_length=4000)]
ShortText = Annotated[str, Field(max_length=400)]


class Message(BaseModel):
    # Producers on a newer schema may add optional fields (the contract grows
    # only by adding), so unknown fields are ignored rather than refused.
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = Field(
        description="version of the message contract; this release reads and writes 1"
    )

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class Reporter(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    name: ShortText | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None


class IncidentReport(Message):
    """A sensor alarm, hotline ticket or patrol observation; `report_id` is the idempotency key."""

    report_id: Identifier
    source: Literal["sensor", "hotline", "patrol", "app"]
    category: Identifier
    lat: Latitude
    lon: Longitude
    reported_at: AwareDatetime
    description: Text | None = None
    address: ShortText | None = None
    reporter: Reporter | None = None
    sensor_id: Identifier | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    attributes: dict[str, Any] | None = None


# --- unit events: one model per `type`, told apart by that field ---


class _UnitEventBase(Message):
    event_id: Identifier
    unit_id: Identifier
    at: AwareDatetime


class LogOn(_UnitEventBase):
    type: Literal["log_on"]
    agency: Identifier
    kind: Literal["officer", "auxiliary"]
    district: Identifier
    home_street: Identifier
    mode: Literal["foot", "bike", "car"]
    delegations: list[Identifier] = Field(default_factory=list, max_length=200)
    lat: Latitude
    lon: Longitude


class LogOff(_UnitEventBase):
    type: Literal["log_off"]


class Location(_UnitEventBase):
    type: Literal["location"]
    lat: Latitude
    lon: Longitude


class Availability(_UnitEventBase):
    type: Literal["unavailable", "available"]


class OrderStatus(_UnitEventBase):
    type: Literal["ack", "en_route", "on_scene", "decline"]
    order_id: Identifier


class Resolved(_UnitEventBase):
    type: Literal["resolved"]
    order_id: Identifier
    outcome: ShortText | None = None
    notes: Text | None = None


UnitEvent = Annotated[
    Union[LogOn, LogOff, Location, Availability, OrderStatus, Resolved],
    Field(discriminator="type"),
]
unit_event_adapter: TypeAdapter[UnitEvent] = TypeAdapter(UnitEvent)


# --- what the district core emits ---


class DispatchOrder(Message):
    order_id: str
    kind: Literal["assign", "cancel"]
    incident_id: str
    unit_id: str
    role: Literal["lead", "support"]
    agency: str
    category: str
    priority: int
    lat: float
    lon: float
    address: str | None = None
    eta_s: float | None = None
    ack_by: datetime | None = None
    issued_at: datetime
    joint_with: list[str] = Field(default_factory=list)


IncidentEventType = Literal[
    "created",
    "report_merged",
    "dispatched",
    "acknowledged",
    "en_route",
    "on_scene",
    "resolved",
    "closed",
    "reassigned",
    "escalated",
    "cancelled",
    "queued",
    # dispatcher commands and verification (processors/commands.py, processors/verification.py)
    "command_refused",
    "escalation_acknowledged",
    "awaiting_verification",
    "reopened",
]


class IncidentEvent(Message):
    """One step of an incident's life; `data` is the payload of its `type` (processors/event_data.py). However
    it is made, from a dict or from the wire, `data` is checked against its type's model and kept as one."""

    event_id: str = Field(description="deterministic, so that replays are idempotent")
    incident_id: str
    seq: int = Field(ge=1, description="per incident, gap-free")
    type: IncidentEventType
    at: datetime
    data: SerializeAsAny[EventData] = Field(default_factory=EventData)

    @model_validator(mode="before")
    @classmethod
    def _typed_data(cls, values: Any) -> Any:
        if isinstance(values, dict) and isinstance(values.get("type"), str):
            model = DATA_OF_TYPE.get(values["type"])
            data = values.get("data")
            if model is not None and not isinstance(data, model):
                data = data.as_dict() if isinstance(data, EventData) else (data if data is not None else {})
                values = {**values, "data": model.model_validate(data)}
        return values

    def with_data(self, **more: Any) -> "IncidentEvent":
        """The same event with `more` added to its payload (checked against its type again)."""
        return type(self).model_validate({**dict(self.__dict__), "data": {**self.data.as_dict(), **more}})


def _event_of_type(type_: str, data: type[EventData]) -> type[IncidentEvent]:
    name = "".join(part.capitalize() for part in type_.split("_")) + "Event"
    return create_model(name, __base__=IncidentEvent, __doc__=f"An incident event of type `{type_}`.",
                        type=(Literal[type_], ...), data=(data, ...))  # type: ignore[call-overload]


# The contract's form of an incident event: one model per type, told apart by `type` (what `patrol schemas`
# publishes and a reader in another language generates from).
INCIDENT_EVENT_TYPES = tuple(_event_of_type(t, model) for t, model in DATA_OF_TYPE.items())
incident_event_adapter: TypeAdapter = TypeAdapter(
    Annotated[Union[INCIDENT_EVENT_TYPES], Field(discriminator="type")])  # type: ignore[valid-type]


class Escalation(Message):
    escalation_id: str
    incident_id: str
    level: Literal[1, 2, 3]
    reason: Literal["ack_overdue", "arrival_overdue", "resolve_overdue", "no_eligible_unit", "promise_overdue"]
    deadline: datetime
    at: datetime
    district: str
    street: str
    category: str


class DeadLetter(Message):
    reason: str = Field(description="a stable machine code, e.g. invalid_json, outside_area")
    error: str = Field(description="human-readable explanation")
    raw: str = Field(description="the original bytes, or their first few KiB (see raw_truncated): UTF-8 text, or "
                                 "base64 when raw_encoding says so; a reporter's name and phone masked (see raw_masked)")
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    raw_masked: bool = Field(default=False, description="personal data in raw was masked, so raw differs from the original")
    raw_truncated: bool = Field(default=False, description="raw is an excerpt: the first bytes of the original only "
                                                           "(the whole is on `topic` at `partition` and `offset`)")
    raw_length: int | None = Field(default=None, description="length of the original bytes")
    raw_sha256: str | None = Field(default=None, description="SHA-256 of the original bytes, hex")
    key: str | None = None
    topic: str
    partition: int
    offset: int
    received_at: datetime


# --- dispatcher commands (topic dispatch.commands, keyed by district) ---


class Operator(BaseModel):
    """Who gave a command: the authenticated dispatcher's account name and role (the complainant, for feedback
    through their Open311 token)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    name: Annotated[str, Field(min_length=1, max_length=128)]
    role: Literal["dispatcher", "supervisor", "complainant"]


CommandType = Literal["assign", "reassign", "cancel", "add_unit", "close", "acknowledge_escalation", "verify"]


class DispatcherCommand(Message):
    """A command-centre decision for one incident, decided by the district core (processors/commands.py)."""

    command_id: Identifier = Field(description="unique per command; stamped on every event it causes")
    type: CommandType
    incident_id: Identifier
    unit_id: Identifier | None = Field(default=None, description="assign, add_unit: the unit; reassign: the new one "
                                                                 "(none: the best free unit)")
    replaces: Identifier | None = Field(default=None, description="reassign: the unit taken off")
    escalation_id: Annotated[str, Field(max_length=200)] | None = None
    outcome: Literal["satisfied", "not_resolved"] | None = Field(
        default=None, description="verify: the complainant's answer (a call-back, or their own through Open311)")
    channel: Literal["callback", "open311"] | None = Field(default=None, description="verify: how it was heard")
    note: ShortText | None = None
    by: Operator
    issued_at: AwareDatetime


# --- the district work log (internal topic, keyed by district) ---


class Provenance(BaseModel):
    """Where a work item came from, so that a rejection deep in the core can still be dead-lettered."""

    model_config = ConfigDict(frozen=True)
    topic: str
    partition: int
    offset: int
    key: str | None = None
    raw: str = Field(description="an excerpt of the original bytes, masked (processors.dead_letters)")
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    raw_masked: bool = False
    raw_truncated: bool = False
    raw_length: int | None = None
    raw_sha256: str | None = None


class WorkItem(BaseModel):
    """One entry of a district's ordered work log: an admitted report, a unit event or a clock tick."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["report", "unit_event", "tick", "command"]
    district: str
    at: AwareDatetime = Field(description="when the platform received it: the core's only clock")
    street: str | None = None
    report: IncidentReport | None = None
    unit_event: UnitEvent | None = None
    command: DispatcherCommand | None = None
    provenance: Provenance | None = None


# --- the reporters topic (internal, keyed by report_id) ---


class ReporterRecord(BaseModel):
    """A report's reporter and its free-text description on their way from intake to the incident record: personal
    data (and the text a caller may put some in) travels this way only, on a topic of its own with a short
    retention, so that the work log and incident.events carry none of it."""

    model_config = ConfigDict(frozen=True)
    report_id: Identifier
    reporter: Reporter | None = None
    description: Text | None = None
    received_at: AwareDatetime = Field(description="when the platform received the report")


CONTRACT_MESSAGES: dict[str, Any] = {
    "IncidentReport": IncidentReport,
    "UnitEvent": unit_event_adapter,
    "DispatchOrder": DispatchOrder,
    "IncidentEvent": incident_event_adapter,
    "Escalation": Escalation,
    "DeadLetter": DeadLetter,
    "DispatcherCommand": DispatcherCommand,
}
