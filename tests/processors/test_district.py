from datetime import timedelta

from processors.district import DistrictCore
from processors.intake import Limits, admit_report
from tests.processors.conftest import NOW, inbound, report


def work_item(catalogue, geography, offset=0, at=NOW, **overrides):
    return admit_report(inbound(report(**overrides), offset=offset, at=at), catalogue, geography, Limits())


def test_a_new_report_creates_an_incident_with_its_catalogue_facts(catalogue, geography):
    core = DistrictCore("JINJIANG", catalogue)
    [event] = core.apply(work_item(catalogue, geography, reporter={"name": "Li Lei", "phone": "13800000001"}))
    assert event.type == "created" and event.seq == 1
    assert event.event_id == f"{event.incident_id}:1"
    assert event.at == NOW
    data = event.data
    assert (data["report_id"], data["category"], data["priority"], data["domain"]) == (
        "R-1", "PS-FIGHT", 1, "public_security")
    assert (data["district"], data["street"]) == ("JINJIANG", "JJ-SYJ")
    assert (data["lat"], data["lon"]) == (30.652, 104.0765)
    assert data["reporter"] == {"name": "Li Lei", "phone": "13800000001"}


def test_a_resent_report_is_not_a_second_incident(catalogue, geography):
    core = DistrictCore("JINJIANG", catalogue)
    first = core.apply(work_item(catalogue, geography, offset=0))
    again = core.apply(work_item(catalogue, geography, offset=1, at=NOW + timedelta(seconds=30)))
    assert len(first) == 1 and again == []
    assert len(core.state.incidents) == 1


def test_incident_ids_depend_on_the_report_not_on_arrival_order(catalogue, geography):
    a, b = (work_item(catalogue, geography, report_id=r) for r in ("R-A", "R-B"))
    one, two = DistrictCore("JINJIANG", catalogue), DistrictCore("JINJIANG", catalogue)
    ids_one = [e.incident_id for item in (a, b) for e in one.apply(item)]
    ids_two = [e.incident_id for item in (b, a) for e in two.apply(item)]
    assert sorted(ids_one) == sorted(ids_two) and len(set(ids_one)) == 2


def test_replaying_the_same_log_yields_the_same_messages(catalogue, geography):
    log = [work_item(catalogue, geography, offset=i, report_id=f"R-{i % 7}", at=NOW + timedelta(seconds=i))
           for i in range(20)]

    def run():
        core = DistrictCore("JINJIANG", catalogue)
        return [m.to_json_bytes() for item in log for m in core.apply(item)]

    first = run()
    assert first == run()
    assert len(first) == 7
