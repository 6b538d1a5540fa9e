"""The grids dispatching and duplicate checks search: what they return is what a look at every point would return."""

import math

from hypothesis import given
from hypothesis import strategies as st

from processors.geography import distance_m
from processors.spatial import FiledGrid

KEYS = ["police", "traffic", "delegated:TR-PARKING"]
IDS = [f"U{i}" for i in range(25)]
# from a street's width to across the district; the district's corners lie ~14 km apart
position = st.tuples(st.floats(30.57, 30.67), st.floats(104.03, 104.15))
filing = st.tuples(st.sampled_from(IDS), position, st.frozensets(st.sampled_from(KEYS), max_size=2),
                   st.sampled_from([1.0, 0.16, 0.31, 0.93]))  # seconds per metre: a car, a bike, on foot


@given(filings=st.lists(filing, max_size=60), removed=st.sets(st.sampled_from(IDS)), query=position,
       keys=st.sets(st.sampled_from(KEYS), min_size=1), limit=st.integers(1, 6),
       within_m=st.sampled_from([math.inf, 150.0, 2000.0]), passed_over=st.sets(st.sampled_from(IDS), max_size=5))
def test_the_nearest_filed_points_are_those_a_full_scan_finds(filings, removed, query, keys, limit, within_m,
                                                              passed_over):
    grid = FiledGrid()
    latest = {}
    for point_id, (lat, lon), point_keys, weight in filings:
        grid.file(point_id, lat, lon, point_keys, weight)
        latest[point_id] = (lat, lon, point_keys, weight)
    for point_id in removed:
        grid.remove(point_id)
        latest.pop(point_id, None)

    lat, lon = query
    scan = sorted((d * weight, d, p) for p, (plat, plon, point_keys, weight) in latest.items()
                  if point_keys & keys and p not in passed_over
                  for d in [distance_m(lat, lon, plat, plon)] if d <= within_m)
    assert grid.nearest(keys, lat, lon, limit, 0.16, lambda p: p not in passed_over, within_m) == scan[:limit]
    assert grid.filed() == {p: (k, (plat, plon, w)) for p, (plat, plon, k, w) in latest.items() if k}
    assert set(grid) == {p for p, (_, _, k, _) in latest.items() if k}


def test_a_crowded_district_is_searched_ring_by_ring_and_still_finds_the_nearest():
    import random

    rnd = random.Random(5)
    grid = FiledGrid()
    points = {}
    for i in range(3000):  # ~3 a cell: the walk goes ring by ring, not over every occupied cell
        lat, lon, weight = rnd.uniform(30.60, 30.66), rnd.uniform(104.05, 104.11), rnd.choice([0.16, 0.31, 0.93])
        grid.file(f"U{i}", lat, lon, frozenset({"police"}), weight)
        points[f"U{i}"] = (lat, lon, weight)
    for _ in range(50):
        lat, lon = rnd.uniform(30.60, 30.66), rnd.uniform(104.05, 104.11)
        scan = sorted((distance_m(lat, lon, plat, plon) * w, distance_m(lat, lon, plat, plon), p)
                      for p, (plat, plon, w) in points.items())
        assert grid.nearest(["police"], lat, lon, 8, 0.16) == scan[:8]
