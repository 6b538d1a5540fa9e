"""The district core: one district's incidents and units, and the decisions it makes for each entry of its work log.

Deterministic by construction: the only clock is the work item's `at`, ids are
derived from the log's content, ties are broken by id, so replaying a
district's log reproduces every decision and every emitted message byte for byte.

This module is the entry: `DistrictCore.apply` passes each work item to the role that handles it —
reports (processors/reports.py), unit events (processors/unit_events.py), dispatcher commands
(processors/commands.py) and the limits that ran out before it (processors/escalations.py, with the
verification window of processors/verification.py); they dispatch (processors/dispatch.py) by choosing units
(processors/candidates.py) and issuing orders (processors/orders.py) over the state of
processors/district_state.py and the incidents of processors/incidents.py.
"""

from __future__ import annotations

from collections.abc import Container

from processors.candidates import (  # noqa: F401  (the core's names, importable from here as before)
    BEFORE,
    CANDIDATES_EXPLAINED,
    CANDIDATES_PER_PLACE,
    CLOSEST_IDLE,
    NEAR_TIE_S,
    NEAR_TIE_SHARE,
    REACH_MARGIN_S,
    DispatchPolicy,
    candidates,
)
from processors.catalogue import Catalogue, Category
from processors.commands import on_command
from processors.district_state import DistrictState
from processors.escalations import fire_due
from processors.incidents import CLOSED_KEPT, Incident, incident_id_for  # noqa: F401
from processors.messages import Message, WorkItem
from processors.reports import RESENDS_KEPT, forget_old_reports, on_report  # noqa: F401
from processors.unit_events import on_unit_event

__all__ = [
    "BEFORE", "CANDIDATES_EXPLAINED", "CANDIDATES_PER_PLACE", "CLOSED_KEPT", "CLOSEST_IDLE", "NEAR_TIE_S", "NEAR_TIE_SHARE",
    "REACH_MARGIN_S", "RESENDS_KEPT", "DispatchPolicy", "DistrictCore", "DistrictState", "Incident",
    "incident_id_for",
]


class DistrictCore:
    """Holds one district's state; `apply` takes one work item and returns the messages to publish."""

    def __init__(self, district: str, catalogue: Catalogue, policy: DispatchPolicy = DispatchPolicy()):
        self.state = DistrictState(district=district)
        self.catalogue = catalogue
        self.policy = policy

    def apply(self, item: WorkItem) -> list[Message]:
        out: list[Message] = []
        state = self.state
        if state.now is None or item.at > state.now:
            state.now = item.at
        # limits that ran out before this item arrived are dealt with before it
        fire_due(self, state.now, out)
        forget_old_reports(state, state.now)
        if item.kind == "report" and item.report is not None:
            on_report(self, item, item.report, out)
        elif item.kind == "unit_event" and item.unit_event is not None:
            on_unit_event(self, item, out)
        elif item.kind == "command" and item.command is not None:
            on_command(self, item, out)
        return out

    def candidates(self, category: Category, agency: str, lat: float, lon: float,
                   passed_over: Container[str] = ()) -> list[tuple[float, float, str]]:
        """The free units that may fill the `agency` place of a `category` incident at (lat, lon), fastest
        first, as (eta_s, distance_m, unit_id); at most CANDIDATES_PER_PLACE, none of `passed_over`."""
        return candidates(self.state, category, agency, lat, lon, passed_over)
