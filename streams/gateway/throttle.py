"""Rate limits of the gateway, with the `limits` library: a moving window per client address (every Open311
request, with a key or without) and one per API key (every request that names a key), each from the settings.
Over either, the answer is a 429 in Open311's error format with `Retry-After`.

The windows live in this process's memory: behind a load balancer with N gateways, a client gets up to N times the
rate, which the operator sets the limits for (deploy/README.md). The client address is the TCP peer, or, behind a
proxy that uvicorn trusts (`--forwarded-allow-ips`), the address that proxy forwards."""

from __future__ import annotations

import math
import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from streams.gateway.formats import _BadRequest
from streams.settings import Settings


class Throttle:
    def __init__(self, settings: Settings):
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_key: RateLimitItem = parse(settings.gateway_rate_per_key)
        self.per_address: RateLimitItem = parse(settings.gateway_rate_per_address)

    def _hit(self, item: RateLimitItem, kind: str, who: str) -> None:
        if self._limiter.hit(item, kind, who):
            return
        reset_at, _ = self._limiter.get_window_stats(item, kind, who)
        wait = max(1, math.ceil(reset_at - time.time()))
        raise _BadRequest(f"too many requests from this {kind}: at most {item} (retry in {wait} s)", status=429,
                          headers={"Retry-After": str(wait)})

    def address(self, request: Request) -> None:
        self._hit(self.per_address, "address", request.client.host if request.client else "unknown")

    def key(self, client: str) -> None:
        self._hit(self.per_key, "key", client)


async def throttled(request: Request) -> None:
    """A route dependency: the client address's window (the key's is checked once the key is known)."""
    request.app.state.throttle.address(request)
