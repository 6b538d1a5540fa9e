"""A uniform grid over the district for finding the units nearest a point without looking at every unit.

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
        # the shortest distance from the point to any cell of ring r is at least (r - 1) cells
        ring_step_m = min(CELL_DEG_LAT * 111_000, CELL_DEG_LON * 111_000 * math.cos(math.radians(lat)))
        for ring in range(max_ring + 1):
            if len(found) >= limit:
                bound = max(0, ring - 1) * ring_step_m * min_cost_per_m
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
