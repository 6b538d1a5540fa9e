"""The simulated field units: the one crew model that answers dispatch orders for `patrol up`, `patrol simulate`
and the benchmark's offline day.

`Crew` decides, in simulated seconds, what each officer does with an order: acknowledge (or not, or decline),
set off, travel at their mode's speed × the core's detour factor from where they really are, report their
position and arrival, handle the matter for a time drawn from its category's distribution, and resolve it.
Every random draw is keyed by what it is about (the order id, the incident), not by the order of play, so
two policies, or a live run and an offline run of the same seed, meet the same officers.

`FieldCrew` is the same crew on the wall clock of a compressed day: it feeds `Crew` the simulated time
(wall seconds × the speed-up) and hands back the due events as unit-event records for Kafka.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from dataclasses import dataclass
from datetime import datetime

from processors.catalogue import Catalogue, Category
from processors.geography import distance_m
from processors.units import DETOUR_FACTOR, SPEED_M_S

# Time on scene by category, in simulated seconds: (median, log-normal sigma). Why each is what it is:
# - a fight: separate the parties, first aid, names and statements (~30 min; whoever is taken in is booked at the
#   station by others); an assault: the same and the victim's account, often waiting for the ambulance (~40 min);
# - theft: the victim's statement and the scene (~30 min); a missing person: a first search and a description
#   circulated, then the case goes to investigators (~45 min);
# - a drunk or a dispute: talked down or taken home within ~20 min; noise: a warning at the door (~10 min);
# - a traffic accident: photographs, the drivers' details, clearing the lane or waiting for the tow (~35 min);
#   a jam or an obstacle: directing traffic until it clears (~25 min); a dead signal: manual control until the
#   technicians arrive (~40 min); illegal parking, e-bikes, moto-taxis: a ticket or a warning (~8-12 min);
# - street vending, frontage, barbecue: a warning and the stall moved on (~15 min); garbage, bicycles,
#   fly-posting, adverts: photographed and passed on, or cleared (~10-20 min); a broken light, a loose manhole:
#   the spot secured and the utility called (~20-30 min); a building site: permits checked (~30 min);
# - emergencies (a crowd, a suspicious package, a flood, a collapse): a cordon held until specialists take over
#   (~60-90 min).
# The spread (sigma 0.5) puts the 90th percentile near twice the median: some matters drag on.
HANDLING_S: dict[str, tuple[float, float]] = {
    "PS-FIGHT": (1800, 0.5), "PS-ASSAULT": (2400, 0.5), "PS-THEFT": (1800, 0.5), "PS-MISSING": (2700, 0.5),
    "PS-DRUNK": (1200, 0.5), "PS-DISPUTE": (1200, 0.5), "PS-NOISE": (600, 0.5),
    "TR-ACCIDENT": (2100, 0.5), "TR-JAM": (1500, 0.5), "TR-OBSTACLE": (1500, 0.5), "TR-SIGNAL": (2400, 0.5),
    "TR-PARKING": (480, 0.5), "TR-EBIKE": (600, 0.5), "TR-MOTOTAXI": (720, 0.5),
    "CM-VENDING": (900, 0.5), "CM-FRONTAGE": (900, 0.5), "CM-BBQ": (900, 0.5), "CM-GARBAGE": (1200, 0.5),
    "CM-BIKES": (900, 0.5), "CM-FLYPOST": (600, 0.5), "CM-ADVERT": (900, 0.5), "CM-LIGHT": (1200, 0.5),
    "CM-MANHOLE": (1800, 0.5), "CM-BUILD": (1800, 0.5), "CM-NOISE": (900, 0.5), "CM-MUCK": (1800, 0.5),
    "EM-CROWD": (5400, 0.5), "EM-PACKAGE": (3600, 0.5), "EM-FLOOD": (5400, 0.5), "EM-COLLAPSE": (5400, 0.5),
}


# the crew's note on an event that carries no order id of its own (a position report) saying which order it is for
FOR_ORDER = "_for_order"


@dataclass(frozen=True)
class CrewHabits:
    """How the simulated officers behave (simulated seconds and probabilities)."""

    ack_median_s: float = 25.0
    never_ack: float = 0.02
    decline: float = 0.03
    drop_out: float = 0.005  # logs off in the middle of a task
    # a category HANDLING_S does not know: a quarter of its resolve limit, as a rough guess
    handle_share_of_limit: float = 0.25
    handle_cap_s: float = 5400.0
    silent_for_s: float = 900.0  # how long a unit that missed an order stays out of reach

    def ack_s(self, rnd: random.Random) -> float:
        """How long an officer takes to acknowledge an order (one draw from `rnd`)."""
        return rnd.lognormvariate(math.log(self.ack_median_s), 0.6)

    def handle_s(self, rnd: random.Random, category: Category | None) -> float:
        """How long handling an incident of `category` takes on scene (one draw from `rnd`): HANDLING_S."""
        if category is not None and category.code in HANDLING_S:
            median, sigma = HANDLING_S[category.code]
        else:
            limit = category.sla.resolve_s if category else 3600.0
            median, sigma = max(60.0, limit * self.handle_share_of_limit), 0.5
        return min(self.handle_cap_s, rnd.lognormvariate(math.log(median), sigma))


@dataclass
class CrewUnit:
    unit_id: str
    mode: str
    lat: float
    lon: float
    on_duty: bool = False


@dataclass(frozen=True)
class OrderView:
    """What an officer reads on an order (from a DispatchOrder, or its JSON on the wire)."""

    kind: str
    order_id: str
    unit_id: str
    incident_id: str
    category: str
    lat: float
    lon: float
    ack_window_s: float  # ack_by - issued_at

    @classmethod
    def of(cls, order) -> "OrderView":
        if isinstance(order, dict):
            get = order.get
        else:
            def get(name, default=None):
                return getattr(order, name, default)
        ack_by, issued = get("ack_by"), get("issued_at")
        if isinstance(ack_by, str):
            ack_by = datetime.fromisoformat(ack_by)
        if isinstance(issued, str):
            issued = datetime.fromisoformat(issued)
        window = (ack_by - issued).total_seconds() if ack_by and issued else 0.0
        return cls(get("kind"), get("order_id"), get("unit_id"), get("incident_id") or get("order_id"),
                   get("category") or "", get("lat") or 0.0, get("lon") or 0.0, window)


class Crew:
    """The field units in simulated seconds (see the module docstring)."""

    def __init__(self, catalogue: Catalogue, seed: int, habits: CrewHabits = CrewHabits()):
        self.catalogue = catalogue
        self.seed = seed
        self.habits = habits
        self.units: dict[str, CrewUnit] = {}
        self.cancelled: set[str] = set()
        self.ack_pending: dict[str, float] = {}  # order id -> when its acknowledgement is due to be sent

    def draws(self, order_id: str) -> random.Random:
        return random.Random(f"{self.seed}:{order_id}")

    def handle_s(self, incident_id: str, category: Category | None) -> float:
        return self.habits.handle_s(random.Random(f"{self.seed}:handle:{incident_id}"), category)

    def ack_s(self, order_id: str) -> float:
        return self.habits.ack_s(self.draws(order_id))

    def travel_s(self, unit: CrewUnit, lat: float, lon: float) -> float:
        return distance_m(unit.lat, unit.lon, lat, lon) * DETOUR_FACTOR / SPEED_M_S[unit.mode]

    def log_on(self, unit_id: str, mode: str, lat: float, lon: float) -> None:
        self.units[unit_id] = CrewUnit(unit_id, mode, lat, lon, True)

    def on_order(self, order, now: float) -> list[tuple[float, str, dict]]:
        """Unit events (at, unit_id, fields) in answer to an order read at simulated second `now`."""
        order = order if isinstance(order, OrderView) else OrderView.of(order)
        if order.kind == "cancel":
            self.cancelled.add(order.order_id)
            ack_at = self.ack_pending.pop(order.order_id, None)
            if ack_at is not None and ack_at > now:
                # taken off the task before answering (too slow to acknowledge, or pre-empted): the officer
                # sees the cancellation when picking up the radio and reports ready for the next one
                return [(ack_at, order.unit_id, {"type": "available"})]
            return []
        unit = self.units.get(order.unit_id)
        if unit is None:
            return []
        h = self.habits
        rnd = self.draws(order.order_id)
        ack = h.ack_s(rnd)  # the same draw as ack_s()
        never, decline, drop = rnd.random(), rnd.random(), rnd.random()
        oid = order.order_id
        if never < h.never_ack:
            # the radio is off; the officer reports back once the order has surely been taken away
            return [(now + max(h.silent_for_s, order.ack_window_s + 60.0), unit.unit_id, {"type": "available"})]
        if decline < h.decline:
            return [(now + ack, unit.unit_id, {"type": "decline", "order_id": oid})]
        self.ack_pending[oid] = now + ack
        travel = self.travel_s(unit, order.lat, order.lon)
        out = [(now + ack, unit.unit_id, {"type": "ack", "order_id": oid}),
               (now + ack + 5, unit.unit_id, {"type": "en_route", "order_id": oid})]
        if drop < h.drop_out:
            out.append((now + ack + 5 + travel / 2, unit.unit_id, {"type": "log_off"}))
            return out
        arrive = now + ack + 5 + travel
        # the position report belongs to the order: a unit taken off the task never gets there
        out.append((arrive, unit.unit_id, {"type": "location", "lat": order.lat, "lon": order.lon, FOR_ORDER: oid}))
        out.append((arrive, unit.unit_id, {"type": "on_scene", "order_id": oid}))
        category = self.catalogue.get(order.category)
        out.append((arrive + self.handle_s(order.incident_id, category), unit.unit_id,
                    {"type": "resolved", "order_id": oid, "outcome": "handled"}))
        return out

    def still_wanted(self, unit_id: str, event: dict) -> bool:
        order_id = event.get("order_id") or event.get(FOR_ORDER)
        return not (order_id is not None and order_id in self.cancelled)

    @staticmethod
    def wire(event: dict) -> dict:
        """The event's fields as the unit sends them (without the crew's own notes)."""
        return {k: v for k, v in event.items() if k != FOR_ORDER}

    def happened(self, unit_id: str, event: dict) -> None:
        """An event of the crew's is being sent: keep what it changes (an acknowledgement, a position)."""
        if event["type"] == "ack":
            self.ack_pending.pop(event["order_id"], None)
        unit = self.units.get(unit_id)
        if unit is not None and event["type"] == "location":
            unit.lat, unit.lon = event["lat"], event["lon"]


