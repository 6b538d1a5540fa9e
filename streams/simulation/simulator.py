"""The city simulator: a day of reports in the sample district and the field units that answer the orders.

`plan_day` is pure and seeded: the same seed gives the same day. `FieldCrew`
(streams/simulation/crew.py, the one crew model) plays the units: it reads their orders and answers with
unit events after human-like delays. Simulated time runs `speedup` times faster than the wall
clock; the worker it talks to must then run with a catalogue whose limits are
divided by the same factor (`scaled_catalogue`), which `patrol up` arranges.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import yaml

from processors.catalogue import Catalogue, Category
from processors.geography import Geography
from processors.units import DETOUR_FACTOR, SPEED_M_S
from streams.simulation.crew import CrewHabits, FieldCrew  # noqa: F401  (importable from here as before)

# Reports per hour of the day for the whole district, by domain: traffic peaks at the
# rush hours, city management in the day and the evening markets, public security at night.
HOURLY_RATE = {
    "traffic": [2, 1, 1, 1, 2, 4, 9, 16, 18, 10, 7, 7, 8, 7, 7, 8, 11, 17, 18, 12, 7, 5, 4, 3],
    "city_management": [2, 1, 1, 1, 1, 2, 4, 8, 10, 11, 11, 10, 9, 9, 10, 10, 11, 12, 15, 17, 16, 12, 6, 3],
    "public_security": [9, 8, 6, 4, 3, 2, 2, 3, 4, 4, 5, 5, 5, 5, 5, 5, 6, 7, 8, 9, 10, 12, 13, 12],
}
# Category weights within a domain, with the hours where a category is especially common.
CATEGORY_MIX = {
    "PS-FIGHT": (3, range(20, 27)), "PS-THEFT": (2, range(10, 20)), "PS-NOISE": (4, range(21, 27)),
    "PS-DRUNK": (2, range(22, 28)), "PS-DISPUTE": (3, range(9, 21)), "PS-MISSING": (0.5, range(9, 19)),
    "PS-ASSAULT": (1, range(21, 27)), "EM-CROWD": (0.4, range(18, 22)), "EM-PACKAGE": (0.2, range(7, 20)),
    "TR-ACCIDENT": (3, range(7, 20)), "TR-PARKING": (6, range(8, 20)), "TR-JAM": (3, [7, 8, 17, 18]),
    "TR-SIGNAL": (0.5, range(0, 24)), "TR-OBSTACLE": (1, range(0, 24)), "TR-MOTOTAXI": (1, range(18, 24)),
    "TR-EBIKE": (2, range(7, 20)),
    "CM-VENDING": (5, range(17, 23)), "CM-GARBAGE": (4, range(6, 12)), "CM-BBQ": (2, range(19, 25)),
    "CM-FLYPOST": (2, range(8, 18)), "CM-FRONTAGE": (3, range(9, 21)), "CM-BIKES": (3, range(7, 20)),
    "CM-NOISE": (1, range(22, 30)), "CM-LIGHT": (1, range(18, 24)), "CM-MANHOLE": (0.3, range(0, 24)),
    "CM-MUCK": (0.5, range(0, 6)), "CM-ADVERT": (1, range(9, 18)), "CM-BUILD": (0.5, range(8, 18)),
    "EM-FLOOD": (0.2, range(0, 24)), "EM-COLLAPSE": (0.1, range(0, 24)),
}
SOURCES = {
    "public_security": (("hotline", 6), ("patrol", 2), ("app", 1), ("sensor", 1)),
    "traffic": (("sensor", 5), ("hotline", 3), ("patrol", 2), ("app", 1)),
    "city_management": (("app", 4), ("hotline", 3), ("patrol", 3), ("sensor", 1)),
}
# how many calls a matter draws: a fight on a busy street is reported several times
DUPLICATION = {"PS-FIGHT": 0.6, "PS-ASSAULT": 0.6, "EM-CROWD": 0.8, "TR-ACCIDENT": 0.5, "TR-JAM": 0.5,
               "PS-NOISE": 0.4, "CM-MANHOLE": 0.3}
MALFORMED_SHARE = 0.02
SHIFT_HOURS = 12
RESEND_SHARE = 0.03


@dataclass(order=True)
class Planned:
    """One message the city will publish, at `at_s` simulated seconds after the day starts."""

    at_s: float
    seq: int
    topic: str = field(compare=False)
    key: str | None = field(compare=False)
    value: bytes = field(compare=False)
    what: str = field(compare=False)  # report | duplicate | resend | malformed | log_on | log_off


@dataclass
class DayPlan:
    start: datetime
    hours: float
    messages: list[Planned]

    def count(self, what: str) -> int:
        return sum(1 for m in self.messages if m.what == what)


def plan_day(catalogue: Catalogue, geography: Geography, roster: list[dict], *, seed: int, hours: float = 24.0,
             start: datetime | None = None, intensity: float = 1.0) -> DayPlan:
    """Every report and every shift change of a simulated day, in order."""
    rnd = random.Random(seed)
    start = start or datetime(2026, 11, 25, 0, 0, tzinfo=timezone(timedelta(hours=8)))
    streets = geography.streets
    spots = hotspots(geography)
    out: list[Planned] = []
    seq = 0

    def add(at_s: float, topic: str, key: str | None, value: bytes, what: str) -> None:
        nonlocal seq
        seq += 1
        out.append(Planned(at_s, seq, topic, key, value, what))

    # shifts of SHIFT_HOURS: from the unit's planned start (`shift_start_h`, written by `patrol roster plan`), or
    # without one half the brigade by day (08-20), half by night; everyone on duty at the start is logged on then.
    # Their jitter has a generator of its own, so that the day's reports are the same whatever the roster.
    shifts = random.Random(f"{seed}:shifts")
    for i, unit in enumerate(roster):
        on = unit.get("shift_start_h", 8 if i % 2 == 0 else 20)
        off = on + SHIFT_HOURS
        for shift_start in (on - 24, on, on + 24):
            begin, end = shift_start * 3600, (shift_start + off - on) * 3600
            if end <= 0 or begin >= hours * 3600:
                continue
            at = max(0.0, begin) + shifts.uniform(0, 120)
            add(at, "unit.events", unit["unit_id"],
                _unit_event(unit, "log_on", start + timedelta(seconds=at), f"{seed}-{i}-{shift_start}-on"), "log_on")
            if end < hours * 3600:
                add(end + shifts.uniform(0, 300), "unit.events", unit["unit_id"],
                    _unit_event(unit, "log_off", start + timedelta(seconds=end), f"{seed}-{i}-{shift_start}-off"),
                    "log_off")

    codes = [c for c in CATEGORY_MIX if catalogue.get(c) is not None]
    n_report = 0
    for hour in range(math.ceil(hours)):
        for domain, rates in HOURLY_RATE.items():
            in_domain = [c for c in codes if catalogue.get(c).domain == domain]
            weights = [CATEGORY_MIX[c][0] * (3 if (hour % 24) in CATEGORY_MIX[c][1] or hour % 24 + 24 in CATEGORY_MIX[c][1]
                                             else 1) for c in in_domain]
            for _ in range(_poisson(rnd, rates[hour % 24] * intensity)):
                at = hour * 3600 + rnd.uniform(0, 3600)
                if at >= hours * 3600:
                    continue
                code = rnd.choices(in_domain, weights)[0]
                category = catalogue.get(code)
                lat, lon = _place(rnd, spots, streets, geography)
                n_report += 1
                report_id = f"SIM{seed}-{n_report:06d}"
                source = _weighted(rnd, SOURCES[domain])
                doc = _report(report_id, code, lat, lon, start + timedelta(seconds=at), source, rnd)
                add(at, "incident.reports", report_id, doc, "report")
                # more calls about the same matter, close by and soon after
                calls = 0
                while rnd.random() < DUPLICATION.get(code, 0.1) and calls < 4:
                    calls += 1
                    d_at = at + rnd.uniform(20, min(600, category.dedup.window_s * 0.8 or 60))
                    d_lat, d_lon = _jitter(rnd, lat, lon, category.dedup.radius_m * 0.4)
                    d_id = f"{report_id}-D{calls}"
                    add(d_at, "incident.reports", d_id,
                        _report(d_id, code, d_lat, d_lon, start + timedelta(seconds=d_at),
                                _weighted(rnd, SOURCES[domain]), rnd), "duplicate")
                if rnd.random() < RESEND_SHARE:
                    add(at + rnd.uniform(1, 30), "incident.reports", report_id, doc, "resend")
                if rnd.random() < MALFORMED_SHARE:
                    add(at + rnd.uniform(0, 5), "incident.reports", f"{report_id}-X", _malformed(rnd, doc), "malformed")
    out.sort()
    return DayPlan(start=start, hours=hours, messages=out)


# The acknowledgement limits' allowance for the crew's answer crossing the broker (wall seconds): about the p99 of
# one hop on this machine at a few hundred messages a second (BENCHMARKS.md, section 2), with room to spare.
ACK_TRANSIT_S = 0.1


def scaled_catalogue(catalogue_yaml: str, speedup: float, ack_transit_s: float = 0.0) -> str:
    """The catalogue with every time limit and dedup window divided by `speedup`, for a compressed day.

    `ack_transit_s` (wall seconds) is added to each acknowledgement limit: the crew's answer crosses the broker
    once before the worker reads it, and at 360× a 50 ms hop is 18 simulated seconds of a 60 s limit; offline
    no hop costs anything, so without the allowance a compressed day withdraws orders the offline day keeps."""
    doc = yaml.safe_load(catalogue_yaml)
    for category in doc["categories"]:
        category["sla"] = {k: round(v / speedup + (ack_transit_s if k == "ack_s" else 0.0), 3)
                           for k, v in category["sla"].items()}
        category["dedup"]["window_s"] = round(category["dedup"]["window_s"] / speedup, 3)
        # working-hours calendars do not compress; a simulated day counts the clock as it runs
        category.pop("calendar", None)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


# ---------------------------------------------------------------------- helpers


def hotspots(geography: Geography) -> list[tuple[float, float, float]]:
    """A few busy places per street, more where more people live: (lat, lon, weight).

    Fixed for the districts, whatever the day's seed: demand varies from day to day, the places where it
    gathers do not, so what is learned from one day's history can be tested on another day."""
    rnd = random.Random("hotspots:" + ",".join(sorted({s.district for s in geography.streets})))
    spots = []
    for street in geography.streets:
        minx, miny, maxx, maxy = street.polygon.bounds
        for _ in range(3):
            for _try in range(50):
                lon, lat = rnd.uniform(minx, maxx), rnd.uniform(miny, maxy)
                if geography.locate(lat, lon) is street:
                    spots.append((lat, lon, (street.population or 50_000) / 3))
                    break
    return spots


