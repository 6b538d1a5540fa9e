"""A gateway that knows its callers, against the session's real broker, PostgreSQL and worker: API keys issued and
revoked with `patrol keys` and kept as hashes, 403 for a bad key, rate limits per address and per key, CORS, what
each role may post, what the public reads, idempotency keys scoped to the client, and intake's admission."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid

import httpx
import pytest

from processors.messages import IncidentReport
from streams.gateway import create_app, report_id_for
from streams.runtime.topics import INCIDENT_REPORTS
from tests.streams.conftest import TopicReader, eventually, message, send
from tests.streams.gateway.conftest import issue, roomy
from tests.streams.gateway.helpers import a_point, assert_open311_error, post, registered

pytestmark = pytest.mark.integration


def patrol(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}, **settings.to_env()}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


async def app_client(settings):
    """An app of its own (its own rate-limit windows), as an async context manager yielding the client."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def run():
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
                yield c

    return run()


# ----------------------------------------------------------------------------- keys


async def test_keys_are_issued_hashed_and_revoked_with_the_cli(infrastructure, gateway, db, geography):
    client = f"test-cli-{uuid.uuid4().hex[:8]}"
    issued = patrol(infrastructure, "keys", "issue", "--client", client, "--role", "citizen_app")
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip()
    assert len(key) >= 43 and "not shown again" in issued.stderr
    row = await db.fetchrow("SELECT * FROM gateway_clients WHERE client = $1", client)
    # only the hash is kept
    assert row["key_sha256"] == hashlib.sha256(key.encode()).hexdigest() and row["role"] == "citizen_app"
    assert key not in str(dict(row))
    again = patrol(infrastructure, "keys", "issue", "--client", client, "--role", "hotline")
    assert again.returncode == 2 and "revoke it first" in again.stderr
    assert patrol(infrastructure, "keys", "issue", "--client", "a b", "--role", "sensor").returncode == 2
    listed = patrol(infrastructure, "keys", "list")
    assert listed.returncode == 0 and client in listed.stdout and key not in listed.stdout

    lat, lon = a_point(geography)
    fields = {"service_code": "CM-LIGHT", "lat": lat, "long": lon}
    assert (await post(gateway, fields, key=key)).status_code == 201
    revoked = patrol(infrastructure, "keys", "revoke", "--client", client)
    assert revoked.returncode == 0, revoked.stderr
    assert_open311_error(await post(gateway, fields, key=key), 403, "api_key", "revoked")
    assert patrol(infrastructure, "keys", "revoke", "--client", client).returncode == 1


@pytest.mark.parametrize("key", [None, "", "not-a-key", "x" * 300])
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_a_write_without_a_good_key_is_403(gateway, geography, key, as_json):
    lat, lon = a_point(geography)
    fields = {"service_code": "CM-LIGHT", "lat": lat, "long": lon, "api_key": key}
    response = await (gateway.post("/requests.json", json=fields) if as_json else
                      gateway.post("/requests.json", data={k: v for k, v in fields.items() if v is not None}))
    assert_open311_error(response, 403, "api_key")
    # and in XML, as GeoReport v2's error document
    xml = await gateway.post("/requests.xml", data={"service_code": "CM-LIGHT", "lat": lat, "long": lon})
    assert xml.status_code == 403 and xml.headers["content-type"].startswith("text/xml")
    assert "<errors><error><code>403</code>" in xml.text


async def test_a_key_in_the_query_string_is_accepted_and_a_bad_one_on_a_read_is_403(gateway, geography):
    lat, lon = a_point(geography)
    response = await gateway.post("/requests.json", params={"api_key": gateway.api_key},
                                  data={"service_code": "TR-SIGNAL", "lat": lat, "long": lon})
    assert response.status_code == 201, response.text
    assert_open311_error(await gateway.get("/requests.json", params={"api_key": "wrong"}), 403, "api_key")


# ----------------------------------------------------------------------------- rate limits and CORS


