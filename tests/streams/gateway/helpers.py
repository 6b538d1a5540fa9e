"""Helpers of the gateway's tests: points of their own in the sample district, posting, waiting for registration,
and Open311's error shape."""

from __future__ import annotations

import random
import uuid

import httpx

from tests.streams.conftest import eventually


def a_point(geography) -> tuple[float, float]:
    """A random point of street JJ-SYJ around (30.654, 104.0765), so that tests do not merge into each other."""
    rng = random.Random(uuid.uuid4().int)
    while True:
        lat, lon = 30.654 + rng.uniform(-0.009, 0.009), 104.0765 + rng.uniform(-0.004, 0.004)
        street = geography.locate(lat, lon)
        if street is not None and street.street == "JJ-SYJ":
            return round(lat, 6), round(lon, 6)


async def post(client: httpx.AsyncClient, fields: dict, token: str | None = None, as_json: bool = False,
               path: str = "/requests.json", key: str | None = None) -> httpx.Response:
    """POST with the client's key (the fixture's, unless `key` is given or `fields` names one)."""
    headers = {"Idempotency-Key": token} if token else {}
    fields = {"api_key": key or getattr(client, "api_key", None), **fields}
    fields = {k: v for k, v in fields.items() if v is not None}
    if as_json:
        return await client.post(path, json=fields, headers=headers)
    return await client.post(path, data=fields, headers=headers)


async def registered(client: httpx.AsyncClient, request_id: str, timeout: float = 90.0, key: str | None = None,
                     fmt: str = "json", ready=None) -> dict | str:
    """The request once the worker has registered it (GET answers 404 while it is in flight), read with the client's
    key; the XML text with fmt='xml'. `ready`: what else to wait for (the description reaches the database on a
    topic of its own, a moment after the incident)."""
    key = key or getattr(client, "api_key", None)

    async def probe():
        response = await client.get(f"/requests/{request_id}.{fmt}", params={"api_key": key} if key else {})
        assert response.status_code in (200, 404), response.text
        if response.status_code != 200:
            return None
        found = response.json()[0] if fmt == "json" else response.text
        return found if ready is None or ready(found) else None

    return await eventually(probe, timeout)


def assert_open311_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list) and body, body
    assert all(set(e) == {"code", "description"} and e["code"] == status for e in body), body
    text = " ".join(e["description"] for e in body).lower()
    for word in words:
        assert word.lower() in text, body