def _place(rnd, hotspots, streets, geography) -> tuple[float, float]:
    for _ in range(20):
        if rnd.random() < 0.7:
            lat, lon, _ = rnd.choices(hotspots, [w for *_, w in hotspots])[0]
            lat, lon = _jitter(rnd, lat, lon, 400)
        else:
            street = rnd.choices(streets, [s.population or 50_000 for s in streets])[0]
            minx, miny, maxx, maxy = street.polygon.bounds
            lon, lat = rnd.uniform(minx, maxx), rnd.uniform(miny, maxy)
        if geography.locate(lat, lon) is not None:
            return lat, lon
    lat, lon, _ = hotspots[0]
    return lat, lon


def _jitter(rnd, lat: float, lon: float, radius_m: float) -> tuple[float, float]:
    r, a = radius_m * math.sqrt(rnd.random()), rnd.uniform(0, 2 * math.pi)
    return (lat + r * math.cos(a) / 111_000, lon + r * math.sin(a) / (111_000 * math.cos(math.radians(lat))))


def _poisson(rnd, mean: float) -> int:
    # Knuth's method is fine for the small hourly means here
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rnd.random()
        if p <= limit:
            return k
        k += 1


def _weighted(rnd, pairs: Iterable[tuple[str, float]]) -> str:
    names, weights = zip(*pairs)
    return rnd.choices(names, weights)[0]


