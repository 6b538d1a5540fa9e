"""Benchmark 3, decision cost: in-process time per assignment as the district grows, next to a brute-force scan
of every unit.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import random
import time
from datetime import datetime, timedelta

from processors.catalogue import Catalogue, Category
from processors.district import CANDIDATES_PER_PLACE, DistrictCore
from processors.geography import Geography, distance_m
from processors.messages import DispatchOrder, IncidentReport, WorkItem, unit_event_adapter
from streams.bench.reference import DISTRICT, T0, Steps, bench_categories, generated_units, random_points
from streams.bench.results import CostRow, DecisionCost


def _log_on_item(unit: dict, at: datetime, n: int) -> WorkItem:
    event = unit_event_adapter.validate_python({"schema_version": 1, "event_id": f"bench-on-{n}", "at": at,
                                                "type": "log_on", **unit})
    return WorkItem(kind="unit_event", district=DISTRICT, at=at, unit_event=event)


def _status_item(unit_id: str, type_: str, order_id: str, at: datetime, n: int) -> WorkItem:
    event = unit_event_adapter.validate_python({"schema_version": 1, "event_id": f"bench-st-{n}", "unit_id": unit_id,
                                                "at": at, "type": type_, "order_id": order_id})
    return WorkItem(kind="unit_event", district=DISTRICT, at=at, unit_event=event)


def _report_item(report_id: str, code: str, lat: float, lon: float, street: str, at: datetime) -> WorkItem:
    report = IncidentReport(schema_version=1, report_id=report_id, source="sensor", category=code, lat=lat, lon=lon,
                            reported_at=at)
    return WorkItem(kind="report", district=DISTRICT, at=at, street=street, report=report)


def decision_cost(catalogue: Catalogue, geography: Geography, sizes: tuple[int, ...], samples: int,
                  steps: Steps | None = None, seed: int = 7) -> DecisionCost:
    """Time per assignment in a district of N free units, the core fed directly.

    Each sample is one report applied to the core (timed) and then resolved by its unit
    (not timed), so every sample meets the same district: N free units, no backlog.
    The same query is also answered by a scan of every unit (the baseline the grid avoids).
    """
    categories = bench_categories(catalogue, 200.0)
    rows = []
    for n in sizes:
        rnd = random.Random(seed)
        core = DistrictCore(DISTRICT, catalogue)
        at = T0
        units = generated_units(geography, n, rnd, "C")
        points = random_points(geography, samples, rnd)
        apply_us, search_us, brute_us = [], [], []
        with (steps.task(f"decision cost: {n:,} units", n + samples) if steps else contextlib.nullcontext()) as advance:
            for i, unit in enumerate(units):
                core.apply(_log_on_item(unit, at, i))
                if advance and i % 500 == 0:
                    advance(to=i)
            gc.collect()
            for j, (lat, lon, street) in enumerate(points):
                at += timedelta(seconds=1)
                category = categories[j % len(categories)]
                item = _report_item(f"C{n}-{j}", category.code, lat, lon, street, at)
                search_us.append(_time_search(core, category, lat, lon))
                if j < BRUTE_SAMPLES:
                    brute_us.append(_time_brute(core, category, lat, lon))
                started = time.perf_counter()
                out = core.apply(item)
                apply_us.append((time.perf_counter() - started) * 1e6)
                for order in (m for m in out if isinstance(m, DispatchOrder) and m.kind == "assign"):
                    core.apply(_status_item(order.unit_id, "resolved", order.order_id, at, j))
                if advance:
                    advance(to=n + j + 1)
        rows.append(CostRow(units=n, samples=samples, apply_us=apply_us, search_us=search_us, brute_us=brute_us))
    return DecisionCost(rows)


# the full scan is the slow baseline; this many samples of it per size are plenty
BRUTE_SAMPLES = 200


def _eligible_eta(core: DistrictCore, category: Category, agency: str):
    """The core's ranking test and price: (eligible(unit_id), eta(unit_id, distance_m))."""
    units = core.state.units

    def eligible(unit_id: str) -> bool:
        unit = units[unit_id]
        return unit.free and unit.may_act_for(category, agency)

    def eta(unit_id: str, d: float) -> float:
        return units[unit_id].eta_s(d)

    return eligible, eta


def _time_search(core: DistrictCore, category: Category, lat: float, lon: float) -> float:
    """The query the core's ranking makes: its free-unit index, for the lead agency's place."""
    started = time.perf_counter()
    core.candidates(category, category.agencies[0], lat, lon)
    return (time.perf_counter() - started) * 1e6


def _time_brute(core: DistrictCore, category: Category, lat: float, lon: float) -> float:
    """Baseline: look at every unit of the district for the same query."""
    eligible, eta = _eligible_eta(core, category, category.agencies[0])
    started = time.perf_counter()
    found = []
    for unit in core.state.units.values():
        if eligible(unit.unit_id):
            found.append((eta(unit.unit_id, distance_m(lat, lon, unit.lat, unit.lon)), unit.unit_id))
    heapq.nsmallest(CANDIDATES_PER_PLACE, found)
    return (time.perf_counter() - started) * 1e6
