"""Patrol units as the district core sees them: profile, position, status, and who may act on what."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from processors.catalogue import Category
from processors.geography import distance_m

# Urban speeds, door to door: walking, cycling, and a patrol car in city traffic.
SPEED_M_S = {"foot": 1.4, "bike": 4.2, "car": 8.3}
FASTEST_M_S = max(SPEED_M_S.values())
# Streets are not straight lines; a typical urban grid adds about a third to the crow-fly distance.
DETOUR_FACTOR = 1.3
FEWEST_SECONDS_PER_M = DETOUR_FACTOR / FASTEST_M_S
# The fastest a unit can really move in each mode (a sprint, a bike downhill, a car on an arterial road with its
# lights on), and the jitter of a phone's position fix: a location further from the last one than these allow in
# the time between them is not believed (`implausible_location`).
TOP_SPEED_M_S = {"foot": 7.0, "bike": 15.0, "car": 40.0}
FIX_JITTER_M = 250.0


@dataclass
class Unit:
    unit_id: str
    agency: str
    kind: str  # officer | auxiliary
    home_street: str
    mode: str
    delegations: frozenset[str]
    lat: float
    lon: float
    on_duty: bool = True
    available: bool = True  # the unit's own word: `unavailable` / `available`
    order_id: str | None = None  # the one active order it holds, if any
    incident_id: str | None = None
    priority: int | None = None  # of the incident it is on
    stage: str | None = None  # assigned | acknowledged | en_route | on_scene
    located_at: datetime | None = None  # when the platform received the position lat/lon (its clock)

    @property
    def free(self) -> bool:
        return self.on_duty and self.available and self.order_id is None

    @property
    def seconds_per_m(self) -> float:
        """Door-to-door travel time per metre of crow-fly distance: what the grids weigh a unit's distance by."""
        return DETOUR_FACTOR / SPEED_M_S[self.mode]

    def eta_s(self, distance_m: float) -> float:
        return distance_m * self.seconds_per_m

    def authorities(self) -> frozenset[tuple[str, str]]:
        """The places this unit may fill, as (kind, place) keys: its own agency's, and each delegated category's.
        A dispatch for a category asks for `places_for` keys; a unit may act for it only under one of them."""
        return frozenset({(self.kind, "agency:" + self.agency)} | {(self.kind, "category:" + c) for c in self.delegations})

    def may_act_for(self, category: Category, agency: str) -> bool:
        """May this unit fill the `agency` place of a dispatch for `category`?"""
        if self.kind == "auxiliary" and not category.auxiliary_may_fill(agency):
            return False
        if self.agency == agency:
            return True
        # delegated enforcement (委托执法): the unit carries the category in its log-on
        return category.code in self.delegations


def implausible_move(unit: Unit, lat: float, lon: float, at: datetime) -> str | None:
    """Why a move of `unit` to (lat, lon), received at `at`, cannot be true; None if it can. Timed by the platform's
    clock (receipt), not the device's, which whoever sends the location sets."""
    if unit.located_at is None:
        return None
    elapsed = max(0.0, (at - unit.located_at).total_seconds())
    moved = distance_m(unit.lat, unit.lon, lat, lon)
    reach = FIX_JITTER_M + TOP_SPEED_M_S[unit.mode] * elapsed
    if moved <= reach:
        return None
    return (f"unit {unit.unit_id} ({unit.mode}) moved {moved:.0f} m in {elapsed:.1f} s; at most {reach:.0f} m "
            f"is plausible")


def places_for(category: Category, agency: str) -> tuple[tuple[str, str], ...]:
    """The authority keys (`Unit.authorities`) under which a unit may fill the `agency` place of `category`."""
    kinds = ("officer", "auxiliary") if category.auxiliary_may_fill(agency) else ("officer",)
    return tuple((kind, place) for kind in kinds for place in ("agency:" + agency, "category:" + category.code))


@dataclass
class Assignment:
    """One unit's part in an incident: the order it was given and how far it has got."""

    order_id: str
    unit_id: str
    agency: str
    role: str
    eta_s: float
    issued_at: datetime
    ack_by: datetime
    stage: str = "assigned"  # assigned | acknowledged | en_route | on_scene | resolved


STAGES = ("assigned", "acknowledged", "en_route", "on_scene", "resolved")
STAGE_OF_EVENT = {"ack": "acknowledged", "en_route": "en_route", "on_scene": "on_scene", "resolved": "resolved"}


@dataclass
class StreetLoad:
    """Open incidents and free units per street: what workload balancing looks at."""

    open_incidents: dict[str, int] = field(default_factory=dict)
    free_units: dict[str, int] = field(default_factory=dict)

    def pressure(self, street: str) -> float:
        """Open incidents per free unit, plus one (a street with none free still compares): the one formula
        of a street's workload, for balancing and for the gauge the command centre watches."""
        return self.open_incidents.get(street, 0) / (self.free_units.get(street, 0) + 1)

    def add(self, table: dict[str, int], street: str, n: int) -> None:
        value = table.get(street, 0) + n
        if value:
            table[street] = value
        else:
            table.pop(street, None)
