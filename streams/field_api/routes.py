"""The field API's routes (docs/contracts.md, "The field API"): a session for a device credential, a unit's events
in, its orders out (server-sent events), the map, and the web app's files."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from importlib import resources

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from shapely.geometry import mapping

from processors.messages import Identifier, LogOff, OrderStatus, Resolved, unit_event_adapter
from streams.field_api import credentials
from streams.field_api.checks import moved, refusal
from streams.runtime.topics import UNIT_EVENTS

router = APIRouter()
# a comment line on the order stream this often, so that proxies and the page see the connection alive
KEEPALIVE_S = 15.0
STATIC = resources.files("streams.field_api").joinpath("static")
CONTENT_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
                 "css": "text/css; charset=utf-8", "svg": "image/svg+xml"}


class SessionRequest(BaseModel):
    device_id: Identifier
    secret: str = Field(min_length=1, max_length=200)


def _refused(status: int, reason: str, error: str) -> HTTPException:
    return HTTPException(status, {"reason": reason, "error": error})


async def identity(request: Request) -> credentials.Identity:
    """The unit and device of the request's bearer token; 401 unless it is valid and its device not revoked."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    found = credentials.read_token(request.app.state.token_key, token) if scheme.lower() == "bearer" else None
    if found is None or not await credentials.active(request.app.state.pool, found):
        raise HTTPException(401, {"reason": "unauthenticated", "error": "a valid device token is needed"},
                            headers={"WWW-Authenticate": "Bearer"})
    return found


@router.post("/field/v1/session")
async def open_session(body: SessionRequest, request: Request):
    state = request.app.state
    found = await credentials.verify_secret(state.pool, body.device_id, body.secret)
    if found is None:
        raise _refused(401, "bad_credential", "unknown device, wrong secret or a revoked credential")
    token, expires = credentials.make_token(state.token_key, found, state.settings.field_token_ttl_s)
    entry = state.register.register.get(found.unit_id)
    return {"token": token, "unit_id": found.unit_id, "device_id": found.device_id,
            "expires_at": expires.isoformat(), "profile": entry.model_dump(mode="json") if entry else None}


@router.post("/field/v1/events", status_code=202)
async def unit_event(request: Request, who: credentials.Identity = Depends(identity)):
    state = request.app.state
    try:
        event = unit_event_adapter.validate_json(await request.body())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
        raise _refused(422, "schema_violation", problems) from None
    now = datetime.now(timezone.utc)
    if not state.register.ready.is_set():
        await asyncio.wait_for(state.register.ready.wait(), timeout=30)
    holder = state.hub.held_by(event.order_id) if isinstance(event, (OrderStatus, Resolved)) else None
    last = state.positions.get(who.unit_id)
    refused = refusal(event, who.unit_id, holder, state.register.register, state.geography, last, now)
    if refused is not None:
        raise _refused(refused.status, refused.reason, refused.error)
    # the event_id is the action's id, made on the device: an action sent again is published once
    fresh = await state.pool.fetchval("INSERT INTO field_actions (event_id, unit_id) VALUES ($1, $2) "
                                      "ON CONFLICT (event_id) DO NOTHING RETURNING true", event.event_id, who.unit_id)
    if not fresh:
        return JSONResponse({"event_id": event.event_id, "duplicate": True}, status_code=200)
    try:
        await state.producer.send_and_wait(UNIT_EVENTS, event.to_json_bytes(), key=who.unit_id.encode())
    except Exception:
        await state.pool.execute("DELETE FROM field_actions WHERE event_id = $1", event.event_id)
        raise _refused(503, "publish_failed", "the broker did not take the event; send it again") from None
    state.positions[who.unit_id] = moved(event, last, now)
    if isinstance(event, Resolved) or getattr(event, "type", None) == "decline":
        state.hub.settle(who.unit_id, event.order_id)
    elif isinstance(event, OrderStatus):
        state.hub.progressed(event)
    if isinstance(event, LogOff):
        state.positions.pop(who.unit_id, None)
    return {"event_id": event.event_id, "published": True}


@router.get("/field/v1/orders/{order_id}")
async def one_order(order_id: str, request: Request, who: credentials.Identity = Depends(identity)):
    hub = request.app.state.hub
    if hub.held_by(order_id) != who.unit_id:
        raise _refused(403, "not_your_order", f"order {order_id} is not held by unit {who.unit_id}")
    held = {o.order_id: o for o in hub.orders_of(who.unit_id)}
    if order_id not in held:
        raise _refused(404, "order_closed", f"order {order_id} is no longer open")
    return held[order_id].model_dump(mode="json", exclude_none=True)


@router.get("/field/v1/orders")
async def orders_stream(request: Request, who: credentials.Identity = Depends(identity)):
    """Server-sent events: `order` for each of the unit's open orders now and `progress` for how far the unit
    reported it got on them, then each new order or cancel."""
    hub = request.app.state.hub
    queue = hub.subscribe(who.unit_id)

    async def events():
        try:
            for order in hub.orders_of(who.unit_id):
                yield _sse(order)
            for event in hub.progress_of(who.unit_id):
                yield f"event: progress\ndata: {event.model_dump_json(exclude_none=True)}\n\n"
            yield ": caught up\n\n"
            while True:
                try:
                    order = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield _sse(order)
        finally:
            hub.unsubscribe(who.unit_id, queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _sse(order) -> str:
    return f"event: order\ndata: {json.dumps(order.model_dump(mode='json', exclude_none=True))}\n\n"


@router.get("/field/v1/map")
async def district_map(request: Request):
    """The streets of the served area (district, street, name, outline as GeoJSON): the web app's map."""
    return {"streets": [{"district": s.district, "street": s.street, "name": s.name,
                         "geometry": mapping(s.polygon)} for s in request.app.state.geography.streets]}


@router.get("/")
@router.get("/app/{name}")
async def web_app(name: str = "index.html"):
    file = STATIC.joinpath(name)
    kind = name.rsplit(".", 1)[-1]
    if "/" in name or kind not in CONTENT_TYPES or not file.is_file():
        raise HTTPException(404)
    return Response(file.read_bytes(), media_type=CONTENT_TYPES[kind], headers={"Cache-Control": "no-cache"})


@router.get("/healthz")
async def healthz():
    return {"status": "ok"}
