"""The gateway's fixtures: the app in-process over ASGI or served by uvicorn, with API keys of each role issued in
the session's database. Rate limits are set high here (tests post many requests from one address); the limits
themselves are tested with low ones of their own (test_gateway_keys.py)."""

from __future__ import annotations

import threading
import time
import uuid

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from streams.gateway import create_app
from streams.gateway.keys import ROLES, issue_key
from streams.operations.embedded import free_port
from streams.reference import load_catalogue, load_geography
from streams.settings import Settings


def roomy(settings: Settings, **overrides) -> Settings:
    return settings.with_overrides(gateway_rate_per_key="100000/minute", gateway_rate_per_address="100000/minute",
                                   **overrides)


async def issue(settings: Settings, role: str, client: str | None = None) -> tuple[str, str]:
    """A key of this role for a new client system: (client, key)."""
    client = client or f"test-{role}-{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(settings.database_url)
    try:
        return client, await issue_key(connection, client, role)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def issued(infrastructure) -> dict[str, tuple[str, str]]:
    """One key per role, each for a client system of its own: role -> (client, key)."""
    return {role: await issue(infrastructure, role) for role in ROLES}


@pytest.fixture(scope="module")
def keys(issued) -> dict[str, str]:
    """role -> key"""
    return {role: key for role, (_, key) in issued.items()}


@pytest.fixture(scope="module")
async def gateway(infrastructure, issued):
    """The app with its lifespan (Kafka producer, PostgreSQL pool) running, reached in-process over ASGI; the
    client's `api_key` (the hotline's) is what the tests' helpers post and read with unless told otherwise."""
    app = create_app(roomy(infrastructure))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            client.client_name, client.api_key = issued["hotline"]
            yield client


@pytest.fixture(scope="module")
def geography(infrastructure):
    return load_geography(infrastructure)


@pytest.fixture(scope="module")
def catalogue(infrastructure):
    return load_catalogue(infrastructure)


@pytest.fixture(scope="module")
def served_gateway(infrastructure):
    """The gateway served by uvicorn over real HTTP in a thread of its own (its own event loop)."""
    import uvicorn

    port = free_port()
    # with a token key, so that the command API answers as it does in service (else: 503, not configured)
    settings = roomy(infrastructure, command_token_secret=SecretStr("schemathesis " * 4))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
