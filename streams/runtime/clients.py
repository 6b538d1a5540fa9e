"""The Kafka client factory: the only place in streams/ where an aiokafka producer, consumer or admin client is
built (tests/streams/runtime/test_clients.py fails on any other).

Every client gets its security options here, from `Settings.kafka_client_options()` (TLS context, SASL), and
every producer `Settings.producer_options()`: acks=all, and idempotence as `Settings.kafka_idempotence` says: a write counts once the in-sync
replicas have it, and a retry after a lost acknowledgement writes no duplicate. The callers pass only tuning
(batch sizes, waits, timeouts), never acknowledgement or security options, which the factory refuses.
"""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.settings import Settings

# options only the factory sets: a caller that passed one would make its client the odd one out
_FIXED = frozenset({"bootstrap_servers", "acks", "enable_idempotence", "security_protocol", "ssl_context",
                    "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"})


def _tuning(options: dict) -> dict:
    fixed = _FIXED.intersection(options)
    if fixed:
        raise TypeError(f"set by the client factory from the settings, not by its callers: {sorted(fixed)}")
    return options


def producer(settings: Settings, **tuning) -> AIOKafkaProducer:
    """A producer with acks=all, idempotent where the settings allow it, secured as the settings say."""
    return AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, **_tuning(tuning),
                            **settings.producer_options())


def consumer(settings: Settings, *topics: str, **options) -> AIOKafkaConsumer:
    """A consumer as `options` make it (a group, offsets, waits), secured as the settings say."""
    return AIOKafkaConsumer(*topics, bootstrap_servers=settings.kafka_bootstrap, **_tuning(options),
                            **settings.kafka_client_options())


def standalone_consumer(settings: Settings, **extra) -> AIOKafkaConsumer:
    """A consumer outside any group that commits nothing: for reading a log back (replays, the unit map)."""
    return consumer(settings, enable_auto_commit=False, fetch_max_wait_ms=settings.fetch_max_wait_ms, **extra)


@contextlib.asynccontextmanager
async def reading(settings: Settings, **extra):
    """A started `standalone_consumer`, stopped when the block is left."""
    client = standalone_consumer(settings, **extra)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


def group_consumer(settings: Settings, group_id: str, *topics: str, fetch_max_wait_ms: int) -> AIOKafkaConsumer:
    """A member of `group_id` that commits only what it is told to, starting a new group at the beginning."""
    return consumer(
        settings, *topics,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        session_timeout_ms=int(settings.kafka_session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.kafka_session_timeout_s * 200),
    )


def admin(settings: Settings, **tuning) -> AIOKafkaAdminClient:
    """An admin client, secured as the settings say."""
    return AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **_tuning(tuning),
                               **settings.kafka_client_options())


def admin_at(bootstrap: str, security: dict | None = None, **tuning) -> AIOKafkaAdminClient:
    """An admin client of a broker that the embedded-broker helpers (streams/operations) are setting up, before
    any Settings of a worker exist: `security` is a `Settings.kafka_client_options()` of theirs, or None for a
    plaintext listener."""
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, **_tuning(tuning), **(security or {}))
