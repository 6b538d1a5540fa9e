"""The grids dispatching searches: what they return is what a look at every unit would return."""

from hypothesis import given
from hypothesis import strategies as st

from processors.geography import distance_m
from processors.spatial import FiledUnitGrid

KEYS = ["police", "traffic", "delegated:TR-PARKING"]
position = st.tuples(st.floats(30.57, 30.67), st.floats(104.03, 104.15))
filing = st.tuples(st.sampled_from([f"U{i}" for i in range(25)]), position,
                   st.frozensets(st.sampled_from(KEYS), max_size=2))


@given(filings=st.lists(filing, max_size=60), removed=st.sets(st.sampled_from([f"U{i}" for i in range(25)])),
       query=position, keys=st.sets(st.sampled_from(KEYS), min_size=1), limit=st.integers(1, 6))
def test_the_nearest_filed_units_are_those_a_full_scan_finds(filings, removed, query, keys, limit):
    grid = FiledUnitGrid()
    latest = {}
    for unit_id, (lat, lon), unit_keys in filings:
        grid.file(unit_id, lat, lon, unit_keys)
        latest[unit_id] = (lat, lon, unit_keys)
    for unit_id in removed:
        grid.remove(unit_id)
        latest.pop(unit_id, None)

    def cost(unit_id: str, d: float) -> float:
        return d / (2.0 if unit_id.endswith("3") else 1.0)  # some units faster than others

    lat, lon = query
    scan = sorted((cost(u, d), d, u) for u, (ulat, ulon, unit_keys) in latest.items() if unit_keys & keys
                  for d in [distance_m(lat, lon, ulat, ulon)])
    assert grid.nearest(keys, lat, lon, cost, limit, 0.5) == scan[:limit]
    assert grid.filed() == {u: (k, (ulat, ulon)) for u, (ulat, ulon, k) in latest.items() if k}
