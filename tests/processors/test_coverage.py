"""The 15-minute circle: a street is covered while every point of it is within 15 minutes of a free unit that may
take a fight."""

from processors.coverage import covered, street_points
from tests.processors.scenario import Scenario
from tests.processors.test_district import LZL, near


def test_a_street_is_covered_only_while_a_free_eligible_unit_is_within_fifteen_minutes_of_all_of_it(catalogue,
                                                                                                     geography):
    s = Scenario(catalogue, geography)
    points = street_points(geography, "JINJIANG")
    assert points["JJ-LZL"] and all(geography.locate(lat, lon) is not None for lat, lon in points["JJ-LZL"][-3:])
    fight = catalogue.get("PS-FIGHT")
    assert not any(covered(s.core.state, points, fight).values())  # nobody on duty
    s.log_on("T1", "traffic", *LZL)  # free, but may not take a fight
    assert not covered(s.core.state, points, fight)["JJ-LZL"]
    s.log_on("P1", "police", *LZL)
    assert covered(s.core.state, points, fight)["JJ-LZL"]
    s.report("R1", "PS-NOISE", *near(LZL, east_m=50))  # the only police car is now busy
    assert not covered(s.core.state, points, fight)["JJ-LZL"]
