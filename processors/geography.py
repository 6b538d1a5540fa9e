"""The served area: streets (街道) as polygons grouped into districts, and point → street lookup."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Street:
    district: str
    street: str
    name: str
    name_zh: str | None
    population: int | None
    polygon: BaseGeometry


class GeographyError(ValueError):
    """A geography file that cannot be used; the message names the feature and property."""


class Geography:
    """Streets of the served area, indexed so that locating a point does not scan every polygon."""

    def __init__(self, streets: list[Street]):
        if not streets:
            raise GeographyError("the geography has no streets")
        self.streets = streets
        self._tree = STRtree([s.polygon for s in streets])
        self.by_code = {s.street: s for s in streets}
        self.districts = sorted({s.district for s in streets})

    def locate(self, lat: float, lon: float) -> Street | None:
        """The street containing the point, or None when it lies outside the served area."""
        point = Point(lon, lat)
        for index in self._tree.query(point, predicate="intersects"):
            return self.streets[int(index)]
        return None


def parse_geography(doc: Any, source: str = "<geography>") -> Geography:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise GeographyError(f"{source}: expected a GeoJSON FeatureCollection")
    streets: list[Street] = []
    seen: set[str] = set()
    for i, feature in enumerate(doc.get("features") or []):
        props = feature.get("properties") or {}
        where = f"{source}: feature {i}"
        for required in ("district", "street", "name"):
            if not isinstance(props.get(required), str) or not props[required]:
                raise GeographyError(f"{where}: property {required!r} is missing or not a string")
        geometry = feature.get("geometry") or {}
        if geometry.get("type") not in ("Polygon", "MultiPolygon"):
            raise GeographyError(f"{where} ({props['street']}): geometry must be a Polygon or MultiPolygon")
        try:
            polygon = shape(geometry)
        except Exception as exc:  # shapely raises several types for malformed coordinates
            raise GeographyError(f"{where} ({props['street']}): bad coordinates: {exc}") from exc
        if not polygon.is_valid or polygon.is_empty:
            raise GeographyError(f"{where} ({props['street']}): polygon is empty or self-intersecting")
        if props["street"] in seen:
            raise GeographyError(f"{where}: street code {props['street']!r} appears twice")
        seen.add(props["street"])
        population = props.get("population")
        streets.append(
            Street(
                district=props["district"],
                street=props["street"],
                name=props["name"],
                name_zh=props.get("name_zh"),
                population=int(population) if population is not None else None,
                polygon=polygon,
            )
        )
    return Geography(streets)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))
