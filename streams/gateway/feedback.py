"""The complainant's verification answer (核查) through Open311: after the units have resolved a request, whoever
holds its service_request_id (the token the POST answered with) says whether it was resolved.

    POST /requests/{service_request_id}/feedback.json   outcome=satisfied | not_resolved  -> 202

It becomes a `verify` command on `dispatch.commands` (the complainant as its author: role `complainant`, named
by the request id, never by a name), decided by the district core: satisfied closes the incident as verified,
not resolved reopens and redispatches it (processors/verification.py). A request that does not await
verification is a 409; one that is not known, a 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from processors.messages import SCHEMA_VERSION, DispatcherCommand, Operator
from streams.gateway.commands import errors, publish_command
from streams.gateway.formats import _BadRequest, _read_fields, _validation_messages
from streams.gateway.models import ID_PATTERN
from streams.gateway.store import _lookup

router = APIRouter(tags=["verification"])

AWAITING = "awaiting_verification"
FEEDBACK_MAX_BYTES = 4096


class FeedbackAccepted(BaseModel):
    service_request_id: str
    outcome: str
    feedback_id: str


class Feedback(BaseModel):
    model_config = ConfigDict(extra="ignore")
    outcome: Literal["satisfied", "not_resolved"]


async def feedback(request: Request, service_request_id: Annotated[str, Path(max_length=200)]) -> JSONResponse:
    """The complainant's answer: was the request resolved?"""
    fields = await _read_fields(request, FEEDBACK_MAX_BYTES)
    try:
        given = Feedback.model_validate(fields)
    except ValidationError as exc:
        raise _BadRequest(*_validation_messages(exc)) from None
    if not ID_PATTERN.match(service_request_id):
        raise HTTPException(404, f"request {service_request_id!r} is not known")
    async with request.app.state.pool.acquire() as connection:
        row = await _lookup(connection, service_request_id)
    if row is None:
        raise HTTPException(404, f"request {service_request_id!r} is not known")
    if row["status"] != AWAITING:
        raise HTTPException(409, f"request {service_request_id!r} does not await verification (it is {row['status']})")
    command = DispatcherCommand(
        schema_version=SCHEMA_VERSION, command_id=f"FB-{uuid.uuid4().hex}", type="verify",
        incident_id=row["incident_id"], outcome=given.outcome, channel="open311",
        by=Operator(name=service_request_id, role="complainant"), issued_at=datetime.now(timezone.utc))
    await publish_command(request, command)
    return JSONResponse([{"service_request_id": service_request_id, "outcome": given.outcome,
                          "feedback_id": command.command_id}], status_code=202)


for _path, _operation in (("/requests/{service_request_id}/feedback.json", "post_feedback_json"),
                          ("/requests/{service_request_id}/feedback", "post_feedback")):
    router.add_api_route(_path, feedback, methods=["POST"], operation_id=_operation, status_code=202,
                         response_model=list[FeedbackAccepted], responses=errors(400, 404, 409, 413, 415, 503),
                         openapi_extra={"requestBody": {"required": True, "content": {
                             "application/x-www-form-urlencoded": {"schema": Feedback.model_json_schema()},
                             "application/json": {"schema": Feedback.model_json_schema()}}}})
