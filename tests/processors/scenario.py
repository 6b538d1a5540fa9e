"""A small driver for the district core in tests: builds work items with a ticking clock and keeps what came out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from processors.district import DistrictCore
from processors.messages import (
    DeadLetter,
    DispatcherCommand,
    DispatchOrder,
    Escalation,
    IncidentEvent,
    IncidentReport,
    Provenance,
    WorkItem,
    unit_event_adapter,
)

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


class Scenario:
    def __init__(self, catalogue, geography, district: str = "JINJIANG"):
        self.core = DistrictCore(district, catalogue)
        self.geography = geography
        self.district = district
        self.clock = T0
        self.offset = 0
        self.log: list[WorkItem] = []
        self.out: list = []

    # --- feeding the core ---

    def feed(self, item: WorkItem) -> list:
        self.log.append(item)
        produced = self.core.apply(item)
        self.out += produced
        return produced

    def tick(self, seconds: float = 1.0) -> None:
        """Move the test's clock on; the core learns of it with the next item."""
        self.clock += timedelta(seconds=seconds)

    def wait(self, seconds: float) -> list:
        """Let time pass: the core hears a clock tick, as the worker's ticker sends every second."""
        self.tick(seconds)
        return self.feed(WorkItem(kind="tick", district=self.district, at=self.clock))

    def _provenance(self, topic: str, key: str) -> Provenance:
        self.offset += 1
        return Provenance(topic=topic, partition=0, offset=self.offset, key=key, raw="{}")

    def report(self, report_id: str, category: str, lat: float, lon: float, source: str = "hotline") -> list:
        self.tick()
        street = self.geography.locate(lat, lon)
        report = IncidentReport(schema_version=1, report_id=report_id, source=source, category=category,
                                lat=lat, lon=lon, reported_at=self.clock)
        return self.feed(WorkItem(kind="report", district=self.district, street=street.street, at=self.clock,
                                  report=report, provenance=self._provenance("incident.reports", report_id)))

    def unit_event(self, unit_id: str, type_: str, **fields) -> list:
        self.tick()
        event = unit_event_adapter.validate_python({
            "schema_version": 1, "event_id": f"{unit_id}-{self.offset}", "unit_id": unit_id,
            "at": self.clock, "type": type_, **fields})
        return self.feed(WorkItem(kind="unit_event", district=self.district, at=self.clock, unit_event=event,
                                  provenance=self._provenance("unit.events", unit_id)))

    def log_on(self, unit_id: str, agency: str, lat: float, lon: float, *, street: str | None = None,
               mode: str = "car", kind: str = "officer", delegations: tuple[str, ...] = ()) -> list:
        street = street or self.geography.locate(lat, lon).street
        return self.unit_event(unit_id, "log_on", agency=agency, kind=kind, district=self.district,
                               home_street=street, mode=mode, delegations=list(delegations), lat=lat, lon=lon)

    def status(self, unit_id: str, type_: str, order_id: str | None = None, **fields) -> list:
        order_id = order_id or self.order_of(unit_id)
        return self.unit_event(unit_id, type_, order_id=order_id, **fields)

    def command(self, type_: str, incident_id: str, *, by: tuple[str, str] = ("li.wei", "dispatcher"),
                **fields) -> list:
        """A dispatcher command (processors/commands.py) as the command API publishes it."""
        self.tick()
        command = DispatcherCommand(schema_version=1, command_id=f"C-{self.offset + 1}", type=type_,
                                    incident_id=incident_id, by={"name": by[0], "role": by[1]},
                                    issued_at=self.clock, **fields)
        return self.feed(WorkItem(kind="command", district=self.district, at=self.clock, command=command,
                                  provenance=self._provenance("dispatch.commands", self.district)))

    def verify(self, report_id: str, outcome: str = "satisfied", **fields) -> list:
        """The complainant's answer, by the command centre's call-back."""
        return self.command("verify", self.incident_of(report_id), outcome=outcome, **fields)

    # --- reading what came out ---

    def orders(self, kind: str = "assign") -> list[DispatchOrder]:
        return [m for m in self.out if isinstance(m, DispatchOrder) and m.kind == kind]

    def events(self, type_: str | None = None, incident_id: str | None = None) -> list[IncidentEvent]:
        return [m for m in self.out if isinstance(m, IncidentEvent)
                and (type_ is None or m.type == type_) and (incident_id is None or m.incident_id == incident_id)]

    def escalations(self) -> list[Escalation]:
        return [m for m in self.out if isinstance(m, Escalation)]

    def dead_letters(self) -> list[DeadLetter]:
        return [m for m in self.out if isinstance(m, DeadLetter)]

    def order_of(self, unit_id: str) -> str:
        unit = self.core.state.units[unit_id]
        assert unit.order_id, f"{unit_id} holds no order"
        return unit.order_id

    def incident_of(self, report_id: str) -> str:
        return self.core.state.reports[report_id][0]

    def active_units(self, report_id: str) -> dict[str, str]:
        incident = self.core.state.incidents[self.incident_of(report_id)]
        return {agency: a.unit_id for agency, a in incident.active.items()}
