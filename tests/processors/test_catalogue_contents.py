"""What the shipped catalogue and unit roster of the sample district must say, not just how they parse."""

import math
from collections import Counter, defaultdict
from importlib import resources

import pytest

from processors.messages import LogOn

AGENCIES = {"police", "traffic", "city_management"}
DOMAINS = {"public_security", "traffic", "city_management"}
PREFIXES = ("PS-", "TR-", "CM-", "EM-")
KEPT_CODES = ["PS-FIGHT", "PS-THEFT", "PS-NOISE", "TR-ACCIDENT", "TR-PARKING", "CM-VENDING", "CM-GARBAGE", "EM-CROWD"]
HOUR, DAY = 3600, 86400

# Local equirectangular approximation at the district's latitude.
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(30.6))


def by_name_zh(catalogue, word):
    """The one category whose Chinese name contains `word` (so the test does not hard-code new codes)."""
    found = [c for c in catalogue.categories if c.name_zh and word in c.name_zh]
    assert len(found) == 1, f"expected one category named like {word!r}, found {[c.code for c in found]}"
    return found[0]


@pytest.fixture(scope="module")
def roster_lines():
    text = resources.files("processors.data").joinpath("roster.jsonl").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def roster(roster_lines):
    return [LogOn.model_validate_json(line) for line in roster_lines]


def area_km2(polygon) -> float:
    return polygon.area * M_PER_DEG_LAT * M_PER_DEG_LON / 1e6


# --- the catalogue ---


def test_the_catalogue_is_large_enough_and_keeps_the_codes_samples_use(catalogue):
    assert len(catalogue.categories) >= 20
    for code in KEPT_CODES:
        assert catalogue.get(code) is not None, code


def test_every_domain_has_at_least_five_categories(catalogue):
    per_domain = Counter(c.domain for c in catalogue.categories)
    assert set(per_domain) == DOMAINS
    assert all(n >= 5 for n in per_domain.values()), per_domain


def test_codes_carry_a_domain_prefix_and_only_known_agencies(catalogue):
    for c in catalogue.categories:
        assert c.code.startswith(PREFIXES), c.code
        assert set(c.agencies) <= AGENCIES, c.code
        assert len(set(c.agencies)) == len(c.agencies), f"{c.code} names an agency twice"
        assert c.name_zh, f"{c.code} has no Chinese name"


def test_prefix_matches_domain_outside_emergencies(catalogue):
    expected = {"PS-": "public_security", "TR-": "traffic", "CM-": "city_management"}
    for c in catalogue.categories:
        prefix = c.code[:3]
        if prefix in expected:
            assert c.domain == expected[prefix], c.code


def test_joint_dispatch_categories(catalogue):
    joint = [c for c in catalogue.categories if c.is_joint]
    assert len(joint) >= 3, [c.code for c in joint]
    assert sorted(catalogue.get("EM-CROWD").agencies) == ["city_management", "police", "traffic"]


def test_road_waterlogging_needs_traffic_and_city_management(catalogue):
    waterlogging = by_name_zh(catalogue, "积水")
    assert {"traffic", "city_management"} <= set(waterlogging.agencies)


def test_priority_one_means_minutes(catalogue):
    urgent = [c for c in catalogue.categories if c.priority == 1]
    assert len(urgent) >= 3
    for c in urgent:
        assert c.sla.ack_s <= 120, c.code
        assert c.sla.arrive_s <= 900, c.code
        assert not c.auxiliary_ok, f"{c.code}: an auxiliary may not take a priority-1 matter alone"


def test_time_limits_are_ordered(catalogue):
    for c in catalogue.categories:
        assert c.sla.ack_s < c.sla.arrive_s < c.sla.resolve_s, c.code


def test_urgent_categories_are_not_slower_than_minor_ones(catalogue):
    slowest_p1 = max(c.sla.arrive_s for c in catalogue.categories if c.priority == 1)
    fastest_p4 = min(c.sla.arrive_s for c in catalogue.categories if c.priority >= 4)
    assert slowest_p1 < fastest_p4


def test_illegal_construction_is_resolved_in_days(catalogue):
    build = by_name_zh(catalogue, "违法建设")
    assert build.domain == "city_management"
    assert 3 * DAY <= build.sla.resolve_s <= 30 * DAY
    assert not build.auxiliary_ok


def test_garbage_is_resolved_in_hours(catalogue):
    garbage = catalogue.get("CM-GARBAGE")
    assert 2 * HOUR <= garbage.sla.resolve_s <= 48 * HOUR


