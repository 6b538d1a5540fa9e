"""The 15-minute circle: a street is covered while every point of it is within 15 minutes of a free unit that may
take a fight."""

from processors.catalogue import Catalogue
from processors.coverage import circle_categories, covered, street_points
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


def test_each_agency_is_judged_for_the_first_priority_one_work_it_leads_else_takes_part_in(catalogue):
    assert {a: c.code for a, c in circle_categories(catalogue).items()} == {
        "police": "PS-FIGHT", "traffic": "TR-ACCIDENT", "city_management": "CM-MANHOLE"}
    # without the priority-1 matters city management leads, the first joint one it supports decides
    supporting = Catalogue(categories=[c for c in catalogue.categories if c.code not in ("CM-MANHOLE", "EM-COLLAPSE")])
    assert circle_categories(supporting)["city_management"].code == "EM-CROWD"
    only_low = Catalogue(categories=[c for c in catalogue.categories if c.priority > 1])
    assert circle_categories(only_low) == {}
