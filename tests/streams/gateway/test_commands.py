"""The command API and verification end to end: the gateway (in-process over ASGI) publishes dispatchers' commands
and complainants' answers to `dispatch.commands`, the session's worker admits and decides them, and what came of
them is read back from the broker and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest
from pydantic import SecretStr

from streams.gateway import create_app
from streams.gateway.accounts import add_account, disable_account
from streams.runtime.topics import DISPATCH_ORDERS
from tests.streams.conftest import Field, TopicReader, eventually, send

pytestmark = pytest.mark.integration

SECRET = SecretStr("a test secret of the command api, 40+ bytes long")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def settings(infrastructure):
    return infrastructure.with_overrides(command_token_secret=SECRET)


@pytest.fixture(scope="module")
async def gateway(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def staff(db):
    """A dispatcher and a supervisor of this test's own (names unique per run)."""
    run = uuid.uuid4().hex[:6]
    names = {"dispatcher": f"li.wei.{run}", "supervisor": f"zhang.min.{run}"}
    for role, name in names.items():
        await add_account(db, name, role, PASSWORD)
    return names


async def login(gateway, name: str, password: str = PASSWORD) -> dict:
    answer = await gateway.post("/command/v1/token", json={"name": name, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def give(gateway, headers, **command) -> str:
    answer = await gateway.post("/command/v1/commands", json=command, headers=headers)
    assert answer.status_code == 202, answer.text
    return answer.json()["command_id"]


async def outcome(gateway, headers, command_id: str, wanted: str) -> list[dict]:
    """The command's events once one of type `wanted` is among them."""
    async def probe():
        events = (await gateway.get(f"/command/v1/commands/{command_id}", headers=headers)).json()
        return events if any(e["type"] == wanted for e in events) else None

    return await eventually(probe)


async def status_is(db, report_id: str, status: str):
    return await db.fetchval("SELECT status FROM incidents WHERE report_id = $1", report_id) == status


async def test_a_command_without_a_valid_token_is_refused(gateway, staff, db):
    command = {"type": "assign", "incident_id": "INC-JINJIANG-000000000000", "unit_id": "P1"}
    assert (await gateway.post("/command/v1/commands", json=command)).status_code == 401
    bad = {"Authorization": "Bearer not.a.token"}
    assert (await gateway.post("/command/v1/commands", json=command, headers=bad)).status_code == 401
    assert (await gateway.get("/command/v1/escalations")).status_code == 401
    wrong = await gateway.post("/command/v1/token", json={"name": staff["dispatcher"], "password": "guess"})
    assert wrong.status_code == 401
    # a token signed with another key is not ours
    from streams.gateway.accounts import Account, issue_token

    forged = issue_token(gateway_settings_with_other_secret(), Account(staff["supervisor"], "supervisor"))
    answer = await gateway.post("/command/v1/commands", json=command, headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    # a dispatcher may not cancel or close: a supervisor's commands
    headers = await login(gateway, staff["dispatcher"])
    for kind in ("cancel", "close"):
        answer = await gateway.post("/command/v1/commands", json={**command, "type": kind}, headers=headers)
        assert answer.status_code == 403, answer.text
    # a disabled account's token stops at once
    await disable_account(db, staff["dispatcher"])
    assert (await gateway.get("/command/v1/escalations", headers=headers)).status_code == 401


def gateway_settings_with_other_secret():
    from streams.settings import Settings

    return Settings(command_token_secret=SecretStr("another secret entirely, also 40+ bytes"))


async def test_a_dispatchers_assign_reaches_the_unit_and_the_audit_trail_names_them(
        settings, gateway, staff, worker, db, isolated_district):
    f = Field(isolated_district)
    unit = f"{f.run}-P1"
    await f.log_on_all(settings, db, [(unit, "police", isolated_district.point(east_m=150))])
    report_id = f"{f.run}-fight"
    await send(settings, [f.report(report_id, "PS-FIGHT", isolated_district.point())])
    headers = await login(gateway, staff["dispatcher"])
    async with TopicReader(settings, DISPATCH_ORDERS, {unit}) as orders:
        [first] = await orders.wait_for(lambda r: len(r) >= 1)
        incident_id = first["incident_id"]
        # the unit declines; the machine will not send it again, and the fight waits for a unit
        await send(settings, [f.status(unit, "decline", first["order_id"])])
        await eventually(lambda: _has_event(db, incident_id, "queued"))
        # the dispatcher knows better: the same unit, by name
        command_id = await give(gateway, headers, type="assign", incident_id=incident_id, unit_id=unit)
        records = await orders.wait_for(lambda r: any(o["kind"] == "assign" and o["order_id"] != first["order_id"]
                                                      for o in r))
    order = [o for o in records if o["kind"] == "assign"][-1]
    assert (order["unit_id"], order["incident_id"]) == (unit, incident_id)
    events = await outcome(gateway, headers, command_id, "dispatched")
    assert events[0]["data"]["by"] == {"name": staff["dispatcher"], "role": "dispatcher"}
    row = await db.fetchrow("""SELECT data FROM incident_events WHERE incident_id = $1 AND type = 'dispatched'
                               AND data->'by'->>'name' = $2""", incident_id, staff["dispatcher"])
    assert row is not None

    # an impossible command is refused with its reason, as an event the operator reads
    refused_id = await give(gateway, headers, type="assign", incident_id=incident_id, unit_id=f"{f.run}-NOBODY")
    [refusal] = await outcome(gateway, headers, refused_id, "command_refused")
    assert refusal["data"]["reason"] == "unknown_unit" and refusal["data"]["by"]["name"] == staff["dispatcher"]
    # and one for an incident no district holds is a dead letter
    ghost = f"INC-{isolated_district.district}-{uuid.uuid4().hex[:12].upper()}"
    await give(gateway, headers, type="assign", incident_id=ghost, unit_id=unit)

    async def dead_letter():
        return await db.fetchval("SELECT count(*) FROM dead_letters WHERE reason = 'unknown_incident' "
                                 "AND topic = 'dispatch.commands' AND error LIKE '%' || $1 || '%'", ghost)

    await eventually(dead_letter)
    worker.assert_alive()


async def test_the_action_list_shows_open_escalations_until_acknowledged(
        settings, gateway, staff, worker, db, isolated_district):
    f = Field(isolated_district)
    unit = f"{f.run}-P1"
    await f.log_on_all(settings, db, [(unit, "police", isolated_district.point(east_m=150))])
    await send(settings, [f.report(f"{f.run}-fast", "XT-FAST", isolated_district.point())])
    headers = await login(gateway, staff["dispatcher"])
    district = isolated_district.district

    async def listed():
        rows = (await gateway.get("/command/v1/escalations", params={"district": district}, headers=headers)).json()
        return [r for r in rows if r["reason"] == "ack_overdue"]

    [escalation] = await eventually(listed)  # the unit never acknowledges: level 1 after 3 s
    assert (escalation["level"], escalation["unit_id"], escalation["district"]) == (1, unit, district)
    assert escalation["due"] and escalation["category"] == "XT-FAST"
    await give(gateway, headers, type="acknowledge_escalation", incident_id=escalation["incident_id"],
               escalation_id=escalation["escalation_id"])

    async def gone():
        return not await listed()

    await eventually(gone)
    by = await db.fetchval("""SELECT data->'by'->>'name' FROM incident_events WHERE type = 'escalation_acknowledged'
                              AND data->>'escalation_id' = $1""", escalation["escalation_id"])
    assert by == staff["dispatcher"]


async def test_resolved_awaits_verification_then_reopens_or_closes_as_verified(
        settings, gateway, staff, worker, db, isolated_district):
    f = Field(isolated_district)
    unit = f"{f.run}-P1"
    # a city-management matter: the public may read its status through Open311 (a police one it may not)
    await f.log_on_all(settings, db, [(unit, "city_management", isolated_district.point(east_m=150))])
    report_id = f"{f.run}-noise"
    await send(settings, [f.report(report_id, "CM-VENDING", isolated_district.point())])
    async with TopicReader(settings, DISPATCH_ORDERS, {unit}) as orders:
        [first] = await orders.wait_for(lambda r: len(r) >= 1)
        for step in ("ack", "on_scene", "resolved"):
            await send(settings, [f.status(unit, step, first["order_id"])])
        await eventually(lambda: status_is(db, report_id, "awaiting_verification"))
        # Open311: the request is still open, and says what it waits for
        shown = (await gateway.get(f"/requests/{report_id}.json")).json()[0]
        assert shown["status"] == "open" and "verification" in shown["status_notes"]
        # the complainant: not resolved -> reopened and dispatched again
        answer = await gateway.post(f"/requests/{report_id}/feedback.json", data={"outcome": "not_resolved"})
        assert answer.status_code == 202, answer.text
        records = await orders.wait_for(lambda r: len([o for o in r if o["kind"] == "assign"]) >= 2)
    again = [o for o in records if o["kind"] == "assign"][-1]
    assert again["incident_id"] == first["incident_id"] and again["order_id"] != first["order_id"]
    for step in ("ack", "on_scene", "resolved"):
        await send(settings, [f.status(unit, step, again["order_id"])])
    await eventually(lambda: status_is(db, report_id, "awaiting_verification"))
    # a call-back by the command centre: satisfied -> closed as verified
    headers = await login(gateway, staff["dispatcher"])
    await give(gateway, headers, type="verify", incident_id=first["incident_id"], outcome="satisfied")
    await eventually(lambda: status_is(db, report_id, "closed"))
    types = [r["type"] for r in await db.fetch(
        "SELECT type FROM incident_events WHERE incident_id = $1 ORDER BY seq", first["incident_id"])]
    assert types.count("awaiting_verification") == 2 and "reopened" in types and types[-1] == "closed"
    closed = await db.fetchval("SELECT data FROM incident_events WHERE incident_id = $1 AND type = 'closed'",
                               first["incident_id"])
    assert '"verified"' in closed and '"callback"' in closed
    street = isolated_district.streets[0]
    kpi = await db.fetchrow("SELECT * FROM v_street_verification WHERE district = $1 AND street = $2",
                            isolated_district.district, street)
    assert (kpi["verified_24h"], kpi["reopened_24h"]) == (1, 1)
    # too late for an answer now: a 409, nothing published
    late = await gateway.post(f"/requests/{report_id}/feedback.json", json={"outcome": "satisfied"})
    assert late.status_code == 409
    assert (await gateway.post("/requests/nobody-at-all/feedback.json", json={"outcome": "satisfied"})).status_code == 404
    assert (await gateway.post(f"/requests/{report_id}/feedback.json", json={"outcome": "meh"})).status_code == 400


async def test_patrol_accounts_add_and_disable(settings, gateway, db):
    name = f"wang.fang.{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PATROL_DATABASE_URL": settings.database_url}
    added = subprocess.run([sys.executable, "-m", "streams.cli", "accounts", "add", name, "--role", "supervisor",
                            "--password-stdin"], input=PASSWORD + "\n", env=env, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    stored = await db.fetchrow("SELECT role, password_hash FROM dispatcher_accounts WHERE name = $1", name)
    assert stored["role"] == "supervisor" and stored["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in stored["password_hash"]
    await login(gateway, name)
    disabled = subprocess.run([sys.executable, "-m", "streams.cli", "accounts", "disable", name], env=env,
                              capture_output=True, text=True)
    assert disabled.returncode == 0, disabled.stderr
    answer = await gateway.post("/command/v1/token", json={"name": name, "password": PASSWORD})
    assert answer.status_code == 401


async def _has_event(db, incident_id: str, type_: str) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM incident_events WHERE incident_id = $1 AND type = $2",
                                  incident_id, type_))