def _report(report_id: str, code: str, lat: float, lon: float, at: datetime, source: str, rnd) -> bytes:
    doc = {"schema_version": 1, "report_id": report_id, "source": source, "category": code,
           "lat": round(lat, 6), "lon": round(lon, 6), "reported_at": at.isoformat()}
    if source == "hotline":
        doc["reporter"] = {"name": f"Citizen {rnd.randint(1, 9999)}", "phone": f"138{rnd.randint(0, 99999999):08d}"}
    if source == "sensor":
        doc["sensor_id"] = f"CAM-{rnd.randint(1, 400):03d}"
        doc["confidence"] = round(rnd.uniform(0.6, 0.99), 2)
    return json.dumps(doc, ensure_ascii=False).encode()


def _malformed(rnd, doc: bytes) -> bytes:
    kind = rnd.randrange(4)
    if kind == 0:
        return doc[: len(doc) // 2]  # cut off mid-message
    parsed = json.loads(doc)
    if kind == 1:
        parsed["category"] = "XX-UNKNOWN"
    elif kind == 2:
        parsed["lat"], parsed["lon"] = 31.2304, 121.4737  # Shanghai: outside the district
    else:
        parsed["lat"] = "north"
    parsed["report_id"] += "-X"
    return json.dumps(parsed).encode()


def _unit_event(unit: dict, type_: str, at: datetime, event_id: str) -> bytes:
    doc = {"schema_version": 1, "event_id": event_id, "unit_id": unit["unit_id"], "at": at.isoformat(), "type": type_}
    if type_ == "log_on":
        doc.update({k: unit[k] for k in ("agency", "kind", "district", "home_street", "mode", "delegations",
                                          "lat", "lon")})
    return json.dumps(doc).encode()


def eta_s(distance_m: float, mode: str) -> float:
    return distance_m * DETOUR_FACTOR / SPEED_M_S[mode]