def test_a_missing_manhole_cover_is_urgent(catalogue):
    manhole = by_name_zh(catalogue, "井盖")
    assert manhole.priority <= 2
    assert manhole.sla.arrive_s <= 900


def test_city_management_covers_the_digital_city_management_classes(catalogue):
    # 宣传广告, 施工管理, 街面秩序 and 突发事件 each have a representative.
    for word in ("户外广告", "小广告", "施工", "渣土", "店外经营", "占道经营", "井盖", "路灯"):
        assert by_name_zh(catalogue, word).domain == "city_management", word


def test_dedup_is_sensible(catalogue):
    for c in catalogue.categories:
        assert 10 <= c.dedup.radius_m <= 2000, c.code
        assert 300 <= c.dedup.window_s <= 60 * DAY, c.code


def test_auxiliaries_may_act_alone_only_on_minor_matters(catalogue):
    allowed = [c for c in catalogue.categories if c.auxiliary_ok]
    assert allowed, "some minor categories should be open to auxiliaries"
    for c in allowed:
        assert c.priority >= 3 and not c.is_joint, c.code


# --- the roster ---


def test_every_roster_line_is_a_log_on(roster_lines, roster):
    assert 50 <= len(roster) <= 100
    assert len(roster) == len(roster_lines)
    for unit in roster:
        assert unit.type == "log_on"
        assert unit.district == "JINJIANG"
        assert unit.agency in AGENCIES
        assert unit.at.utcoffset() is not None


def test_unit_and_event_ids_are_unique(roster):
    ids = [u.unit_id for u in roster]
    assert len(set(ids)) == len(ids), [i for i, n in Counter(ids).items() if n > 1]
    events = [u.event_id for u in roster]
    assert len(set(events)) == len(events)


def test_unit_ids_name_agency_and_street(roster):
    prefix = {"police": "PS", "traffic": "TR", "city_management": "CM"}
    for u in roster:
        agency, street, number = u.unit_id.split("-")
        assert agency == prefix[u.agency], u.unit_id
        assert u.home_street == f"JJ-{street}", u.unit_id
        assert number.startswith("A") == (u.kind == "auxiliary"), u.unit_id


def test_each_unit_stands_in_its_home_street(roster, geography):
    for u in roster:
        assert u.home_street in geography.by_code, u.unit_id
        street = geography.locate(u.lat, u.lon)
        assert street is not None and street.street == u.home_street, u.unit_id


def test_every_street_has_units_of_every_agency(roster, geography):
    agencies = defaultdict(set)
    for u in roster:
        agencies[u.home_street].add(u.agency)
    for street in geography.streets:
        assert agencies[street.street] == AGENCIES, street.street


def test_delegations_are_for_another_agencys_categories(roster, catalogue):
    delegated = [u for u in roster if u.delegations]
    assert delegated
    for u in delegated:
        for code in u.delegations:
            category = catalogue.get(code)
            assert category is not None, f"{u.unit_id}: unknown code {code}"
            assert u.agency not in category.agencies, f"{u.unit_id} needs no delegation for {code}"


def test_city_management_teams_take_parking_for_traffic(roster):
    teams = [u for u in roster if u.agency == "city_management" and "TR-PARKING" in u.delegations]
    assert len(teams) >= 3
    traffic_for_cm = [u for u in roster if u.agency == "traffic" and any(c.startswith("CM-") for c in u.delegations)]
    assert traffic_for_cm


def test_each_agency_has_officers_and_auxiliaries(roster):
    kinds = defaultdict(Counter)
    for u in roster:
        kinds[u.agency][u.kind] += 1
    assert set(kinds) == AGENCIES
    for agency, count in kinds.items():
        assert count["officer"] >= 1 and count["auxiliary"] >= 1, agency
        assert count["officer"] > count["auxiliary"], agency


def test_the_roster_is_uneven_over_the_area(roster, geography):
    units = Counter(u.home_street for u in roster)
    density = {s.street: units[s.street] / area_km2(s.polygon) for s in geography.streets}
    best, worst = max(density, key=density.get), min(density, key=density.get)
    assert density[best] >= 3 * density[worst], density
    # The large southern streets are the thin ones, which is what makes balancing matter.
    thin = sorted(density, key=density.get)[:3]
    assert {"JJ-CLL", "JJ-SS"} <= set(thin), thin


def test_the_area_approximation_is_plausible(geography):
    # Guards the density test: the sample district is some tens of km², not degrees².
    total = sum(area_km2(s.polygon) for s in geography.streets)
    assert 50 < total < 200
