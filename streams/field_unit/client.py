"""The terminal's client of the field API (`patrol field`): it signs the device in, publishes the unit's events
through the API (which refuses what the unit may not do, with a reason), and follows the unit's own orders as
server-sent events. The terminal holds no Kafka credential and sees no other unit's orders."""

from __future__ import annotations

import asyncio

from collections.abc import Callable

import httpx
from pydantic import ValidationError

from processors.messages import DispatchOrder, UnitEvent, unit_event_adapter
from streams.field_unit.model import FieldUnit, _first_error


class NotSent(RuntimeError):
    """The field API did not take an event; the message says why, for the officer."""


class FieldApiClient:
    def __init__(self, url: str, device_id: str, secret: str):
        self.url = url.rstrip("/")
        self.device_id, self.secret = device_id, secret
        self.token: str | None = None
        self.http = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(10.0, read=None))

    async def close(self) -> None:
        await self.http.aclose()

    async def sign_in(self) -> dict:
        """A session for the device (its unit and register profile); NotSent if the API refuses or is away."""
        try:
            response = await self.http.post("/field/v1/session", json={"device_id": self.device_id,
                                                                       "secret": self.secret})
        except httpx.HTTPError as exc:
            raise NotSent(f"cannot reach the field API at {self.url}: {exc}") from None
        if response.status_code != 200:
            raise NotSent(f"sign-in refused: {_reason(response)}")
        session = response.json()
        self.token = session["token"]
        return session

    @property
    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    async def send(self, event: UnitEvent) -> None:
        try:
            response = await self.http.post("/field/v1/events", content=event.to_json_bytes(),
                                            headers={**self._auth, "Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise NotSent(f"{type(exc).__name__}: {exc}") from None
        if response.status_code not in (200, 202):  # 200: sent before, published once
            raise NotSent(_reason(response))

    async def follow(self, state: FieldUnit, redraw: Callable[[], None]) -> None:
        """The unit's orders, for ever: its open ones first, then each new one; reconnects when cut."""
        while True:
            try:
                async with self.http.stream("GET", "/field/v1/orders", headers=self._auth) as response:
                    if response.status_code != 200:
                        raise NotSent(_reason(response))
                    kind = "order"
                    async for line in response.aiter_lines():
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: "):
                            _take(state, kind, line[6:])
                            redraw()
                        elif not line:
                            kind = "order"
            except (httpx.HTTPError, NotSent) as exc:
                state.note(f"orders feed cut ({exc}); reconnecting", "warning")
                redraw()
            await asyncio.sleep(1.0)


def _take(state: FieldUnit, kind: str, data: str) -> None:
    """An `order` of the feed, or the unit's `progress` on one (how far it got before this device connected)."""
    try:
        if kind == "progress":
            state.read_back(unit_event_adapter.validate_json(data))
        else:
            state.apply_order(DispatchOrder.model_validate_json(data))
    except ValidationError as exc:
        state.note(f"skipped unreadable {kind}: {_first_error(exc)}", "warning")


def _reason(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict):
        return f"{detail.get('reason')}: {detail.get('error')}"
    return f"HTTP {response.status_code}"



