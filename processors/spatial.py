"""Uniform grids over the district for finding the units (or open incidents) nearest a point without looking
at every one.

Units move and change status all the time, so the index must be cheap to update:
a dict of cells, each a set of ids, is O(1) per move; a query walks rings of
cells outward and stops once no farther ring can hold a closer candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

from processors.geography import EARTH_RADIUS_M

# ~500 m cells near 30° N: small enough that a ring holds a handful of units in
# a dense street, large enough that an empty outer street costs few rings.
CELL_DEG_LAT = 0.0045
CELL_DEG_LON = 0.0052
# metres per degree of latitude; the ring bounds shave EDGE_SLACK_M off for the earth not being flat
METRES_PER_DEG = 111_000
EDGE_SLACK_M = 5.0

# (cost, distance_m, id): cost is the distance times the point's weight (a unit's seconds per metre)
Hit = tuple[float, float, str]


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return (math.floor(lat / CELL_DEG_LAT), math.floor(lon / CELL_DEG_LON))


class Grid:
    """Weighted points by id: `nearest` ranks them by weight × distance."""

    def __init__(self) -> None:
        self._cells: dict[tuple[int, int], set[str]] = {}
        # id -> (lat, lon, cell, weight, latitude in radians, its cosine): the last two spare every query them
        self._where: dict[str, tuple[float, float, tuple[int, int], float, float, float]] = {}
        # (min row, max row, min col, max col) covering every occupied cell; it only grows (a cell that
        # empties leaves it as it was), which costs a sparse query a few empty rings at most
        self._bounds: tuple[int, int, int, int] | None = None

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, point_id: str) -> bool:
        return point_id in self._where

    def place(self, point_id: str, lat: float, lon: float, weight: float = 1.0) -> None:
        """Insert or move a point."""
        cell = _cell(lat, lon)
        old = self._where.get(point_id)
        if old is not None and old[2] != cell:
            self._discard_from_cell(point_id, old[2])
        members = self._cells.get(cell)
        if members is None:
            members = self._cells[cell] = set()
            self._cover(cell)
        members.add(point_id)
        p = math.radians(lat)
        self._where[point_id] = (lat, lon, cell, weight, p, math.cos(p))

    def remove(self, point_id: str) -> None:
        old = self._where.pop(point_id, None)
        if old is not None:
            self._discard_from_cell(point_id, old[2])

    def members(self) -> dict[str, tuple[float, float, float]]:
        """id -> (lat, lon, weight)."""
        return {point_id: (lat, lon, weight) for point_id, (lat, lon, _, weight, _, _) in self._where.items()}

    def _discard_from_cell(self, point_id: str, cell: tuple[int, int]) -> None:
        members = self._cells.get(cell)
        if members is not None:
            members.discard(point_id)
            if not members:
                del self._cells[cell]

    def _cover(self, cell: tuple[int, int]) -> None:
        row, col = cell
        if self._bounds is None:
            self._bounds = (row, row, col, col)
        else:
            top, bottom, left, right = self._bounds
            self._bounds = (min(top, row), max(bottom, row), min(left, col), max(right, col))

    def nearest(self, lat: float, lon: float, limit: int, min_weight: float,
                eligible: Callable[[str], bool] | None = None, within_m: float = math.inf) -> list[Hit]:
        """The `limit` cheapest points no farther than `within_m`, as (cost, distance_m, id), cheapest first
        (ties: nearer, then smaller id).

        `min_weight` is the lowest weight any point can have, which tells when the outer rings cannot
        beat what we have. `eligible(id)`, if given, is asked first: a point it turns down costs no distance.
        """
        if not self._cells:
            return []
        centre = _cell(lat, lon)
        found: list[Hit] = []
        where = self._where
        # Any cell of ring r lies at least r - 1 whole cells away, plus the way from the point to the nearest
        # edge of its own cell (a few metres short of it: the metres here are a flat approximation).
        cell_lat_m = CELL_DEG_LAT * METRES_PER_DEG
        cell_lon_m = CELL_DEG_LON * METRES_PER_DEG * math.cos(math.radians(lat))
        ring_step_m = min(cell_lat_m, cell_lon_m)
        row_share, col_share = lat / CELL_DEG_LAT - centre[0], lon / CELL_DEG_LON - centre[1]
        to_edge_m = max(0.0, min(row_share * cell_lat_m, (1 - row_share) * cell_lat_m,
                                 col_share * cell_lon_m, (1 - col_share) * cell_lon_m) - EDGE_SLACK_M)
        p1 = math.radians(lat)
        cos_p1, sin, asin, sqrt, radians = math.cos(p1), math.sin, math.asin, math.sqrt, math.radians
        reach = math.inf if math.isinf(within_m) else 1 + int((within_m - to_edge_m) // ring_step_m)
        for ring, cells in self._rings(centre, reach):
            closest_m = max(0, ring - 1) * ring_step_m + (to_edge_m if ring else 0.0)
            if closest_m > within_m:
                break
            if len(found) >= limit and closest_m * min_weight > found[limit - 1][0]:
                break
            for cell in cells:
                for point_id in self._cells.get(cell, ()):
                    if eligible is not None and not eligible(point_id):
                        continue
                    _, plon, _, weight, p2, cos_p2 = where[point_id]
                    # geography.distance_m, term for term (the same figures to the last bit), with what
                    # depends on one end only worked out once: this loop is most of a dispatch decision
                    a = sin((p2 - p1) / 2) ** 2 + cos_p1 * cos_p2 * sin(radians(plon - lon) / 2) ** 2
                    d = 2 * EARTH_RADIUS_M * asin(sqrt(a))
                    if d <= within_m:
                        found.append((d * weight, d, point_id))
            found.sort()
            del found[limit:]
        return found

    def _rings(self, centre: tuple[int, int], reach: float) -> Iterator[tuple[int, Iterable[tuple[int, int]]]]:
        """(ring, its cells) outward from `centre`, as far as the occupied cells or `reach` (a ring) go."""
        top, bottom, left, right = self._bounds
        cy, cx = centre
        max_ring = int(min(reach, max(abs(cy - top), abs(cy - bottom), abs(cx - left), abs(cx - right))))
        for ring in range(max_ring + 1):
            if ring and (2 * ring - 1) ** 2 >= len(self._cells):
                # As many cells visited as there are occupied ones: the rest is visited through those (a sparse
                # grid, or a search going far), nearest ring first, so no query costs more than twice a scan.
                by_ring: dict[int, list[tuple[int, int]]] = {}
                for cell in self._cells:
                    r = max(abs(cell[0] - cy), abs(cell[1] - cx))
                    if ring <= r <= max_ring:
                        by_ring.setdefault(r, []).append(cell)
                for r in sorted(by_ring):
                    yield r, by_ring[r]
                return
            yield ring, _ring(centre, ring)


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


class FiledGrid:
    """Points filed under keys, one grid per key, a point under several: a query walks only the grids of its
    keys. The district files its free units under their authorities, so that finding a unit for a place
    looks at free units that may fill it, not at busy ones or other agencies'; and its open incidents under
    their category, so that a report meets only the incidents it could be another call about."""

    def __init__(self) -> None:
        self._grids: dict[object, Grid] = {}
        self._keys: dict[str, frozenset] = {}

    def __contains__(self, point_id: str) -> bool:
        return point_id in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def file(self, point_id: str, lat: float, lon: float, keys: frozenset, weight: float = 1.0) -> None:
        """Insert or move a point, under `keys` (those it was filed under before and lost are dropped)."""
        if not keys:
            self.remove(point_id)
            return
        for key in self._keys.get(point_id, frozenset()) - keys:
            self._drop(key, point_id)
        for key in keys:
            grid = self._grids.get(key)
            if grid is None:
                grid = self._grids[key] = Grid()
            grid.place(point_id, lat, lon, weight)
        self._keys[point_id] = keys

    def remove(self, point_id: str) -> None:
        for key in self._keys.pop(point_id, ()):
            self._drop(key, point_id)

    def _drop(self, key: object, point_id: str) -> None:
        grid = self._grids[key]
        grid.remove(point_id)
        if not len(grid):
            del self._grids[key]

    def filed(self) -> dict[str, tuple[frozenset, tuple[float, float, float]]]:
        """id -> (keys, (lat, lon, weight)), as filed: for checking the index against what it indexes."""
        positions = {}
        for grid in self._grids.values():
            positions.update(grid.members())
        return {point_id: (keys, positions[point_id]) for point_id, keys in self._keys.items()}

    def nearest(self, keys: Iterable, lat: float, lon: float, limit: int, min_weight: float,
                eligible: Callable[[str], bool] | None = None, within_m: float = math.inf) -> list[Hit]:
        """`Grid.nearest` over the points filed under any of `keys` (each point once)."""
        found: dict[str, Hit] = {}
        for key in keys:
            grid = self._grids.get(key)
            if grid is not None:
                # each grid's own best `limit` holds every one of its points that can be among the best overall
                for hit in grid.nearest(lat, lon, limit, min_weight, eligible, within_m):
                    found[hit[2]] = hit
        return sorted(found.values())[:limit]
