"""The Open311 gateway against the session's real broker, database and worker; fuzzed with schemathesis.

Every POST that passes validation becomes a real IncidentReport that the shared worker turns into an
incident, so tests use unique tokens and points of their own in the sample district (JINJIANG). They post with
a hotline's key (the `gateway` fixture's); keys, roles, limits and what the public reads are tested in
test_gateway_keys.py, formats and conformance in test_open311.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings

from processors.messages import IncidentReport
from streams.operations.embedded import free_port, spawn_child, stop_child
from streams.gateway import create_app, report_id_for
from streams.gateway.keys import client_for
from streams.reference import load_catalogue, load_geography
from streams.runtime.topics import INCIDENT_REPORTS
from tests.streams.conftest import TopicReader, eventually, message, send
from tests.streams.gateway.helpers import a_point, assert_open311_error, post, registered

pytestmark = pytest.mark.integration

NAME, PHONE = "Zhang Xiaoming", "13800138000"


# ----------------------------------------------------------------------------- services


async def test_services_are_the_catalogue(gateway, catalogue):
    for path in ("/services.json", "/services"):
        response = await gateway.get(path)
        assert response.status_code == 200
        services = response.json()
        assert [s["service_code"] for s in services] == catalogue.codes
    fight = next(s for s in services if s["service_code"] == "PS-FIGHT")
    assert fight["service_name"] == "Fight or brawl"
    assert fight["group"] == "public_security"
    assert fight["metadata"] is False and fight["type"] == "realtime"
    assert "police" in fight["keywords"] and "打架斗殴" in fight["keywords"]
    assert "police" in fight["description"]

    response = await gateway.get("/services/PS-FIGHT.json")
    assert response.json() == {"service_code": "PS-FIGHT", "attributes": []}
    assert_open311_error(await gateway.get("/services/NO-SUCH.json"), 404, "NO-SUCH")


# ----------------------------------------------------------------------------- the way in


async def test_a_request_becomes_an_incident(gateway, worker, db, infrastructure, geography, catalogue):
    lat, lon = a_point(geography)
    token = f"test-{uuid.uuid4()}"
    before = datetime.now(timezone.utc)
    response = await post(gateway, {
        "service_code": "CM-MANHOLE", "lat": lat, "long": lon, "address_string": "Shuyuan Street 12",
        "description": "Manhole cover missing in front of the school", "first_name": "Zhang",
        "last_name": "Xiaoming", "phone": PHONE, "email": "z@example.org",
        "media_url": "http://example.org/x.jpg"}, token=token)
    assert response.status_code == 201, response.text
    [created] = response.json()
    request_id = created["service_request_id"]
    assert request_id == report_id_for(gateway.client_name, token) and request_id.startswith("GW-")
    assert created["account_id"] is None and "city_management" in created["service_notice"]
    assert created["token"] == request_id

    # what went onto the stream is a contract IncidentReport, keyed by its report_id
    async with TopicReader(infrastructure, INCIDENT_REPORTS, {request_id}) as reader:
        [published] = await reader.wait_for(lambda records: len(records) >= 1)
    report = IncidentReport.model_validate(published)
    assert (report.source, report.category, report.lat, report.lon) == ("hotline", "CM-MANHOLE", lat, lon)
    assert report.reporter.name == NAME and report.reporter.phone == PHONE
    assert report.reported_at >= before

    found = await registered(gateway, request_id, ready=lambda f: f["description"])
    assert found["service_request_id"] == request_id
    assert found["status"] == "open"
    assert found["service_code"] == "CM-MANHOLE" and found["service_name"] == "Missing or broken manhole cover"
    assert found["agency_responsible"] == "city_management"
    assert (found["lat"], found["long"]) == (lat, lon)
    assert found["address"] == "Shuyuan Street 12"
    requested = datetime.fromisoformat(found["requested_datetime"])
    expected = datetime.fromisoformat(found["expected_datetime"])
    assert expected - requested == timedelta(seconds=catalogue.get("CM-MANHOLE").sla.resolve_s)
    assert requested >= before - timedelta(seconds=1)
    assert found["status_notes"]
    # the posted fields come back to the client that posted them
    assert found["description"] == "Manhole cover missing in front of the school"
    assert found["media_url"] == "http://example.org/x.jpg"
    # personal data is kept in the incident record, and never returned; the public sees no description either
    for path in (f"/requests/{request_id}.json", f"/requests/{request_id}", f"/requests.json?service_request_id={request_id}"):
        text = (await gateway.get(path)).text
        assert request_id in text
        assert NAME not in text and "Zhang" not in text and PHONE not in text and "school" not in text
        own = (await gateway.get(path, params={"api_key": gateway.api_key})).text
        assert NAME not in own and "Zhang" not in own and PHONE not in own and "school" in own
    row = await db.fetchrow("SELECT source, reporter FROM incidents WHERE report_id = $1", request_id)
    assert row["source"] == "hotline" and json.loads(row["reporter"]) == {"name": NAME, "phone": PHONE}


async def test_a_resend_with_the_same_token_is_the_same_request(gateway, worker, db, infrastructure, geography):
    lat, lon = a_point(geography)
    token = f"test-{uuid.uuid4()}"
    fields = {"service_code": "XT-FAST", "lat": lat, "long": lon, "description": "first try"}
    first = await post(gateway, fields, token=token)
    # the same token as a body field, in JSON: still the same request
    second = await post(gateway, {**fields, "client_token": token}, as_json=True)
    third = await post(gateway, fields, token=token, path="/requests")
    assert first.status_code == second.status_code == third.status_code == 201
    ids = {r.json()[0]["service_request_id"] for r in (first, second, third)}
    assert ids == {report_id_for(gateway.client_name, token)}
    [request_id] = ids
    # another body under the same token is refused, and nothing is published for it
    assert_open311_error(await post(gateway, {**fields, "description": "second try"}, token=token), 409,
                         "different request", request_id)
    async with TopicReader(infrastructure, INCIDENT_REPORTS, {request_id}) as reader:
        await reader.wait_for(lambda records: len(records) == 3)  # every resend was published

    # Barrier: a malformed record with the same key shares the resends' partition, so once intake has
    # dead-lettered it, it has forwarded all three to the district's work log; a report posted after that
    # goes into the same work log behind them, so once it is registered the district core has seen them.
    await send(infrastructure, [message(INCIDENT_REPORTS, request_id, {"schema_version": 1, "report_id": request_id})])
    await eventually(lambda: db.fetchval("SELECT count(*) FROM dead_letters WHERE key = $1", request_id))
    behind = await post(gateway, {"service_code": "XT-FAST", "lat": lat, "long": lon}, token=f"test-{uuid.uuid4()}")
    await registered(gateway, behind.json()[0]["service_request_id"])

    assert await db.fetchval("SELECT count(*) FROM incidents WHERE report_id = $1", request_id) == 1
    assert await db.fetchval("SELECT count(*) FROM incident_events WHERE data->>'report_id' = $1", request_id) == 1
    found = await registered(gateway, request_id)
    assert found["service_request_id"] == request_id


async def test_without_a_token_every_post_is_a_new_request(gateway, geography):
    lat, lon = a_point(geography)
    fields = {"service_code": "XT-FAST", "lat": lat, "long": lon}
    first, second = await post(gateway, fields), await post(gateway, fields)
    assert first.status_code == second.status_code == 201
    assert first.json()[0]["service_request_id"] != second.json()[0]["service_request_id"]


async def test_a_merged_report_resolves_to_the_incident_it_joined(gateway, worker, geography):
    lat, lon = a_point(geography)
    fields = {"service_code": "PS-MISSING", "lat": lat, "long": lon}  # merged within 1 km and an hour
    first = (await post(gateway, fields, token=f"test-{uuid.uuid4()}")).json()[0]["service_request_id"]
    original = await registered(gateway, first)
    second = (await post(gateway, {**fields, "lat": lat + 0.001}, token=f"test-{uuid.uuid4()}")).json()[0][
        "service_request_id"]
    merged = await registered(gateway, second)
    assert merged["service_request_id"] == second
    assert merged["incident_id"] == original["incident_id"]
    assert "handled together" in merged["status_notes"]
    assert merged["agency_responsible"] == "police" and merged["status"] == "open"
    # an incident id is understood too
    by_incident = await registered(gateway, original["incident_id"])
    assert by_incident["incident_id"] == original["incident_id"]


# ----------------------------------------------------------------------------- refusals


BAD_POSTS = [
    ({"service_code": "NO-SUCH", "lat": 30.654, "long": 104.0765}, {}, 400, ["NO-SUCH", "unknown"]),
    ({"service_code": "", "lat": 30.654, "long": 104.0765}, {}, 400, ["service_code"]),
    ({"service_code": "PS-FIGHT", "long": 104.0765}, {}, 400, ["lat", "long", "together"]),
    ({"service_code": "PS-FIGHT", "address_string": "Nowhere Lane 12"}, {}, 400, ["no street of the register"]),
    ({"service_code": "PS-FIGHT", "address_id": "XX-NONE"}, {}, 400, ["XX-NONE", "no street"]),
    ({"service_code": "PS-FIGHT"}, {}, 400, ["location is required"]),
    ({"service_code": "PS-FIGHT", "lat": 0, "long": 0}, {}, 400, ["outside the served area"]),
    ({"service_code": "PS-FIGHT", "lat": 91, "long": 104.0765}, {}, 400, ["lat"]),
    ({"service_code": "PS-FIGHT", "lat": "north", "long": 104.0765}, {}, 400, ["lat"]),
    ({"service_code": "PS-FIGHT", "lat": "nan", "long": 104.0765}, {}, 400, ["lat"]),
    ({"service_code": "PS-FIGHT", "lat": 30.654, "long": 104.0765, "description": "x" * 4001}, {}, 400,
     ["description", "4000"]),
    ({"service_code": "PS-FIGHT", "lat": 30.654, "long": 104.0765, "phone": "1" * 41}, {}, 400, ["phone"]),
    ({"service_code": "PS-FIGHT", "lat": 30.654, "long": 104.0765, "client_token": "a"},
     {"Idempotency-Key": "b"}, 400, ["differ"]),
    ({"service_code": "PS-FIGHT", "lat": 30.654, "long": 104.0765}, {"Idempotency-Key": "k" * 201}, 400,
     ["Idempotency-Key"]),
]


@pytest.mark.parametrize("fields, headers, status, words", BAD_POSTS)
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_bad_input_is_refused_clearly(gateway, fields, headers, status, words, as_json):
    fields = {"api_key": gateway.api_key, **fields}
    if as_json:
        response = await gateway.post("/requests.json", json=fields, headers=headers)
    else:
        response = await gateway.post("/requests.json", data=fields, headers=headers)
    assert_open311_error(response, status, *words)


@pytest.mark.parametrize("body, content_type, status, words", [
    (b"{not json", "application/json", 400, ["JSON"]),
    (b"[1, 2]", "application/json", 400, ["object"]),
    (b"[" * 30_000 + b"]" * 30_000, "application/json", 400, ["nested"]),
    (b'{"description": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "application/json", 400, ["nested"]),
    (b"\xff\xfe", "application/x-www-form-urlencoded", 400, ["UTF-8"]),
    (b"service_code=PS-FIGHT", "text/plain", 415, ["application/x-www-form-urlencoded"]),
    (b"description=" + b"x" * 70_000, "application/x-www-form-urlencoded", 413, ["exceeds"]),
])
async def test_unreadable_bodies_are_refused(gateway, body, content_type, status, words):
    response = await gateway.post("/requests.json", content=body, headers={"Content-Type": content_type})
    assert_open311_error(response, status, *words)


async def test_unknown_requests_are_404_and_may_be_in_flight(gateway):
    for path in ("/requests/GW-0000000000000000.json", "/requests/GW-0000000000000000", "/requests/a%00b.json",
                 "/requests/" + "x" * 150 + ".json"):
        assert_open311_error(await gateway.get(path), 404, "still being registered")
    assert_open311_error(await gateway.get("/requests/" + "x" * 300), 400, "service_request_id")


# ----------------------------------------------------------------------------- lists


async def test_requests_are_listed_by_code_status_and_date(gateway, worker, geography):
    started = datetime.now(timezone.utc)
    ids = {}
    for code in ("TR-SIGNAL", "CM-LIGHT"):
        lat, lon = a_point(geography)
        response = await post(gateway, {"service_code": code, "lat": lat, "long": lon}, token=f"test-{uuid.uuid4()}")
        ids[code] = response.json()[0]["service_request_id"]
    for request_id in ids.values():
        await registered(gateway, request_id)

    async def listed(**params) -> list[dict]:
        response = await gateway.get("/requests.json", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def ids_of(items: list[dict]) -> set[str]:
        return {i["service_request_id"] for i in items}

    signal = await listed(service_code="TR-SIGNAL")
    assert ids["TR-SIGNAL"] in ids_of(signal) and ids["CM-LIGHT"] not in ids_of(signal)
    assert {i["service_code"] for i in signal} == {"TR-SIGNAL"}
    assert set(ids.values()) <= ids_of(await listed(service_code="TR-SIGNAL,CM-LIGHT"))
    assert await listed(service_code="NO-SUCH") == []
    assert set(ids.values()) <= ids_of(await listed(status="open"))
    assert not set(ids.values()) & ids_of(await listed(status="closed", limit=1000))
    assert {i["status"] for i in await listed(status="closed", limit=1000)} <= {"closed"}
    assert set(ids.values()) <= ids_of(await listed(status="open,closed"))
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert not set(ids.values()) & ids_of(await listed(start_date=later))
    earlier = (started - timedelta(minutes=5)).isoformat()
    assert not set(ids.values()) & ids_of(await listed(end_date=earlier))
    assert set(ids.values()) <= ids_of(await listed(start_date=earlier, service_code="TR-SIGNAL,CM-LIGHT"))
    assert len(await listed(limit=1)) == 1
    newest_first = await listed(limit=1000)
    stamps = [i["requested_datetime"] for i in newest_first]
    assert stamps == sorted(stamps, reverse=True)
    assert ids_of(await listed(service_request_id=f"{ids['TR-SIGNAL']},{ids['CM-LIGHT']},GW-unknown")) == set(
        ids.values())
    assert NAME not in json.dumps(newest_first)

    for params, words in [({"status": "pending"}, ["status"]), ({"limit": 0}, ["limit"]),
                          ({"limit": 5000}, ["limit"]), ({"start_date": "yesterday"}, ["start_date"]),
                          ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, ["90 days"]),
                          ({"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, ["earlier"])]:
        assert_open311_error(await gateway.get("/requests.json", params=params), 400, *words)


# ----------------------------------------------------------------------------- the document and operations


async def test_openapi_document_and_operations_endpoints(gateway):
    document = (await gateway.get("/openapi.json")).json()
    assert {"/services.json", "/requests.json", "/requests/{service_request_id}.json"} <= set(document["paths"])
    post_op = document["paths"]["/requests.json"]["post"]
    assert {"application/x-www-form-urlencoded", "application/json"} == set(post_op["requestBody"]["content"])
    assert "422" not in json.dumps(document["paths"])
    assert (await gateway.get("/healthz")).status_code == 200
    assert (await gateway.get("/readyz")).status_code == 200
    assert (await gateway.get("/services.json")).status_code == 200  # a request of its own, counted below
    metrics = (await gateway.get("/metrics")).text
    assert 'patrol_gateway_requests_total{code="200",operation="list_services_json"}' in metrics
    assert "patrol_gateway_rejections_total" in metrics


async def test_the_gateway_is_ready_only_while_it_can_publish(infrastructure, tmp_path):
    """/readyz asks the broker for fresh metadata: with the broker gone the gateway is not ready (a POST could not
    be published), while /healthz, answered by its event loop, stays 200 (a restart would not bring the broker back)."""
    from streams.operations.embedded import embedded_broker
    from streams.runtime.topics import ensure_topics

    broker = embedded_broker(infrastructure, tmp_path).start()
    try:
        site = infrastructure.with_overrides(kafka_bootstrap=broker.bootstrap)
        await ensure_topics(site)
        app = create_app(site)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
                ready = await client.get("/readyz")
                assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
                broker.stop()

                async def refused():
                    answer = await client.get("/readyz")
                    return answer if answer.status_code == 503 else None

                answer = (await eventually(refused, timeout=60)).json()
                assert answer["status"] == "not ready"
                assert [reason.split(":")[0] for reason in answer["reasons"]] == ["kafka"]
                assert (await client.get("/healthz")).status_code == 200
    finally:
        broker.stop()


async def test_patrol_gateway_serves_the_api(infrastructure, tmp_path):
    """The CLI verb as an operator runs it: a real uvicorn process on a port."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}, **infrastructure.to_env()}
    process = spawn_child([sys.executable, "-m", "streams.cli", "gateway", "--port", str(port)],
                          log=tmp_path / "gateway.log", death_signal=signal.SIGTERM, env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async def services():
                assert process.poll() is None, (tmp_path / "gateway.log").read_text()
                try:
                    return (await client.get("/services.json")).json()
                except httpx.TransportError:
                    return None

            assert "PS-FIGHT" in {s["service_code"] for s in await eventually(services, timeout=60)}
            assert (await client.get("/readyz")).status_code == 200
    finally:
        stop_child(process, signal.SIGTERM, timeout=15)
    assert process.returncode is not None


def test_patrol_gateway_needs_a_broker_and_a_database():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    result = subprocess.run([sys.executable, "-m", "streams.cli", "gateway"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "PATROL_KAFKA_BOOTSTRAP" in result.stderr and "PATROL_DATABASE_URL" in result.stderr


# ----------------------------------------------------------------------------- fuzzing


FUZZ_EXAMPLES = 30  # per operation and mode: 21 operations x 2 modes x 30 examples, about 40 s


def test_schemathesis_finds_no_server_error(served_gateway, keys):
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{served_gateway}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # seven Open311 operations, each as .json, .xml and bare; the complainant's feedback, with and without .json;
    # the command API's four (without a token: 401, documented)
    assert len(operations) == 27
    for operation in operations:
        # discovery takes no input at all: nothing to make negative
        modes = [GenerationMode.POSITIVE]
        if not operation.path.startswith("/discovery"):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            checks = [not_a_server_error]
            if mode is GenerationMode.POSITIVE:
                checks += [status_code_conformance, content_type_conformance, response_schema_conformance]

            @hypothesis_settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                                 suppress_health_check=list(HealthCheck),
                                 phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case):
                if mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
                    case.body["api_key"] = keys["hotline"]  # past the key, into the fields' validation
                case.call_and_validate(base_url=served_gateway, checks=checks, timeout=20)

            fuzz()
