"""A snapshot plus the entries after it gives exactly what the whole work log gives: the same messages, byte for
byte, and the same state."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.district import DistrictCore
from processors.snapshot import restore, snapshot
from tests.processors.scenario import Scenario
from tests.processors.test_district_properties import operation, run

# long waits as well, so that incidents are forgotten a day after they close and report ids after a week
long_wait = st.tuples(st.just("wait"), st.sampled_from([6 * 3600, 25 * 3600, 3 * 86400, 8 * 86400]))
log_of_operations = st.lists(st.one_of(operation, operation, operation, long_wait), max_size=80)


def through_json(doc: dict) -> dict:
    return json.loads(json.dumps(doc))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=log_of_operations, cut=st.floats(0, 1))
def test_a_snapshot_and_the_entries_after_it_decide_as_the_whole_log_does(ops, cut, catalogue, geography):
    s = Scenario(catalogue, geography)
    run(s, ops)
    k = int(cut * len(s.log))
    before = DistrictCore(s.district, catalogue)
    replayed = [m.to_json_bytes() for item in s.log[:k] for m in before.apply(item)]
    restored = restore(through_json(snapshot(before)), catalogue)
    after = [m.to_json_bytes() for item in s.log[k:] for m in restored.apply(item)]
    assert replayed + after == [m.to_json_bytes() for m in s.out]
    assert snapshot(restored) == snapshot(s.core)
    # the indexes were filed again as the core files them
    for index in ("free", "open_incidents"):
        assert getattr(restored.state, index).filed() == getattr(s.core.state, index).filed()
    assert restored.state.grid.members() == s.core.state.grid.members()


def test_report_ids_are_forgotten_a_week_after_their_incident_left_memory(catalogue, geography):
    s = Scenario(catalogue, geography)
    s.log_on("U1", "city_management", 30.654, 104.066)
    s.report("R1", "CM-GARBAGE", 30.654, 104.066)
    order = s.order_of("U1")
    for status in ("ack", "on_scene", "resolved"):
        s.status("U1", status, order_id=order)
    s.wait(2 * 86400)  # closed and forgotten; the report id stays, so a resend changes nothing
    assert s.report("R1", "CM-GARBAGE", 30.654, 104.066) == []
    s.wait(6 * 86400)
    assert "R1" not in s.core.state.reports
    assert len(snapshot(s.core)["reports"]) == 0
