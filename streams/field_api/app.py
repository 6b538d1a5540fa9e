"""The field API (`patrol field`): field units' one way onto the platform, as its own service.

A device proves who it is with its credential (device id and secret, issued by `patrol field-credentials issue`)
and gets a signed token bound to its unit. With that token it publishes its unit's events to unit.events, keyed
by its unit and only in its unit's name; follows its own orders (server-sent events from dispatch.orders); and
reads the district map. It also serves the field-unit web app (static files, no build step).

Routes: streams/field_api/routes.py; what it refuses: checks.py; credentials and tokens: credentials.py; the
orders feed: orders.py; the unit register it checks log-ons against: streams/pipeline/register.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import asyncpg
from fastapi import FastAPI

from processors.geography import Geography
from processors.register import UnitRegister
from streams.field_api.orders import OrdersHub
from streams.pipeline.register import RegisterFollower
from streams.runtime import clients, signed_tokens
from streams.settings import Settings


def create_app(settings: Settings, geography: Geography, register: UnitRegister) -> FastAPI:
    from streams.field_api.routes import router

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        producer = clients.producer(settings, linger_ms=0)
        await producer.start()
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
        app.state.producer, app.state.pool = producer, pool
        tasks = [asyncio.create_task(app.state.hub.run_forever()),
                 asyncio.create_task(app.state.register.run_forever())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pool.close()
            await producer.stop()

    app = FastAPI(title="patrol-dispatch field API", lifespan=lifespan, docs_url=None, redoc_url=None)
    # a short key is refused at start (signed_tokens.WeakKey), not found out by whoever forges a token
    key = signed_tokens.key_bytes(settings.field_token_key.get_secret_value() if settings.field_token_key
                                  else secrets.token_hex(32), "PATROL_FIELD_TOKEN_KEY")
    app.state.settings, app.state.geography, app.state.token_key = settings, geography, key
    app.state.hub = OrdersHub(settings)
    app.state.register = RegisterFollower(settings, register)
    app.state.positions = {}
    app.include_router(router)
    return app