class FieldCrew:
    """`Crew` on the wall clock of a compressed day: answers orders with unit events for Kafka."""

    def __init__(self, roster: list[dict], catalogue: Catalogue, *, seed: int, speedup: float,
                 habits: CrewHabits = CrewHabits()):
        self.crew = Crew(catalogue, seed, habits)
        for u in roster:
            self.crew.log_on(u["unit_id"], u["mode"], u["lat"], u["lon"])
        self.roster = {u["unit_id"]: u for u in roster}
        self.speedup = speedup
        self.pending: list[tuple[float, int, str, dict]] = []  # (due wall time, seq, unit, event)
        self._seq = 0
        self.seen_orders = 0

    def logged_on(self, unit_id: str) -> None:
        """The unit starts a shift at its post (its roster log-on was published), as the offline crew does."""
        unit = self.roster.get(unit_id)
        if unit is not None:
            self.crew.log_on(unit_id, unit["mode"], unit["lat"], unit["lon"])

    def on_order(self, order: dict, now: float, transit_s: float = 0.0) -> None:
        """React to a dispatch order read at wall-clock time `now` (loop.time()), `transit_s` after the worker
        issued it: the officer's answers are timed from the issue, as offline, so the hop from the worker to the
        crew is kept out of the outcome."""
        if order.get("unit_id") not in self.crew.units:
            return
        if order.get("kind") != "cancel":
            self.seen_orders += 1
        issued = now - min(max(transit_s, 0.0), 1.0)
        for at, unit_id, event in self.crew.on_order(OrderView.of(order), issued * self.speedup):
            self._seq += 1
            heapq.heappush(self.pending, (at / self.speedup, self._seq, unit_id, event))

    def due(self, now: float, sim_time: datetime) -> list[tuple[str, bytes]]:
        """Unit events whose moment has come, as (key, value) for unit.events."""
        out = []
        while self.pending and self.pending[0][0] <= now:
            _, seq, unit_id, event = heapq.heappop(self.pending)
            if not self.crew.still_wanted(unit_id, event):
                continue
            self.crew.happened(unit_id, event)
            doc = {"schema_version": 1, "event_id": f"crew-{unit_id}-{seq}", "unit_id": unit_id,
                   "at": sim_time.isoformat(), **Crew.wire(event)}
            out.append((unit_id, json.dumps(doc).encode()))
        return out
