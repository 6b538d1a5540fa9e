import pytest

from processors.geography import GeographyError, distance_m, parse_geography


def test_points_are_located_in_their_street(geography):
    assert geography.locate(30.652, 104.0765).street == "JJ-SYJ"
    assert geography.locate(30.57, 104.12).street == "JJ-SS"
    assert geography.locate(31.2304, 121.4737) is None


def test_the_sample_district_is_uneven(geography):
    areas = sorted(s.polygon.area for s in geography.streets)
    assert len(geography.streets) >= 12
    assert areas[-1] / areas[0] > 3
    assert geography.districts == ["JINJIANG"]


def feature(street="S1", **props):
    return {
        "type": "Feature",
        "properties": {"district": "D", "street": street, "name": "n", **props},
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
    }


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"type": "Feature"}, "FeatureCollection"),
        ({"type": "FeatureCollection", "features": [feature(district=None)]}, "'district'"),
        ({"type": "FeatureCollection", "features": [feature(), feature()]}, "appears twice"),
        ({"type": "FeatureCollection", "features": []}, "no streets"),
    ],
)
def test_malformed_geography_is_refused(doc, message):
    with pytest.raises(GeographyError, match=message):
        parse_geography(doc)


def test_distance_is_in_metres():
    assert distance_m(30.65, 104.08, 30.66, 104.08) == pytest.approx(1112, rel=0.01)
