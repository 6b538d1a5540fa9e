"""The field API against the real broker and PostgreSQL: a device acts only for its own unit and its own orders,
a log-on must agree with the unit register (changed at run time by an audited message), a location must be one the
unit could have reached, and an action sent twice is published once. The pipeline refuses the same whoever
publishes (dead letters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import asyncpg
import httpx
import pytest

from processors.register import RegisterChange
from streams.field_api import credentials
from streams.operations.publish import Outgoing
from streams.runtime.topics import DISPATCH_ORDERS, UNIT_EVENTS, UNIT_REGISTER
from tests.streams.conftest import Field, TopicReader, eventually, fresh_district, send
from tests.streams.field_unit.field_api import Events

pytestmark = pytest.mark.integration


async def dispatched_order(infrastructure, db, api, district, unit_id: str) -> tuple[str, str]:
    """Log `unit_id` on through the API in `district`, report a fight there, and return (its token, its order id)."""
    token = await api.token(unit_id)
    response = await api.send(token, Events(unit_id).log_on(district))
    assert response.status_code == 202, response.text
    field = Field(district)
    await send(infrastructure, [field.status(unit_id, "ack", f"{field.run}-barrier")])

    async def known():  # the core knows the unit once a status for an order it does not hold is dead-lettered
        return await db.fetchval("SELECT count(*) FROM dead_letters WHERE reason = 'unit_not_assigned' AND key = $1",
                                 unit_id)
    await eventually(known)
    await send(infrastructure, [field.report(f"R-{uuid.uuid4().hex[:8]}", "PS-FIGHT", district.point())])
    async with TopicReader(infrastructure, DISPATCH_ORDERS, {unit_id}) as orders:
        found = await orders.wait_for(lambda rs: any(r["kind"] == "assign" for r in rs))
    return token, next(r["order_id"] for r in found if r["kind"] == "assign")


async def test_another_units_token_is_refused_on_an_order_with_403(infrastructure, db, field_api):
    district = fresh_district()
    holder, other = f"FA-{uuid.uuid4().hex[:6]}", f"FB-{uuid.uuid4().hex[:6]}"
    token, order_id = await dispatched_order(infrastructure, db, field_api, district, holder)
    intruder = await field_api.token(other)

    # in its own name, on another unit's order
    response = await field_api.send(intruder, Events(other)("ack", order_id=order_id))
    assert response.status_code == 403 and response.json()["detail"]["reason"] == "not_your_order"
    # in the holder's name
    for type_ in ("ack", "resolved", "decline", "log_off"):
        fields = {"order_id": order_id} if type_ in ("ack", "resolved", "decline") else {}
        response = await field_api.send(intruder, Events(holder)(type_, **fields))
        assert response.status_code == 403 and response.json()["detail"]["reason"] == "not_your_unit"
    async with httpx.AsyncClient(base_url=field_api.url) as client:
        seen = await client.get(f"/field/v1/orders/{order_id}", headers={"Authorization": f"Bearer {intruder}"})
        assert seen.status_code == 403
        mine = await client.get(f"/field/v1/orders/{order_id}", headers={"Authorization": f"Bearer {token}"})
        assert mine.status_code == 200 and mine.json()["unit_id"] == holder
    # the holder may
    assert (await field_api.send(token, Events(holder)("ack", order_id=order_id))).status_code == 202


async def test_no_token_a_forged_one_or_a_revoked_device_is_refused_with_401(field_api):
    unit_id = f"FR-{uuid.uuid4().hex[:6]}"
    event = Events(unit_id)("available")
    assert (await field_api.send("not-a-token", event)).status_code == 401
    issued = await field_api.device(unit_id)
    async with httpx.AsyncClient(base_url=field_api.url) as client:
        wrong = await client.post("/field/v1/session", json={"device_id": issued.device_id, "secret": "guess"})
        assert wrong.status_code == 401
        ok = await client.post("/field/v1/session", json={"device_id": issued.device_id, "secret": issued.secret})
    token = ok.json()["token"]
    assert (await field_api.send(token, Events(unit_id)("available"))).status_code == 202
    pool = await asyncpg.create_pool(field_api.settings.database_url, min_size=1, max_size=1)
    try:
        assert await credentials.revoke(pool, "test", device_id=issued.device_id) == [issued.device_id]
    finally:
        await pool.close()
    assert (await field_api.send(token, Events(unit_id)("available"))).status_code == 401


async def test_a_log_on_contradicting_the_register_is_refused_with_its_reason(infrastructure, db, field_api):
    # PS-CXL-01 is in the shipped register: a police officer of JJ-CXL, by car
    token = await field_api.token("PS-CXL-01")
    district = fresh_district()
    claim = Events("PS-CXL-01").log_on(district, agency="traffic", delegations=["PS-FIGHT"])
    response = await field_api.send(token, claim)
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail["reason"] == "register_mismatch"
    assert "agency 'traffic' is not the registered 'police'" in detail["error"]
    assert "PS-FIGHT (never granted)" in detail["error"]

    # the same log-on published straight to unit.events is refused by intake, whoever published it
    raw = Events("PS-CXL-02").log_on(district, kind="auxiliary")
    await send(infrastructure, [Outgoing(UNIT_EVENTS, b"PS-CXL-02", json.dumps(raw).encode())])

    async def dead_lettered():
        return await db.fetchrow("SELECT reason, error FROM dead_letters WHERE key = 'PS-CXL-02' "
                                 "AND reason = 'register_mismatch'")
    row = await eventually(dead_lettered)
    assert "kind 'auxiliary' is not the registered 'officer'" in row["error"]


async def test_the_register_changes_at_run_time_by_an_audited_message(infrastructure, field_api):
    district = fresh_district()
    token = await field_api.token("PS-CXL-03")
    # the command centre moves the unit to the test district's street and makes it a traffic unit
    change = RegisterChange(schema_version=1, change_id=f"c-{uuid.uuid4().hex[:8]}", unit_id="PS-CXL-03",
                            action="set", changed_by="duty-officer-test", reason="seconded to traffic",
                            at=datetime.now(timezone.utc),
                            entry={"unit_id": "PS-CXL-03", "agency": "traffic", "kind": "officer",
                                   "home_street": district.streets[0]})
    await send(infrastructure, [Outgoing(UNIT_REGISTER, b"PS-CXL-03", change.to_json_bytes())])
    claim = Events("PS-CXL-03")

    async def changed():  # as police it is refused; once the change is read, for its agency, not its street
        response = await field_api.send(token, claim.log_on(district, agency="police"))
        error = response.json()["detail"]["error"]
        return "home_street" not in error and "agency 'police' is not the registered 'traffic'" in error
    await eventually(changed, timeout=30)
    assert (await field_api.send(token, claim.log_on(district, agency="traffic"))).status_code == 202


async def test_an_implausible_location_is_refused(infrastructure, db, field_api):
    district = fresh_district()
    unit_id = f"FL-{uuid.uuid4().hex[:6]}"
    token = await field_api.token(unit_id)
    events = Events(unit_id)
    assert (await field_api.send(token, events.log_on(district, mode="foot"))).status_code == 202
    lat, lon = district.point(north_m=5000)
    response = await field_api.send(token, events("location", lat=lat, lon=lon))
    assert response.status_code == 422 and response.json()["detail"]["reason"] == "implausible_location"
    near = district.point(north_m=50)
    assert (await field_api.send(token, events("location", lat=near[0], lon=near[1]))).status_code == 202

    # published straight to unit.events, the district core refuses it too
    jump = events("location", lat=lat, lon=lon)
    await send(infrastructure, [Outgoing(UNIT_EVENTS, unit_id.encode(), json.dumps(jump).encode())])

    async def dead_lettered():
        return await db.fetchval("SELECT error FROM dead_letters WHERE key = $1 AND reason = 'implausible_location'",
                                 unit_id)
    assert "moved" in await eventually(dead_lettered)


async def test_an_action_sent_twice_is_published_once(infrastructure, field_api):
    unit_id = f"FI-{uuid.uuid4().hex[:6]}"
    token = await field_api.token(unit_id)
    event = Events(unit_id)("available")
    first, again = await field_api.send(token, event), await field_api.send(token, event)
    assert (first.status_code, again.status_code) == (202, 200) and again.json()["duplicate"]
    marker = Events(unit_id)("unavailable")
    assert (await field_api.send(token, marker)).status_code == 202
    async with TopicReader(infrastructure, UNIT_EVENTS, {unit_id}) as reader:
        records = await reader.wait_for(lambda rs: any(r["event_id"] == marker["event_id"] for r in rs))
    assert [r["event_id"] for r in records].count(event["event_id"]) == 1


def _patrol(*args: str, database_url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args],
                          env={**env, "PATROL_DATABASE_URL": database_url}, capture_output=True, text=True, timeout=120)


async def test_credentials_are_issued_and_revoked_with_the_cli(infrastructure, field_api):
    unit_id = f"FC-{uuid.uuid4().hex[:6]}"
    issued = _patrol("field-credentials", "issue", unit_id, "--by", "duty-officer-test",
                     database_url=infrastructure.database_url)
    assert issued.returncode == 0, issued.stderr
    fields = dict(line.split(":", 1) for line in issued.stdout.splitlines())
    body = {"device_id": fields["device_id"].strip(), "secret": fields["secret"].strip()}
    async with httpx.AsyncClient(base_url=field_api.url) as client:
        session = await client.post("/field/v1/session", json=body)
        assert session.status_code == 200 and session.json()["unit_id"] == unit_id
        revoked = _patrol("field-credentials", "revoke", "--unit", unit_id, "--by", "duty-officer-test",
                          database_url=infrastructure.database_url)
        assert revoked.returncode == 0 and body["device_id"] in revoked.stdout, revoked.stderr
        assert (await client.post("/field/v1/session", json=body)).status_code == 401
        token = session.json()["token"]
        assert (await field_api.send(token, Events(unit_id)("available"))).status_code == 401


async def test_a_device_connecting_again_is_told_its_orders_and_how_far_it_got(infrastructure, db, field_api):
    district = fresh_district()
    unit_id = f"FP-{uuid.uuid4().hex[:6]}"
    token, order_id = await dispatched_order(infrastructure, db, field_api, district, unit_id)
    assert (await field_api.send(token, Events(unit_id)("ack", order_id=order_id))).status_code == 202
    again = await field_api.token(unit_id)  # a restarted terminal: a new session, the same unit
    seen: list[tuple[str, dict]] = []
    async with httpx.AsyncClient(base_url=field_api.url, timeout=30) as client:
        async with client.stream("GET", "/field/v1/orders", headers={"Authorization": f"Bearer {again}"}) as feed:
            kind = "order"
            async for line in feed.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    seen.append((kind, json.loads(line[6:])))
                elif line.startswith(": caught up"):
                    break
    assert [(k, d["order_id"]) for k, d in seen] == [("order", order_id), ("progress", order_id)]
    assert seen[1][1]["type"] == "ack"
