"""Implausible locations: a unit cannot be somewhere its mode of travel could not have taken it."""

from datetime import datetime, timedelta, timezone

import pytest

from processors.messages import DeadLetter
from processors.units import Unit, implausible_move
from tests.processors.scenario import Scenario

AT = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


def unit(mode: str) -> Unit:
    return Unit(unit_id="U", agency="police", kind="officer", home_street="S", mode=mode, delegations=frozenset(),
                lat=30.65, lon=104.07, located_at=AT)


@pytest.mark.parametrize("mode", ["foot", "bike", "car"])
def test_a_5_km_jump_in_one_second_is_implausible_in_every_mode(mode):
    why = implausible_move(unit(mode), 30.65 + 5000 / 111_000, 104.07, AT + timedelta(seconds=1))
    assert why is not None and "moved 5" in why


def test_what_the_mode_can_cover_is_plausible_and_more_is_not():
    north_1km = 30.65 + 1000 / 111_000
    assert implausible_move(unit("car"), north_1km, 104.07, AT + timedelta(seconds=60)) is None
    assert implausible_move(unit("foot"), north_1km, 104.07, AT + timedelta(seconds=60)) is not None
    assert implausible_move(unit("foot"), north_1km, 104.07, AT + timedelta(minutes=10)) is None


def test_the_district_core_refuses_an_implausible_location_and_keeps_the_last_one(catalogue, geography):
    s = Scenario(catalogue, geography)
    s.log_on("P1", "police", 30.6525, 104.0765, mode="foot")
    out = s.unit_event("P1", "location", lat=30.6525 + 0.05, lon=104.0765)
    assert [d.reason for d in out if isinstance(d, DeadLetter)] == ["implausible_location"]
    assert s.core.state.units["P1"].lat == 30.6525
    assert not [d for d in s.unit_event("P1", "location", lat=30.6527, lon=104.0765) if isinstance(d, DeadLetter)]
