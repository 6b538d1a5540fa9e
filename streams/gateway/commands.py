"""The command API (/command/v1): the command centre's dispatchers give the district cores commands, and read their
action list of open escalations. Mounted on the gateway by `add_command_api`, with the complainant's verification
answer (streams/gateway/feedback.py).

    POST /command/v1/token                  name + password -> a bearer token (argon2id-checked; HS256-signed)
    POST /command/v1/commands               a command -> 202 {command_id}; published to `dispatch.commands`
    GET  /command/v1/commands/{command_id}  the events the command caused (its outcome, or its refusal)
    GET  /command/v1/escalations            the open escalations: level, due time, unit (the action list)

Every route but the token needs `Authorization: Bearer <token>` of an enabled account (401 otherwise); cancel,
close and acknowledging a level-3 escalation need the supervisor role (403 otherwise), which the district core
checks again (processors/commands.py). The answer 202 says the command was published, not what came of it: the
core decides it in its district's order, and its events (or `command_refused`) say what did.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timezone
from typing import Annotated, Literal

import structlog
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from processors.commands import SUPERVISOR_LEVEL, SUPERVISOR_ONLY
from processors.incidents import district_of
from processors.messages import SCHEMA_VERSION, CommandType, DispatcherCommand, Identifier, Operator, ShortText
from streams.gateway import accounts
from streams.gateway.accounts import Account, NotConfigured
from streams.gateway.models import PUBLISH_TIMEOUT_S, Open311Error
from streams.runtime.topics import DISPATCH_COMMANDS

log = structlog.get_logger("patrol.command")

PREFIX = "/command/v1"


def errors(*codes: int) -> dict:
    """The error answers of a route, documented (they come in Open311's error-array shape, as all the gateway's)."""
    words = {400: "the body or a parameter is invalid", 401: "no valid token of an enabled account",
             403: "the command needs the supervisor role", 404: "no such incident (or request)",
             409: "the request does not await verification", 413: "the body is too large",
             415: "the content type is not accepted",
             503: "not configured (no token secret), or the stream or database is unavailable"}
    return {code: {"model": list[Open311Error], "description": words[code]} for code in codes}


router = APIRouter(prefix=PREFIX, tags=["command centre"])
_bearer = HTTPBearer(auto_error=False)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


class CommandIn(BaseModel):
    """A command as the dispatcher's console sends it; who gives it comes from the token, never from the body."""

    model_config = ConfigDict(extra="forbid")
    type: CommandType
    incident_id: Identifier
    unit_id: Identifier | None = None
    replaces: Identifier | None = None
    escalation_id: Annotated[str, Field(max_length=200)] | None = None
    outcome: Literal["satisfied", "not_resolved"] | None = None
    note: ShortText | None = None


class CommandAccepted(BaseModel):
    command_id: str
    incident_id: str
    district: str
    outcome: str = Field(description="where the command's events are read: GET /command/v1/commands/{command_id}")


def _not_configured(exc: NotConfigured) -> HTTPException:
    return HTTPException(503, str(exc))