async def test_rate_limits_per_address_and_per_key(infrastructure, issued):
    tight = infrastructure.with_overrides(gateway_rate_per_address="5/minute", gateway_rate_per_key="100/minute")
    async with await app_client(tight) as client:
        answers = [(await client.get("/services.json")).status_code for _ in range(6)]
        assert answers == [200] * 5 + [429]
        refused = await client.get("/services.xml")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "too many requests from this address" in refused.text
        assert (await client.get("/healthz")).status_code == 200  # probes are not Open311's: never limited

    per_key = infrastructure.with_overrides(gateway_rate_per_address="1000/minute", gateway_rate_per_key="3/minute")
    async with await app_client(per_key) as client:
        hotline, citizen = issued["hotline"][1], issued["citizen_app"][1]
        # bodies the gateway refuses after the key is known (400): they count, and publish nothing
        answers = [(await client.post("/requests.json", data={"api_key": hotline})).status_code for _ in range(4)]
        assert answers == [400, 400, 400, 429]
        assert_open311_error(await client.post("/requests.json", data={"api_key": hotline}), 429, "key")
        # another client's key has a window of its own
        assert (await client.post("/requests.json", data={"api_key": citizen})).status_code == 400


async def test_cors_lets_the_configured_origins_only(infrastructure):
    allowed = "https://app.example.org"
    async with await app_client(roomy(infrastructure, gateway_cors_origins=f"{allowed}, https://b.example.org")) as c:
        preflight = await c.options("/requests.json", headers={
            "Origin": allowed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, Idempotency-Key"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == allowed
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in preflight.headers
        simple = await c.get("/services.json", headers={"Origin": allowed})
        assert simple.headers["access-control-allow-origin"] == allowed

        other = await c.options("/requests.json", headers={
            "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        assert "access-control-allow-origin" not in (
            await c.get("/services.json", headers={"Origin": "https://evil.example.com"})).headers
    async with await app_client(roomy(infrastructure)) as c:  # the default: no origin at all
        assert "access-control-allow-origin" not in (
            await c.get("/services.json", headers={"Origin": allowed})).headers


# ----------------------------------------------------------------------------- roles


@pytest.mark.parametrize("code, why", [("PS-FIGHT", "public security"), ("PS-NOISE", "public security"),
                                       ("TR-ACCIDENT", "priority 1"), ("CM-MANHOLE", "priority 1")])
async def test_a_citizen_app_may_not_post_police_or_priority_one_matters(gateway, keys, geography, code, why):
    lat, lon = a_point(geography)
    token = f"test-{uuid.uuid4()}"
    response = await post(gateway, {"service_code": code, "lat": lat, "long": lon}, token=token,
                          key=keys["citizen_app"])
    assert_open311_error(response, 403, code, why, "hotline")


async def test_hotline_and_sensor_may_and_their_reports_say_so(gateway, keys, issued, geography, infrastructure):
    ids = {}
    for role in ("sensor", "hotline", "citizen_app"):
        lat, lon = a_point(geography)
        code = "CM-LIGHT" if role == "citizen_app" else "PS-FIGHT"
        response = await post(gateway, {"service_code": code, "lat": lat, "long": lon}, key=keys[role])
        assert response.status_code == 201, response.text
        ids[role] = response.json()[0]["service_request_id"]
    async with TopicReader(infrastructure, INCIDENT_REPORTS, set(ids.values())) as reader:
        published = await reader.wait_for(lambda records: len(records) >= 3)
    sources = {IncidentReport.model_validate(p).report_id: IncidentReport.model_validate(p) for p in published}
    assert {role: sources[i].source for role, i in ids.items()} == {
        "sensor": "sensor", "hotline": "hotline", "citizen_app": "app"}
    assert sources[ids["sensor"]].attributes["client"] == issued["sensor"][0]


# ----------------------------------------------------------------------------- what the public reads


async def test_the_public_reads_traffic_and_city_management_coarsely_and_a_client_its_own_in_full(
        gateway, keys, geography, worker):
    police_at, city_at = a_point(geography), a_point(geography)
    police = (await post(gateway, {"service_code": "PS-THEFT", "lat": police_at[0], "long": police_at[1],
                                   "address_string": "Shuyuan Street 7", "description": "bike stolen"},
                         token=f"test-{uuid.uuid4()}")).json()[0]["service_request_id"]
    # categories no other test posts: a merge into another test's incident would show that one's place
    city = (await post(gateway, {"service_code": "CM-ADVERT", "lat": city_at[0], "long": city_at[1],
                                 "address_string": "Shuyuan Street 9", "description": "lamp out",
                                 "media_url": "http://example.org/lamp.jpg"},
                       token=f"test-{uuid.uuid4()}")).json()[0]["service_request_id"]
    own_police = await registered(gateway, police, ready=lambda f: f["description"])
    assert (own_police["lat"], own_police["long"]) == police_at
    assert own_police["address"] == "Shuyuan Street 7" and own_police["description"] == "bike stolen"
    own_city = await registered(gateway, city)

    # the public: the police matter is not found, not listed; the city one coarse, without address or text
    for path in (f"/requests/{police}.json", f"/requests/{police}.xml"):
        assert (await gateway.get(path)).status_code == 404
    public = (await gateway.get(f"/requests/{city}.json")).json()[0]
    assert (public["lat"], public["long"]) == (round(city_at[0], 3), round(city_at[1], 3))
    assert public["address"] is None and public["description"] is None and public["media_url"] is None
    assert own_city["media_url"] == "http://example.org/lamp.jpg" and own_city["address"] == "Shuyuan Street 9"
    listed = (await gateway.get("/requests.json", params={"limit": 1000})).json()
    listed_ids = {r["service_request_id"] for r in listed}
    assert city in listed_ids and police not in listed_ids
    assert {r["service_code"].split("-")[0] for r in listed} <= {"TR", "CM", "EM"}
    assert all(r["address"] is None and r["lat"] == round(r["lat"], 3) for r in listed)
    by_id = (await gateway.get("/requests.json", params={"service_request_id": f"{police},{city}"})).json()
    assert [r["service_request_id"] for r in by_id] == [city]

    # another client sees the city one coarse and not the police one; its owner sees both in full
    other = (await gateway.get("/requests.json", params={"limit": 1000, "api_key": keys["citizen_app"]})).json()
    assert police not in {r["service_request_id"] for r in other}
    mine = (await gateway.get("/requests.json", params={"limit": 1000, "api_key": gateway.api_key})).json()
    mine = {r["service_request_id"]: r for r in mine}
    assert mine[police]["lat"] == police_at[0] and mine[police]["address"] == "Shuyuan Street 7"


# ----------------------------------------------------------------------------- idempotency


async def test_idempotency_keys_are_scoped_to_the_client(gateway, issued, keys, geography, worker):
    token = f"test-{uuid.uuid4()}"
    first_at, second_at = a_point(geography), a_point(geography)
    first = await post(gateway, {"service_code": "CM-LIGHT", "lat": first_at[0], "long": first_at[1]}, token=token,
                       key=keys["citizen_app"])
    second = await post(gateway, {"service_code": "PS-FIGHT", "lat": second_at[0], "long": second_at[1],
                                  "description": "a knife fight"}, token=token, key=keys["hotline"])
    assert first.status_code == second.status_code == 201
    ids = [r.json()[0]["service_request_id"] for r in (first, second)]
    assert ids == [report_id_for(issued["citizen_app"][0], token), report_id_for(issued["hotline"][0], token)]
    assert ids[0] != ids[1]
    # both are incidents of their own: the knife fight is not lost
    assert (await registered(gateway, ids[0], key=keys["citizen_app"]))["service_code"] == "CM-LIGHT"
    assert (await registered(gateway, ids[1], key=keys["hotline"]))["service_code"] == "PS-FIGHT"


async def test_the_core_dead_letters_a_resend_with_other_content(infrastructure, db, worker, geography):
    """A producer writing to incident.reports directly reuses a report id for another matter: the core keeps the
    first, and the second is a dead letter with its reason, never a silent drop."""
    report_id = f"test-resend-{uuid.uuid4().hex[:12]}"
    (lat, lon), (lat2, lon2) = a_point(geography), a_point(geography)
    first = {"schema_version": 1, "report_id": report_id, "source": "hotline", "category": "CM-BIKES", "lat": lat,
             "lon": lon, "reported_at": "2026-12-01T08:00:00+00:00", "description": "lamp out"}
    same_again = {**first, "reported_at": "2026-12-01T08:05:00+00:00"}
    other = {**first, "category": "PS-FIGHT", "lat": lat2, "lon": lon2, "description": "a knife fight"}
    await send(infrastructure, [message(INCIDENT_REPORTS, report_id, d) for d in (first, same_again, other)])

    async def dead_letter():
        return await db.fetchrow("SELECT reason, error FROM dead_letters WHERE key = $1", report_id)

    found = await eventually(dead_letter)
    assert found["reason"] == "conflicting_resend" and report_id in found["error"]
    assert await db.fetchval("SELECT count(*) FROM dead_letters WHERE key = $1", report_id) == 1
    row = await db.fetchrow("SELECT category, description FROM incidents WHERE report_id = $1", report_id)
    assert row["category"] == "CM-BIKES"


# ----------------------------------------------------------------------------- one admission


@pytest.mark.parametrize("fields, words", [
    ({"description": "before\u0000after"}, ["nul_character"]),
    ({"address_string": "Shuyuan Street \u0000 1"}, ["nul_character"]),
    ({"lat": 0.5, "long": 0.5}, ["outside the served area"]),
    ({"service_code": "NO-SUCH"}, ["NO-SUCH", "unknown"]),
])
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_what_intake_would_refuse_the_gateway_refuses(gateway, geography, infrastructure, fields, words,
                                                            as_json):
    lat, lon = a_point(geography)
    token = f"test-{uuid.uuid4()}"
    base = {"service_code": "CM-LIGHT", "lat": lat, "long": lon}
    assert_open311_error(await post(gateway, {**base, **fields}, token=token, as_json=as_json), 400, *words)
    # nothing was published under it
    async with TopicReader(infrastructure, INCIDENT_REPORTS, {report_id_for(gateway.client_name, token)}) as reader:
        assert await reader.poll() == []


def test_patrol_keys_needs_the_database():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    result = subprocess.run([sys.executable, "-m", "streams.cli", "keys", "list"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "PATROL_DATABASE_URL" in result.stderr


async def test_the_gateway_and_patrol_keys_need_no_more_than_the_runtime_roles_rights(infrastructure, db, geography):
    """The runtime role of a deployment (SELECT, INSERT, UPDATE on the tables; no DELETE, no DDL) serves the gateway
    and `patrol keys` alike."""
    role = f"patrol_gateway_{uuid.uuid4().hex[:6]}"
    await db.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
    await db.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        url = infrastructure.database_url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
        assert url != infrastructure.database_url
        site = roomy(infrastructure, database_url=url)
        client = f"test-runtime-{uuid.uuid4().hex[:6]}"
        issued = patrol(site, "keys", "issue", "--client", client, "--role", "citizen_app")
        assert issued.returncode == 0, issued.stderr
        key = issued.stdout.strip()
        async with await app_client(site) as gateway:
            lat, lon = a_point(geography)
            token = f"test-{uuid.uuid4()}"
            fields = {"service_code": "TR-EBIKE", "lat": lat, "long": lon}
            assert (await post(gateway, fields, token=token, key=key)).status_code == 201
            assert (await post(gateway, fields, token=token, key=key)).status_code == 201  # a resend
            assert (await gateway.get("/requests.json", params={"api_key": key})).status_code == 200
        assert patrol(site, "keys", "revoke", "--client", client).returncode == 0
    finally:
        await db.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
        await db.execute(f"DROP ROLE {role}")
