"""Uniform grids over the district for finding the units nearest a point without looking at every unit.

Units move and change status all the time, so the index must be cheap to update:
a dict of cells, each a set of unit ids, is O(1) per move; a query walks rings
of cells outward and stops once no farther ring can hold a closer candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from processors.geography import distance_m

# ~500 m cells near 30° N: small enough that a ring holds a handful of units in
# a dense street, large enough that an empty outer street costs few rings.
CELL_DEG_LAT = 0.0045
CELL_DEG_LON = 0.0052
# metres per degree of latitude; the ring bounds shave EDGE_SLACK_M off for the earth not being flat
METRES_PER_DEG = 111_000
EDGE_SLACK_M = 5.0


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return (math.floor(lat / CELL_DEG_LAT), math.floor(lon / CELL_DEG_LON))


class UnitGrid:
    def __init__(self) -> None:
        self._cells: dict[tuple[int, int], set[str]] = {}
        self._where: dict[str, tuple[float, float, tuple[int, int]]] = {}
        # (min row, max row, min col, max col) of the occupied cells; None until asked after a change
        self._bounds: tuple[int, int, int, int] | None = None

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, unit_id: str) -> bool:
        return unit_id in self._where

    def place(self, unit_id: str, lat: float, lon: float) -> None:
        """Insert or move a unit."""
        cell = _cell(lat, lon)
        old = self._where.get(unit_id)
        if old is not None and old[2] != cell:
            self._discard_from_cell(unit_id, old[2])
        members = self._cells.get(cell)
        if members is None:
            members = self._cells[cell] = set()
            self._bounds = None
        members.add(unit_id)
        self._where[unit_id] = (lat, lon, cell)

    def remove(self, unit_id: str) -> None:
        old = self._where.pop(unit_id, None)
        if old is not None:
            self._discard_from_cell(unit_id, old[2])

    def _discard_from_cell(self, unit_id: str, cell: tuple[int, int]) -> None:
        members = self._cells.get(cell)
        if members is not None:
            members.discard(unit_id)
            if not members:
                del self._cells[cell]
                self._bounds = None

    def nearest(
        self,
        lat: float,
        lon: float,
        cost: Callable[[str, float], float | None],
        limit: int,
        min_cost_per_m: float,
        eligible: Callable[[str], bool] | None = None,
    ) -> list[tuple[float, float, str]]:
        """The `limit` cheapest units as (cost, distance_m, unit_id), cheapest first.

        `cost(unit_id, distance_m)` prices a unit (its ETA) or returns None when it is
        not eligible; `min_cost_per_m` is the lowest cost any unit can have per metre
        (1 / fastest speed), which tells when the outer rings cannot beat what we have.
        `eligible(unit_id)`, if given, is asked first: a unit it turns down costs no distance.
        """
        if not self._cells:
            return []
        centre = _cell(lat, lon)
        found: list[tuple[float, float, str]] = []
        max_ring = self._max_ring(centre)
        where = self._where
        # Any cell of ring r lies at least r - 1 whole cells away, plus the way from the point to the nearest
        # edge of its own cell (a few metres short of it: the metres here are a flat approximation).
        cell_lat_m = CELL_DEG_LAT * METRES_PER_DEG
        cell_lon_m = CELL_DEG_LON * METRES_PER_DEG * math.cos(math.radians(lat))
        ring_step_m = min(cell_lat_m, cell_lon_m)
        row_share, col_share = lat / CELL_DEG_LAT - centre[0], lon / CELL_DEG_LON - centre[1]
        to_edge_m = max(0.0, min(row_share * cell_lat_m, (1 - row_share) * cell_lat_m,
                                 col_share * cell_lon_m, (1 - col_share) * cell_lon_m) - EDGE_SLACK_M)
        for ring in range(max_ring + 1):
            if len(found) >= limit:
                bound = (max(0, ring - 1) * ring_step_m + (to_edge_m if ring else 0.0)) * min_cost_per_m
                if bound > found[limit - 1][0]:
                    break
            for cell in _ring(centre, ring):
                for unit_id in self._cells.get(cell, ()):
                    if eligible is not None and not eligible(unit_id):
                        continue
                    ulat, ulon, _ = where[unit_id]
                    d = distance_m(lat, lon, ulat, ulon)
                    c = cost(unit_id, d)
                    if c is not None:
                        found.append((c, d, unit_id))
            found.sort()
            del found[limit:]
        return found

    def members(self) -> dict[str, tuple[float, float]]:
        return {unit_id: (lat, lon) for unit_id, (lat, lon, _) in self._where.items()}

    def _max_ring(self, centre: tuple[int, int]) -> int:
        if self._bounds is None:
            rows = [c[0] for c in self._cells]
            cols = [c[1] for c in self._cells]
            self._bounds = (min(rows), max(rows), min(cols), max(cols))
        top, bottom, left, right = self._bounds
        return max(abs(centre[0] - top), abs(centre[0] - bottom), abs(centre[1] - left), abs(centre[1] - right))


def _ring(centre: tuple[int, int], r: int) -> Iterator[tuple[int, int]]:
    cy, cx = centre
    if r == 0:
        yield centre
        return
    for dx in range(-r, r + 1):
        yield (cy - r, cx + dx)
        yield (cy + r, cx + dx)
    for dy in range(-r + 1, r):
        yield (cy + dy, cx - r)
        yield (cy + dy, cx + r)


class FiledUnitGrid:
    """Units filed under keys, one grid per key, a unit under several: a query walks only the grids of its
    keys. The district files its free units under their authorities, so that finding a unit for a place
    looks at free units that may fill it, not at the district's busy ones or other agencies'."""

    def __init__(self) -> None:
        self._grids: dict[object, UnitGrid] = {}
        self._keys: dict[str, frozenset] = {}

    def __contains__(self, unit_id: str) -> bool:
        return unit_id in self._keys

    def file(self, unit_id: str, lat: float, lon: float, keys: frozenset) -> None:
        """Insert or move a unit, under `keys` (those it was filed under before and lost are dropped)."""
        if not keys:
            self.remove(unit_id)
            return
        for key in self._keys.get(unit_id, frozenset()) - keys:
            self._drop(key, unit_id)
        for key in keys:
            grid = self._grids.get(key)
            if grid is None:
                grid = self._grids[key] = UnitGrid()
            grid.place(unit_id, lat, lon)
        self._keys[unit_id] = keys

    def remove(self, unit_id: str) -> None:
        for key in self._keys.pop(unit_id, ()):
            self._drop(key, unit_id)

    def _drop(self, key: object, unit_id: str) -> None:
        grid = self._grids[key]
        grid.remove(unit_id)
        if not len(grid):
            del self._grids[key]

    def filed(self) -> dict[str, tuple[frozenset, tuple[float, float]]]:
        """unit_id -> (keys, position), as filed: for checking the index against the units it indexes."""
        positions = {}
        for grid in self._grids.values():
            positions.update(grid.members())
        return {unit_id: (keys, positions[unit_id]) for unit_id, keys in self._keys.items()}

    def nearest(self, keys, lat: float, lon: float, cost: Callable[[str, float], float | None], limit: int,
                min_cost_per_m: float, eligible: Callable[[str], bool] | None = None) -> list[tuple[float, float, str]]:
        """`UnitGrid.nearest` over the units filed under any of `keys` (each unit once)."""
        found: dict[str, tuple[float, float, str]] = {}
        for key in keys:
            grid = self._grids.get(key)
            if grid is not None:
                # each grid's own best `limit` holds every one of its units that can be among the best overall
                for hit in grid.nearest(lat, lon, cost, limit, min_cost_per_m, eligible):
                    found[hit[2]] = hit
        return sorted(found.values())[:limit]
