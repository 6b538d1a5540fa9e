"""The field-unit web app end to end, in a real headless Chromium (Debian's, through Playwright) against the field
API, the worker, the real broker and PostgreSQL: an order reaches the page within a second of being decided,
another unit is refused on it, and an action made offline arrives on unit.events exactly once after reconnecting."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from processors.register import RegisterChange
from streams.operations.publish import Outgoing
from streams.runtime.topics import DISPATCH_ORDERS, UNIT_EVENTS, UNIT_REGISTER
from tests.streams.conftest import Field, TopicReader, eventually, fresh_district, send

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"


async def registered(infrastructure, api, unit_id: str, district) -> dict:
    """`unit_id` added to the register (a police officer of the district's first street) and a device of its own;
    returns the device's credential once the field API knows the unit's entry."""
    change = RegisterChange(schema_version=1, change_id=f"c-{uuid.uuid4().hex[:8]}", unit_id=unit_id, action="set",
                            changed_by="duty-officer-test", reason="joins for the web app test",
                            at=datetime.now(timezone.utc),
                            entry={"unit_id": unit_id, "agency": "police", "kind": "officer", "mode": "car",
                                   "home_street": district.streets[0]})
    await send(infrastructure, [Outgoing(UNIT_REGISTER, unit_id.encode(), change.to_json_bytes())])
    issued = await api.device(unit_id)
    body = {"device_id": issued.device_id, "secret": issued.secret}

    async def known():
        async with httpx.AsyncClient(base_url=api.url) as client:
            return (await client.post("/field/v1/session", json=body)).json()["profile"]
    await eventually(known, timeout=30)
    return body


@pytest.fixture
async def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make prerequisites` (run by `make test`) installs Debian's chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


async def test_an_order_reaches_the_page_in_a_second_another_unit_is_refused_and_offline_actions_arrive_once(
        infrastructure, db, field_api, browser):
    district = fresh_district()
    unit_id, other = f"WA-{uuid.uuid4().hex[:6]}", f"WB-{uuid.uuid4().hex[:6]}"
    device = await registered(infrastructure, field_api, unit_id, district)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(field_api.url + "/")
    await page.fill("#device", device["device_id"])
    await page.fill("#secret", device["secret"])
    await page.click("#signin")
    await expect(page.locator("#profile")).to_contain_text("police · officer")
    await expect(page.locator("#connection")).to_have_text("online")
    await page.click("#logon")
    await expect(page.locator("#queue-count")).to_have_text("0")

    field = Field(district)
    await send(infrastructure, [field.status(unit_id, "ack", f"{field.run}-barrier")])

    async def known():
        return await db.fetchval("SELECT count(*) FROM dead_letters WHERE reason = 'unit_not_assigned' AND key = $1",
                                 unit_id)
    await eventually(known)

    # an order decided for the unit: on the page, with its place on the map, within a second of the decision
    async with TopicReader(infrastructure, DISPATCH_ORDERS, {unit_id}) as orders:
        await send(infrastructure, [field.report(f"R-{uuid.uuid4().hex[:8]}", "PS-FIGHT", district.point())])
        assigned = (await orders.wait_for(lambda rs: any(r["kind"] == "assign" for r in rs)))[0]
    order_id = assigned["order_id"]
    await expect(page.locator("#order-id")).to_have_text(order_id)
    await expect(page.locator("#order-dot")).to_be_visible()
    await expect(page.locator("#deadline")).not_to_have_text("—")
    seen_ms = await page.evaluate(f"window.orderSeenAt[{order_id!r}]")
    decided = datetime.fromisoformat(assigned["issued_at"])
    latency_s = seen_ms / 1000 - decided.timestamp()
    print(f"\norder decided -> shown on the page: {latency_s * 1000:.0f} ms")
    assert latency_s < 1.0, f"the order took {latency_s:.3f} s to reach the page"

    # another unit, signed in on another device, is refused on that order
    intruder = await field_api.token(other)
    status = await page.evaluate("""async ([orderId, token]) => (await fetch('/field/v1/orders/' + orderId,
        {headers: {Authorization: 'Bearer ' + token}})).status""", [order_id, intruder])
    assert status == 403

    # acknowledged without a connection: queued, then sent once the connection is back, exactly once
    await context.set_offline(True)
    await page.click("[data-action=ack]")
    await expect(page.locator("#queue-count")).to_have_text("1")
    await expect(page.locator("#stage")).to_have_text("acknowledged")
    await context.set_offline(False)
    await expect(page.locator("#queue-count")).to_have_text("0", timeout=30_000)
    await page.click("[data-action=en_route]")
    async with TopicReader(infrastructure, UNIT_EVENTS, {unit_id}) as events:
        records = await events.wait_for(lambda rs: any(r["type"] == "en_route" for r in rs))
    assert [r["type"] for r in records if r.get("order_id") == order_id] == ["ack", "en_route"]
    await context.close()
