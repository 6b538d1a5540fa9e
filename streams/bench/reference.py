"""The benchmarks' common ground: the district they run in, the progress display, and the reference data
(catalogue, geography, roster) with the generated units and points the benchmarks place in it.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator
from datetime import datetime, timezone

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from processors.catalogue import Catalogue, Category
from processors.geography import Geography
from streams.settings import Settings


DISTRICT = "JINJIANG"
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


class Steps:
    """Progress bars for the long parts (rich.progress), or nothing when quiet."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True)

    def __enter__(self) -> "Steps":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    @contextlib.contextmanager
    def task(self, description: str, total: float) -> Iterator:
        task_id = self.progress.add_task(description, total=total)

        def advance(n: float = 1.0, *, to: float | None = None) -> None:
            if to is not None:
                self.progress.update(task_id, completed=to)
            else:
                self.progress.advance(task_id, n)

        try:
            yield advance
        finally:
            self.progress.remove_task(task_id)


# ============================================================================ the reference data


def reference(settings: Settings) -> tuple[Catalogue, Geography, list[dict]]:
    from streams.reference import load_catalogue, load_geography, load_roster

    return load_catalogue(settings), load_geography(settings), load_roster()


def _bounds(geography: Geography, district: str = DISTRICT) -> tuple[float, float, float, float]:
    streets = [s for s in geography.streets if s.district == district]
    return (min(s.polygon.bounds[0] for s in streets), min(s.polygon.bounds[1] for s in streets),
            max(s.polygon.bounds[2] for s in streets), max(s.polygon.bounds[3] for s in streets))


def random_points(geography: Geography, n: int, rnd: random.Random, district: str = DISTRICT) -> list[tuple[float, float, str]]:
    """`n` points spread uniformly over the district's streets: (lat, lon, street)."""
    minx, miny, maxx, maxy = _bounds(geography, district)
    out = []
    while len(out) < n:
        lon, lat = rnd.uniform(minx, maxx), rnd.uniform(miny, maxy)
        street = geography.locate(lat, lon)
        if street is not None and street.district == district:
            out.append((round(lat, 6), round(lon, 6), street.street))
    return out


def lattice(geography: Geography, spacing_m: float, district: str = DISTRICT) -> list[tuple[float, float, str]]:
    """Points of a square lattice inside the district: reports at different points never merge as duplicates."""
    minx, miny, maxx, maxy = _bounds(geography, district)
    dlat = spacing_m / 111_000
    dlon = spacing_m / (111_000 * math.cos(math.radians((miny + maxy) / 2)))
    out = []
    lat = miny + dlat / 2
    while lat < maxy:
        lon = minx + dlon / 2
        while lon < maxx:
            street = geography.locate(lat, lon)
            if street is not None and street.district == district:
                out.append((round(lat, 6), round(lon, 6), street.street))
            lon += dlon
        lat += dlat
    return out


def bench_categories(catalogue: Catalogue, max_radius_m: float) -> list[Category]:
    """Single-agency categories with a small dedup radius: each report is one incident and one order."""
    return [c for c in catalogue.categories if len(c.agencies) == 1 and c.dedup.radius_m <= max_radius_m]


def generated_units(geography: Geography, n: int, rnd: random.Random, prefix: str,
                    agencies: tuple[str, ...] = ("police", "traffic", "city_management"),
                    weights: tuple[float, ...] | None = None) -> list[dict]:
    """A brigade of `n` officers spread over the district, modes in turn: log_on fields per unit.

    Agencies go in turn, or in proportion to `weights` (e.g. to what the reports will ask of each)."""
    modes = ("car", "bike", "foot")
    if weights is None:
        agency_of = [agencies[i % len(agencies)] for i in range(n)]
    else:
        total = sum(weights)
        counts = [math.floor(n * w / total) for w in weights]
        for k in range(n - sum(counts)):
            counts[k % len(counts)] += 1
        agency_of = [a for a, c in zip(agencies, counts) for _ in range(c)]
        rnd.shuffle(agency_of)
    return [{"unit_id": f"{prefix}{i:05d}", "agency": agency_of[i], "kind": "officer",
             "district": DISTRICT, "home_street": street, "mode": modes[(i // len(agencies)) % len(modes)],
             "delegations": [], "lat": lat, "lon": lon}
            for i, (lat, lon, street) in enumerate(random_points(geography, n, rnd))]
