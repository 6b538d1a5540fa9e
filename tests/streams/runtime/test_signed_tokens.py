"""Bearer tokens, one way for dispatchers and devices: only the issuer's own key, issuer and unexpired claims are
read back, and a key too short to sign with is refused where it is configured."""

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from processors.register import UnitRegister
from streams.field_api.app import create_app
from streams.reference import load_geography
from streams.runtime import signed_tokens
from streams.settings import Settings

KEY = b"k" * 32


def test_a_token_reads_back_only_with_its_key_its_issuer_and_in_time():
    token, expires = signed_tokens.sign(KEY, "us", {"sub": "PS-CXL-01", "dev": "dev-1"}, 600)
    claims = signed_tokens.read(KEY, "us", token, ("sub", "dev"))
    assert (claims["sub"], claims["dev"]) == ("PS-CXL-01", "dev-1")
    assert expires - datetime.now(timezone.utc) <= timedelta(seconds=600)
    assert signed_tokens.read(b"o" * 32, "us", token, ("sub",)) is None  # another key
    assert signed_tokens.read(KEY, "them", token, ("sub",)) is None  # another issuer's
    assert signed_tokens.read(KEY, "us", token, ("sub", "role")) is None  # a claim it lacks
    assert signed_tokens.read(KEY, "us", token + "x", ("sub",)) is None  # tampered with
    old, _ = signed_tokens.sign(KEY, "us", {"sub": "PS-CXL-01"}, 600, now=datetime.now(timezone.utc) - timedelta(hours=1))
    assert signed_tokens.read(KEY, "us", old, ("sub",)) is None  # expired


def test_a_short_key_is_refused_wherever_it_is_set():
    with pytest.raises(signed_tokens.WeakKey, match="PATROL_FIELD_TOKEN_KEY must be at least 32 bytes"):
        create_app(Settings(field_token_key=SecretStr("short")), load_geography(Settings()), UnitRegister())
    assert create_app(Settings(field_token_key=SecretStr("x" * 32)), load_geography(Settings()), UnitRegister())
