"""Who may act on what: the authority keys the free-unit index files units under say what may_act_for says."""

from hypothesis import given
from hypothesis import strategies as st

from processors.units import Unit, places_for

CODES = ["PS-FIGHT", "PS-NOISE", "TR-PARKING", "CM-GARBAGE", "EM-CROWD"]


@given(agency=st.sampled_from(["police", "traffic", "city_management"]),
       kind=st.sampled_from(["officer", "auxiliary"]),
       delegations=st.frozensets(st.sampled_from(CODES), max_size=3),
       code=st.sampled_from(CODES), place=st.sampled_from(["police", "traffic", "city_management"]))
def test_a_unit_is_filed_under_a_place_exactly_when_it_may_fill_it(catalogue, agency, kind, delegations, code, place):
    unit = Unit(unit_id="U1", agency=agency, kind=kind, home_street="S", mode="car", delegations=delegations,
                lat=30.6, lon=104.1)
    category = catalogue.get(code)
    filed = not unit.authorities().isdisjoint(places_for(category, place))
    assert filed == unit.may_act_for(category, place)
