"""The 15-minute circle: is a street's whole area within 15 minutes of a free unit that may take a priority-1
matter? Each street is checked at a few points spread over it (its corners and a lattice inside); the street is
covered when every point is. Sampled over a day, the share of the time a street is covered says where the brigade
is thin, whatever happened to be reported there.
"""

from __future__ import annotations

import math

from processors.catalogue import Catalogue, Category
from processors.district_state import DistrictState
from processors.geography import Geography
from processors.units import FEWEST_SECONDS_PER_M, places_for

CIRCLE_S = 15 * 60.0
# Order to setting off: the officer reads the order and answers (the crew's median) and gets going.
SETTING_OFF_S = 30.0
LATTICE_M = 600.0


def street_points(geography: Geography, district: str | None = None,
                  spacing_m: float = LATTICE_M) -> dict[str, list[tuple[float, float]]]:
    """street -> the points (lat, lon) its coverage is judged at: the polygon's corners and a lattice inside."""
    out: dict[str, list[tuple[float, float]]] = {}
    for street in geography.streets:
        if district is not None and street.district != district:
            continue
        polygon = street.polygon
        hull = getattr(polygon, "exterior", None) or polygon.convex_hull.exterior
        points = [(lat, lon) for lon, lat in list(hull.coords)[:-1]]
        minx, miny, maxx, maxy = polygon.bounds
        dlat = spacing_m / 111_000
        dlon = spacing_m / (111_000 * math.cos(math.radians((miny + maxy) / 2)))
        lat = miny + dlat / 2
        while lat < maxy:
            lon = minx + dlon / 2
            while lon < maxx:
                if geography.locate(lat, lon) is street:
                    points.append((lat, lon))
                lon += dlon
            lat += dlat
        out[street.street] = points
    return out


def covered(state: DistrictState, points: dict[str, list[tuple[float, float]]], category: Category,
            agency: str | None = None) -> dict[str, bool]:
    """street -> whether every one of its points is within CIRCLE_S of a free unit that may fill `category`'s
    (lead) place, counting SETTING_OFF_S to answer and set off."""
    keys = places_for(category, agency or category.agencies[0])
    reach_m = (CIRCLE_S - SETTING_OFF_S) / FEWEST_SECONDS_PER_M  # no unit farther than this can make it
    out = {}
    for street, spots in points.items():
        ok = True
        for lat, lon in spots:
            hit = state.free.nearest(keys, lat, lon, 1, FEWEST_SECONDS_PER_M, within_m=reach_m)
            if not hit or hit[0][0] + SETTING_OFF_S > CIRCLE_S:
                ok = False
                break
        out[street] = ok
    return out


def circle_categories(catalogue: Catalogue) -> dict[str, Category]:
    """agency -> the priority-1 category whose `agency` place its circle is judged for: the first in the
    catalogue that the agency leads, else the first it takes part in. An agency with no priority-1 work has none."""
    led: dict[str, Category] = {}
    joined: dict[str, Category] = {}
    for category in catalogue.categories:
        if category.priority != 1:
            continue
        led.setdefault(category.agencies[0], category)
        for agency in category.agencies[1:]:
            joined.setdefault(agency, category)
    return {**joined, **led}
