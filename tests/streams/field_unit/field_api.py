"""Test helpers of the field API: the service as a child process of the session, credentials, and requests."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import httpx

from streams.field_api import credentials
from streams.operations.embedded import free_port, spawn_child, stop_child
from streams.settings import Settings

TOKEN_KEY = "field-api-test-key-" + "x" * 32


@dataclass
class FieldApi:
    url: str
    settings: Settings
    process: object

    async def device(self, unit_id: str) -> credentials.Issued:
        pool = await asyncpg.create_pool(self.settings.database_url, min_size=1, max_size=1)
        try:
            return await credentials.issue(pool, unit_id, "test")
        finally:
            await pool.close()

    async def token(self, unit_id: str) -> str:
        issued = await self.device(unit_id)
        async with httpx.AsyncClient(base_url=self.url) as client:
            response = await client.post("/field/v1/session", json={"device_id": issued.device_id,
                                                                    "secret": issued.secret})
        response.raise_for_status()
        return response.json()["token"]

    async def send(self, token: str, event: dict) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url) as client:
            return await client.post("/field/v1/events", json=event, headers={"Authorization": f"Bearer {token}"})


def start_field_api(settings: Settings, log: Path) -> FieldApi:
    port = free_port()
    env = {**os.environ, **settings.to_env(), "PATROL_FIELD_TOKEN_KEY": TOKEN_KEY}
    process = spawn_child([sys.executable, "-m", "streams.cli", "field", "--port", str(port)], log=log,
                          death_signal=signal.SIGTERM, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return FieldApi(url, settings, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the field API did not start: {log.read_text()[-3000:]}")


def stop_field_api(api: FieldApi) -> None:
    stop_child(api.process, signal.SIGTERM, timeout=20)


class Events:
    """Unit events as a device makes them, with fresh event ids."""

    def __init__(self, unit_id: str):
        self.unit_id = unit_id

    def __call__(self, type_: str, **fields) -> dict:
        return {"schema_version": 1, "event_id": f"act-{uuid.uuid4().hex}", "unit_id": self.unit_id,
                "at": datetime.now(timezone.utc).isoformat(), "type": type_, **fields}

    def log_on(self, district, agency="police", kind="officer", mode="car", point=None, **fields) -> dict:
        lat, lon = point or district.point()
        return self("log_on", agency=agency, kind=kind, district=district.district,
                    home_street=district.streets[0], mode=mode, lat=lat, lon=lon, **fields)

