"""Benchmark 5, memory: bytes a district core holds per unit and per open, closed and forgotten incident,
measured in fresh child processes (`python -m streams.bench.suite memory …`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import random
import subprocess
import sys
from datetime import timedelta

from processors.district import CLOSED_KEPT, DistrictCore
from processors.messages import DispatcherCommand, DispatchOrder, WorkItem
from streams.bench.cost import _log_on_item, _report_item, _status_item
from streams.bench.cpu import _rss_bytes
from streams.bench.reference import DISTRICT, T0, Steps, _bounds, bench_categories, reference
from streams.bench.results import Memory
from streams.settings import Settings


def memory_probe(n_units: int, n_incidents: int, traced: bool) -> dict[str, float]:
    """Bytes a district core holds per unit, per open incident and per closed incident (run in a fresh process).

    The inputs are made on the fly inside each measured phase, so that what the core keeps
    (its ids, its coordinates) is counted and nothing the benchmark keeps is."""
    import tracemalloc

    catalogue, geography, _ = reference(Settings())
    categories = bench_categories(catalogue, 200.0)
    minx, miny, maxx, maxy = _bounds(geography)
    rnd = random.Random(5)

    def point() -> tuple[float, float, str]:
        while True:
            lat, lon = rnd.uniform(miny, maxy), rnd.uniform(minx, maxx)
            street = geography.locate(lat, lon)
            if street is not None:
                return lat, lon, street.street

    def measure() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] if traced else _rss_bytes()

    if traced:
        tracemalloc.start()
    empty = measure()
    core = DistrictCore(DISTRICT, catalogue)
    for i in range(n_units):
        lat, lon, street = point()
        core.apply(_log_on_item({"unit_id": f"M{i:06d}", "agency": ("police", "traffic", "city_management")[i % 3],
                                 "kind": "officer", "district": DISTRICT, "home_street": street,
                                 "mode": ("car", "bike", "foot")[(i // 3) % 3], "delegations": [],
                                 "lat": lat, "lon": lon}, T0, i))
    with_units = measure()
    at = T0
    orders: list[tuple[str, str]] = []
    for j in range(n_incidents):
        lat, lon, street = point()
        at += timedelta(milliseconds=100)
        out = core.apply(_report_item(f"MR{j:06d}", categories[j % len(categories)].code, lat, lon, street, at))
        orders += [(o.unit_id, o.order_id) for o in out if isinstance(o, DispatchOrder) and o.kind == "assign"]
    # the benchmark's own list of orders is not the core's: take it out of the figures
    ours = sys.getsizeof(orders) + sum(sys.getsizeof(o) for o in orders)
    with_open = measure() - ours
    open_now = sum(1 for i in core.state.incidents.values() if i.is_open)
    for k, (unit_id, order_id) in enumerate(orders):
        core.apply(_status_item(unit_id, "resolved", order_id, at, k))
    # resolved awaits verification: each complainant answers, satisfied, and the incident closes
    for incident_id in sorted({i for i, state in core.state.incidents.items() if state.status == "awaiting_verification"}):
        core.apply(_verified_item(incident_id, at))
    with_closed = measure() - ours
    closed_now = sum(1 for i in core.state.incidents.values() if not i.is_open)
    # a day later, with the clock ticking: the closed incidents forgotten, their report ids kept
    core.apply(WorkItem(kind="tick", district=DISTRICT, at=at + CLOSED_KEPT + timedelta(seconds=1)))
    with_forgotten = measure() - ours
    return {"units": n_units, "incidents": n_incidents, "open": open_now, "closed": closed_now,
            "empty": empty, "with_units": with_units, "with_open": with_open, "with_closed": with_closed,
            "per_unit": (with_units - empty) / max(1, n_units),
            "per_open_incident": (with_open - with_units) / max(1, open_now),
            "per_closed_incident": (with_closed - with_units) / max(1, closed_now),
            "per_forgotten_incident": (with_forgotten - with_units) / max(1, closed_now)}


def memory_footprint(n_units: int, n_incidents: int, steps: Steps | None = None) -> Memory:
    """Both probes, each in a fresh interpreter: tracemalloc (exact Python allocations) and VmRSS (resident)."""
    results = {}
    with (steps.task("memory per unit and incident", 2) if steps else contextlib.nullcontext()) as adv:
        for traced in (True, False):
            done = subprocess.run([sys.executable, "-m", "streams.bench.suite", "memory", str(n_units), str(n_incidents),
                                   "traced" if traced else "rss"], capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"memory probe failed: {done.stderr[-2000:]}")
            results[traced] = json.loads(done.stdout.strip().splitlines()[-1])
            if adv:
                adv()
    keys = ("per_unit", "per_open_incident", "per_closed_incident", "per_forgotten_incident")
    return Memory(units=n_units, incidents=n_incidents, traced={k: results[True][k] for k in keys},
                  resident={k: results[False][k] for k in keys})


def _verified_item(incident_id: str, at) -> WorkItem:
    """The complainant's `satisfied`, as the command API publishes it."""
    command = DispatcherCommand(schema_version=1, command_id=f"V-{incident_id}", type="verify",
                                incident_id=incident_id, outcome="satisfied", channel="callback",
                                by={"name": "bench", "role": "dispatcher"}, issued_at=at)
    return WorkItem(kind="command", district=DISTRICT, at=at, command=command)