async def dispatcher(request: Request,
                     credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Account:
    """The authenticated account behind the request's bearer token, as it stands now (401 without one)."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "a bearer token is required: POST /command/v1/token", headers=challenge)
    try:
        claimed = accounts.read_token(request.app.state.settings, credentials.credentials)
    except NotConfigured as exc:
        raise _not_configured(exc) from None
    if claimed is None:
        raise HTTPException(401, "the token is invalid or has expired", headers=challenge)
    async with request.app.state.pool.acquire() as connection:
        account = await accounts.current(connection, claimed)
    if account is None:
        raise HTTPException(401, "the account is disabled", headers=challenge)
    return account


@router.post("/token", response_model=TokenOut, operation_id="command_token", responses=errors(400, 401, 503))
async def token(request: Request, body: TokenRequest) -> TokenOut:
    """A bearer token for an enabled dispatcher account."""
    settings = request.app.state.settings
    try:
        accounts.secret_of(settings)
    except NotConfigured as exc:
        raise _not_configured(exc) from None
    async with request.app.state.pool.acquire() as connection:
        account = await accounts.authenticate(connection, body.name, body.password)
    if account is None:
        log.info("command token refused", name=body.name)
        raise HTTPException(401, "unknown account, wrong password, or a disabled account",
                            headers={"WWW-Authenticate": "Bearer"})
    log.info("command token issued", name=account.name, role=account.role)
    return TokenOut(access_token=accounts.issue_token(settings, account),
                    expires_in=int(settings.command_token_ttl_s), role=account.role)


@router.post("/commands", status_code=202, response_model=CommandAccepted, operation_id="command_give",
             responses=errors(400, 401, 403, 404, 503))
async def give(request: Request, body: CommandIn, account: Account = Depends(dispatcher)) -> JSONResponse:
    """Publish a command to the incident's district; its outcome arrives as events."""
    if body.type in SUPERVISOR_ONLY and account.role != "supervisor":
        raise HTTPException(403, f"{body.type} needs the supervisor role")
    if body.type == "acknowledge_escalation" and f":L{SUPERVISOR_LEVEL}:" in (body.escalation_id or "") \
            and account.role != "supervisor":
        raise HTTPException(403, f"a level-{SUPERVISOR_LEVEL} escalation is acknowledged by a supervisor")
    command = DispatcherCommand(
        schema_version=SCHEMA_VERSION, command_id=f"CMD-{uuid.uuid4().hex}", type=body.type,
        incident_id=body.incident_id, unit_id=body.unit_id, replaces=body.replaces,
        escalation_id=body.escalation_id, outcome=body.outcome,
        channel="callback" if body.type == "verify" else None, note=body.note,
        by=Operator(name=account.name, role=account.role), issued_at=datetime.now(timezone.utc))
    district = await publish_command(request, command)
    log.info("command published", command_id=command.command_id, type=command.type, by=account.name,
             incident_id=command.incident_id)
    accepted = CommandAccepted(command_id=command.command_id, incident_id=command.incident_id, district=district,
                               outcome=f"{PREFIX}/commands/{command.command_id}")
    return JSONResponse(accepted.model_dump(), status_code=202)


async def publish_command(request: Request, command: DispatcherCommand) -> str:
    """Publish to `dispatch.commands` under the incident's district; returns the district (404 if none served)."""
    district = district_of(command.incident_id)
    if district is None or district not in request.app.state.geography.districts:
        raise HTTPException(404, f"{command.incident_id} is not an incident of a district served")
    try:
        await asyncio.wait_for(request.app.state.producer.send_and_wait(
            DISPATCH_COMMANDS, command.to_json_bytes(), key=district.encode()), PUBLISH_TIMEOUT_S)
    except (KafkaError, asyncio.TimeoutError) as exc:
        log.warning("command publish failed", command_id=command.command_id, error=type(exc).__name__)
        raise HTTPException(503, "the command stream is unavailable; give the command again",
                            headers={"Retry-After": "5"}) from None
    return district


@router.get("/commands/{command_id}", operation_id="command_outcome", responses=errors(400, 401, 503))
async def outcome(request: Request, command_id: Annotated[str, Path(max_length=200)],
                  account: Account = Depends(dispatcher)) -> list[dict]:
    """The incident events the command caused, in order (empty until the core has decided it and the sink written
    it); a refusal is a `command_refused` event with its reason."""
    async with request.app.state.pool.acquire() as connection:
        rows = await connection.fetch(
            """SELECT incident_id, seq, type, at, data FROM incident_events
               WHERE data->>'command_id' = $1 ORDER BY incident_id, seq""", command_id)
    return [{"incident_id": r["incident_id"], "seq": r["seq"], "type": r["type"], "at": r["at"].isoformat(),
             "data": _json(r["data"])} for r in rows]


@router.get("/escalations", operation_id="command_escalations", responses=errors(400, 401, 503))
async def escalations(request: Request, account: Account = Depends(dispatcher),
                      district: Annotated[str | None, Query(max_length=128)] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict]:
    """The action list: every open escalation no dispatcher has acknowledged, highest level and earliest due first."""
    async with request.app.state.pool.acquire() as connection:
        rows = await connection.fetch(
            """SELECT escalation_id, incident_id, level, reason, due, escalated_at, district, street, category,
                      status, priority, unit_id, units
               FROM v_open_escalations WHERE $1::text IS NULL OR district = $1
               ORDER BY level DESC, due, escalation_id LIMIT $2""", district, limit)
    return [{**dict(r), "due": r["due"].isoformat(), "escalated_at": r["escalated_at"].isoformat(),
             "units": list(r["units"])} for r in rows]


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def add_command_api(app: FastAPI) -> None:
    """Mount the command API and the complainant's feedback route on the gateway."""
    from streams.gateway.feedback import router as feedback  # it uses this module's publish_command

    app.include_router(router)
    app.include_router(feedback)
