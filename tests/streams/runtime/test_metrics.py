"""The worker's /metrics as Prometheus reads it: the figures follow what happened, and no label carries an id."""

import json
import urllib.request
import uuid
from importlib import resources
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from processors.catalogue import parse_catalogue
from processors.geography import parse_geography
from processors.units import StreetLoad
from streams.runtime import metrics
from streams.runtime.topics import DISPATCH_ORDERS
from tests.processors.scenario import Scenario
from tests.streams.conftest import Field, TopicReader, eventually, send

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[str, list]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(body)}


def value(samples, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


async def test_the_worker_exports_what_the_command_centre_watches(infrastructure, worker, db, isolated_district):
    f = Field(isolated_district)
    busy, idle = f"{f.run}-P1", f"{f.run}-T1"
    await f.log_on_all(infrastructure, db, [(busy, "police", isolated_district.point(east_m=100)),
                                           (idle, "traffic", isolated_district.point(east_m=400))])
    await send(infrastructure, [f.report(f"{f.run}-r", "PS-FIGHT", isolated_district.point())])
    async with TopicReader(infrastructure, DISPATCH_ORDERS, {busy}) as orders:
        [order] = await orders.wait_for(lambda r: len(r) >= 1)
    await send(infrastructure, [f.status(busy, "ack", order["order_id"])])

    district = isolated_district.district
    street = isolated_district.streets[0]

    async def described():
        families = scrape(worker.settings.metrics_port)
        units = families.get("patrol_units", [])
        ready = (value(units, "patrol_units", district=district, status="busy") == 1
                 and value(families.get("patrol_response_seconds", []), "patrol_response_seconds_count",
                           stage="acknowledge", domain="public_security") >= 1
                 # lag is measured every 5 s, of partitions fetched from: a worker that has just started may
                 # not have measured it yet
                 and any(s.name == "patrol_consumer_lag" for s in families.get("patrol_consumer_lag", [])))
        return families if ready else None

    families = await eventually(described, timeout=30)
    assert value(families["patrol_units"], "patrol_units", district=district, street=street, agency="traffic",
                 status="free") == 1
    assert value(families["patrol_open_incidents"], "patrol_open_incidents", district=district,
                 domain="public_security", priority="1") == 1
    assert value(families["patrol_dispatch_orders"], "patrol_dispatch_orders_total", kind="assign",
                 agency="police") >= 1
    assert value(families["patrol_dispatch_decision_seconds"], "patrol_dispatch_decision_seconds_count") >= 1
    # the report's wait between its publication and intake, by the publisher's timestamp
    assert value(families["patrol_intake_wait_seconds"], "patrol_intake_wait_seconds_count") >= 1
    assert value(families["patrol_sla_outcomes"], "patrol_sla_outcomes_total", stage="acknowledge",
                 outcome="met") >= 1
    assert value(families["patrol_worker_info"], "patrol_worker_info", app_id=infrastructure.app_id) == 1
    # the 15-minute circle: the free traffic car covers its street; the police car is busy, and nobody else is on
    for other in isolated_district.streets:
        assert value(families["patrol_street_circle_covered"], "patrol_street_circle_covered", district=district,
                     street=other, agency="traffic") == 1
        assert value(families["patrol_street_circle_covered"], "patrol_street_circle_covered", district=district,
                     street=other, agency="police") == 0

    # bounded labels only: no incident, order, unit or report id anywhere
    for samples in families.values():
        for sample in samples:
            for label in sample.labels.values():
                assert f.run not in label and not label.startswith("INC-"), (sample.name, sample.labels)


def _core(district: str, units: list[tuple[str, str]]):
    """A stand-in district core with free units (home street, agency) and nothing else."""
    state = SimpleNamespace(
        district=district, open_incidents=[], incidents={}, queue=[],
        units={f"{district}-{i}": SimpleNamespace(on_duty=True, free=True, order_id=None, home_street=street,
                                                  agency=agency) for i, (street, agency) in enumerate(units)},
        load=SimpleNamespace(open_incidents={}, free_units={}))
    return SimpleNamespace(state=state)


def test_a_scrape_during_an_update_finds_every_unit_series_and_gone_ones_are_dropped(monkeypatch):
    district = f"GAUGE-{uuid.uuid4().hex[:6]}"
    series = f'patrol_units{{agency="police",district="{district}",status="free",street="S1"}} 1.0'
    metrics.describe_districts([_core(district, [("S1", "police"), ("S2", "traffic")])])
    assert series in generate_latest(REGISTRY).decode()

    # the exposition thread may scrape at any point of the next update: here, at each series it sets
    seen_mid_update = []
    labels = metrics.UNITS.labels

    def scraping_labels(*values):
        seen_mid_update.append(series in generate_latest(REGISTRY).decode())
        return labels(*values)

    monkeypatch.setattr(metrics.UNITS, "labels", scraping_labels)
    metrics.describe_districts([_core(district, [("S1", "police")])])
    monkeypatch.undo()

    assert seen_mid_update and all(seen_mid_update), "a scrape during the update found the series missing"
    after = generate_latest(REGISTRY).decode()
    assert series in after
    assert f'district="{district}",status="free",street="S2"' not in after  # the traffic unit went off duty


def test_invented_streets_and_agencies_never_become_labels():
    district = f"GAUGE-{uuid.uuid4().hex[:6]}"
    invented = [(f"STREET-{uuid.uuid4().hex}", f"agency-{uuid.uuid4().hex}") for _ in range(5000)]
    core = _core(district, invented + [("S1", "police")])
    core.state.load = StreetLoad(free_units={street: 1 for street, _ in invented})
    metrics.describe_districts([core], streets={"S1"}, agencies={"police"})
    exposition = generate_latest(REGISTRY).decode()
    ours = [line for line in exposition.splitlines() if f'district="{district}"' in line]
    # free units on S1 for police, and the 5,000 others under one "unknown" street and agency; one workload series
    assert len(ours) <= 4, ours
    assert f'patrol_units{{agency="unknown",district="{district}",status="free",street="unknown"}} 5000.0' in exposition
def _circle(district: str, street: str, agency: str) -> float | None:
    return REGISTRY.get_sample_value("patrol_street_circle_covered",
                                     {"district": district, "street": street, "agency": agency})


def test_the_fifteen_minute_circle_follows_the_free_officers():
    data = resources.files("processors.data")
    catalogue = parse_catalogue(data.joinpath("catalogue.yaml").read_text())
    geography = parse_geography(json.loads(data.joinpath("geography.geojson").read_text()))
    circle = metrics.ServiceCircle(geography, catalogue)
    assert {agency: c.code for agency, c in circle.categories.items()} == {
        "police": "PS-FIGHT", "traffic": "TR-ACCIDENT", "city_management": "CM-MANHOLE"}
    s = Scenario(catalogue, geography)
    old_town, sansheng = (30.654, 104.066), (30.580, 104.120)  # JJ-CXL in the north-west, JJ-SS 9 km south-east
    s.log_on("P1", "police", *old_town)

    def describe():
        metrics.describe_districts([s.core], streets=frozenset(geography.by_code),
                                   agencies={"police", "traffic", "city_management"}, circle=circle)

    describe()
    assert _circle("JINJIANG", "JJ-CXL", "police") == 1
    assert _circle("JINJIANG", "JJ-SS", "police") == 0  # too far for the car
    assert _circle("JINJIANG", "JJ-CXL", "traffic") == 0  # no traffic unit on duty
    assert _circle("JINJIANG", "JJ-CXL", "city_management") == 0
    # every street of the district and every agency with priority-1 work has its series, and no other
    ours = {(sample.labels["street"], sample.labels["agency"]) for family in REGISTRY.collect()
            if family.name == "patrol_street_circle_covered" for sample in family.samples
            if sample.labels["district"] == "JINJIANG"}
    assert ours == {(street.street, agency) for street in geography.streets if street.district == "JINJIANG"
                    for agency in ("police", "traffic", "city_management")}

    s.report("R1", "PS-NOISE", old_town[0], old_town[1] + 0.0005)  # the only police car is sent to it
    assert s.core.state.units["P1"].order_id is not None
    describe()
    assert _circle("JINJIANG", "JJ-CXL", "police") == 0

    s.log_on("P2", "police", *sansheng)
    describe()
    assert _circle("JINJIANG", "JJ-SS", "police") == 1 and _circle("JINJIANG", "JJ-CXL", "police") == 0


def test_every_escalation_reason_has_a_breach_stage():
    """An escalation whose reason the metrics did not know would fail its work-log entry (the outputs unpublished)."""
    import typing
    from datetime import datetime, timezone

    from processors.messages import Escalation, WorkItem

    reasons = typing.get_args(Escalation.model_fields["reason"].annotation)
    assert set(reasons) == set(metrics.BREACH_STAGE)
    at = datetime(2026, 11, 25, tzinfo=timezone.utc)
    for reason in reasons:
        escalation = Escalation(schema_version=1, escalation_id=f"X:L2:{reason}", incident_id="X", level=2,
                                reason=reason, deadline=at, at=at, district="D", street="S", category="PS-FIGHT")
        metrics.observe(escalation, WorkItem(kind="tick", district="D", at=at), at, lambda code: "public_security")
