"""What one district core holds — incidents, report ids, units, orders, the queue, the indexes and the clock —
and the bookkeeping that keeps the indexes right whenever a unit's status changes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from processors.deadlines import DeadlineBook
from processors.incidents import Incident
from processors.spatial import FiledGrid, Grid
from processors.units import StreetLoad, Unit


@dataclass
class DistrictState:
    district: str
    incidents: dict[str, Incident] = field(default_factory=dict)
    # report_id -> (incident_id, when it arrived, its content's fingerprint), oldest first: a resent or duplicate
    # report never becomes a second incident, and one with other content is told apart (for RESENDS_KEPT)
    reports: OrderedDict[str, tuple[str, datetime, str | None]] = field(default_factory=OrderedDict)
    units: dict[str, Unit] = field(default_factory=dict)
    grid: Grid = field(default_factory=Grid)  # every unit on duty, busy or not, weighed by its seconds per metre
    # the free units, filed under the places they may fill: what a dispatch searches
    free: FiledGrid = field(default_factory=FiledGrid)
    # order_id -> (incident_id, agency place); kept after the order ends, to tell stale events apart, until
    # its incident is forgotten (CLOSED_KEPT)
    orders: dict[str, tuple[str, str]] = field(default_factory=dict)
    # incidents with an agency place no unit could fill yet
    queue: set[str] = field(default_factory=set)
    # the open incidents, filed under their category: what a report is checked against for being another call
    open_incidents: FiledGrid = field(default_factory=FiledGrid)
    load: StreetLoad = field(default_factory=StreetLoad)
    deadlines: DeadlineBook = field(default_factory=DeadlineBook)
    # the district's clock: the latest `at` of its work log (ticks included); never read from the machine
    now: datetime | None = None


def changing(state: DistrictState, unit: Unit, change: Callable[[], object]) -> None:
    """Apply `change` to the unit, keeping the per-street count of free units and the free-unit index right."""
    was = unit.free
    change()
    if unit.free != was:
        state.load.add(state.load.free_units, unit.home_street, 1 if unit.free else -1)
    refile(state, unit)


def refile(state: DistrictState, unit: Unit) -> None:
    """File the unit in the free-unit index if it is free, take it out if not."""
    if unit.free:
        state.free.file(unit.unit_id, unit.lat, unit.lon, unit.authorities(), unit.seconds_per_m)
    else:
        state.free.remove(unit.unit_id)


def hold(unit: Unit, order_id: str, incident: Incident) -> None:
    unit.order_id, unit.incident_id, unit.priority, unit.stage = order_id, incident.incident_id, incident.priority, "assigned"


def release(state: DistrictState, unit: Unit) -> None:
    """The unit holds no order any more."""
    def clear() -> None:
        unit.order_id = unit.incident_id = unit.priority = unit.stage = None

    changing(state, unit, clear)
