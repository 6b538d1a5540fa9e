"""Secrets kept only as argon2id hashes (argon2-cffi's defaults): dispatchers' passwords and field devices'
secrets. One way to hash and check them for every service.

argon2id is made to be slow (64 MiB, 3 passes): both run in a thread, never on the event loop that serves every
other request. An unknown name is checked against a dummy hash, so that it takes as long to refuse as a wrong
secret and a guess cannot tell which names exist.
"""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # made once, when first needed (a hash costs as much as a check), not when a service starts
    return _hasher.hash("no such name")


def _matches(stored: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(_dummy_hash() if stored is None else stored, secret) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_secret(secret: str) -> str:
    """The argon2id hash to keep instead of `secret`."""
    return await asyncio.to_thread(_hasher.hash, secret)


async def matches(stored: str | None, secret: str) -> bool:
    """Whether `secret` is the one `stored` was made from; None (no such name) is never a match, but takes as long."""
    return await asyncio.to_thread(_matches, stored, secret)
