"""Properties of the district core over random work logs (hypothesis)."""

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.district import DistrictCore
from tests.processors.scenario import Scenario

POINTS = [(30.654, 104.066), (30.654, 104.0765), (30.650, 104.100), (30.620, 104.070), (30.615, 104.120),
          (30.580, 104.080), (30.580, 104.120), (30.660, 104.140)]
UNITS = [f"U{i}" for i in range(6)]
CATEGORIES = ["PS-FIGHT", "PS-NOISE", "TR-ACCIDENT", "TR-PARKING", "CM-GARBAGE", "EM-CROWD", "PS-THEFT"]

unit_profile = st.fixed_dictionaries({
    "agency": st.sampled_from(["police", "traffic", "city_management"]),
    "kind": st.sampled_from(["officer", "officer", "auxiliary"]),
    "mode": st.sampled_from(["foot", "bike", "car"]),
    "delegations": st.sampled_from([(), ("TR-PARKING",), ("CM-GARBAGE", "PS-NOISE")]),
    "point": st.sampled_from(POINTS),
})
operation = st.one_of(
    st.tuples(st.just("log_on"), st.sampled_from(UNITS), unit_profile),
    st.tuples(st.just("report"), st.integers(0, 30), st.sampled_from(CATEGORIES), st.sampled_from(POINTS)),
    st.tuples(st.just("status"), st.sampled_from(UNITS),
              st.sampled_from(["ack", "en_route", "on_scene", "resolved", "decline"]), st.booleans()),
    st.tuples(st.just("presence"), st.sampled_from(UNITS), st.sampled_from(["log_off", "unavailable", "available"])),
    st.tuples(st.just("move"), st.sampled_from(UNITS), st.sampled_from(POINTS)),
    st.tuples(st.just("wait"), st.integers(1, 3600)),
    # a dispatcher's command (processors/commands.py) for one of the incidents, possible or not
    st.tuples(st.just("command"), st.integers(0, 30),
              st.sampled_from(["assign", "add_unit", "reassign", "cancel", "close", "acknowledge_escalation",
                               "verify"]),
              st.sampled_from(UNITS), st.sampled_from([None, *UNITS]),
              st.sampled_from(["satisfied", "not_resolved"]), st.sampled_from(["dispatcher", "supervisor"])),
)


def run(s: Scenario, ops) -> None:
    for op in ops:
        kind = op[0]
        if kind == "log_on":
            _, unit_id, p = op
            s.log_on(unit_id, p["agency"], *p["point"], mode=p["mode"], kind=p["kind"], delegations=p["delegations"])
        elif kind == "report":
            _, n, category, point = op
            s.report(f"R{n}", category, *point)
        elif kind == "status":
            _, unit_id, type_, own_order = op
            unit = s.core.state.units.get(unit_id)
            order_id = unit.order_id if (own_order and unit is not None and unit.order_id) else "INC-X-O1"
            s.status(unit_id, type_, order_id=order_id, **({"outcome": "done"} if type_ == "resolved" else {}))
        elif kind == "presence":
            s.unit_event(op[1], op[2])
        elif kind == "move":
            s.unit_event(op[1], "location", lat=op[2][0], lon=op[2][1])
        elif kind == "command":
            _, n, type_, unit_id, other, outcome, role = op
            incidents = sorted(s.core.state.incidents)
            if not incidents:
                continue
            incident = s.core.state.incidents[incidents[n % len(incidents)]]
            raised = sorted(f"{incident.incident_id}:L{level}:{reason}" for level, reason in incident.raised)
            s.command(type_, incident.incident_id, by=("someone", role), unit_id=other if type_ == "reassign" else unit_id,
                      replaces=unit_id if type_ == "reassign" else None, outcome=outcome,
                      escalation_id=raised[n % len(raised)] if raised else None)
        else:
            s.wait(op[1])


def check_invariants(core: DistrictCore) -> None:
    state = core.state
    holders = Counter(a.unit_id for i in state.incidents.values() for a in i.active.values())
    # no unit ever holds two active assignments
    assert all(n == 1 for n in holders.values()), holders
    for unit in state.units.values():
        if unit.order_id is None:
            assert holders[unit.unit_id] == 0
        else:
            incident_id, agency = state.orders[unit.order_id]
            assert state.incidents[incident_id].active[agency].unit_id == unit.unit_id
    # nobody waits while a unit that could serve them is free
    for incident_id in state.queue:
        incident = state.incidents[incident_id]
        assert incident.missing(), "a queued incident with every place filled"
        for unit in state.units.values():
            if unit.free and unit.unit_id not in incident.excluded:
                assert not any(unit.may_act_for(incident.category, a) for a in incident.missing()), (
                    f"{unit.unit_id} is free and could serve queued {incident_id}")
    # every open incident with an empty place is in the queue
    for incident in state.incidents.values():
        if incident.is_open and incident.missing() and incident.active == {} and not incident.resolved:
            assert incident.incident_id in state.queue
    # the per-street count of free units that balancing relies on matches a recount
    recount = Counter(u.home_street for u in state.units.values() if u.free)
    assert dict(recount) == state.load.free_units
    # the index dispatching searches files exactly the free units, under their authorities, where they are
    assert state.free.filed() == {u.unit_id: (u.authorities(), (u.lat, u.lon, u.seconds_per_m))
                                  for u in state.units.values() if u.free}
    # and the one a report is checked against for duplicates, exactly the open incidents
    assert state.open_incidents.filed() == {i.incident_id: (frozenset({i.category.code}), (i.lat, i.lon, 1.0))
                                            for i in state.incidents.values() if i.is_open}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, max_size=60))
def test_invariants_hold_after_every_step(ops, catalogue, geography):
    s = Scenario(catalogue, geography)
    for op in ops:
        run(s, [op])
        check_invariants(s.core)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, max_size=60))
def test_replaying_the_work_log_yields_the_same_decisions(ops, catalogue, geography):
    s = Scenario(catalogue, geography)
    run(s, ops)
    replay = DistrictCore(s.district, catalogue)
    again = [m.to_json_bytes() for item in s.log for m in replay.apply(item)]
    assert again == [m.to_json_bytes() for m in s.out]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, max_size=40), profile=unit_profile)
def test_every_waiting_incident_is_assigned_once_an_eligible_unit_appears(ops, profile, catalogue, geography):
    s = Scenario(catalogue, geography)
    run(s, ops)
    waiting = {i: set(s.core.state.incidents[i].missing()) for i in s.core.state.queue}
    s.log_on("NEWCOMER", profile["agency"], *profile["point"], mode=profile["mode"], kind=profile["kind"],
             delegations=profile["delegations"])
    newcomer = s.core.state.units["NEWCOMER"]
    if newcomer.free:
        # it was free after serving the queue: then nothing waiting was something it could do
        for incident_id, missing in waiting.items():
            category = s.core.state.incidents[incident_id].category
            still = s.core.state.incidents[incident_id].missing()
            assert not any(newcomer.may_act_for(category, a) for a in still)
    else:
        # a waiting incident, or a priority-1 place it took over from a unit much further away (dispatch.take_over;
        # the unit relieved is offered the queue in turn)
        taken = s.core.state.incidents[newcomer.incident_id]
        assert newcomer.incident_id in waiting or taken.priority == 1
