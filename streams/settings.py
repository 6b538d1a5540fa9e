"""The one settings object: every ``PATROL_*`` environment variable is read here and nowhere else."""

from __future__ import annotations

import ssl
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Masked(str):
    """The password itself (aiokafka needs the text), but masked in repr, so a logged options dict never shows it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'**********'"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATROL_", extra="ignore")

    # --- contract settings (docs/contracts.md) ---
    kafka_bootstrap: str | None = Field(
        default=None, description="host:port[,host:port]; unset starts the embedded broker"
    )
    database_url: str | None = Field(
        default=None, description="postgresql:// URL; unset starts the embedded PostgreSQL"
    )
    catalogue: Path | None = Field(default=None, description="catalogue YAML; unset uses the shipped one")
    geography: Path | None = Field(default=None, description="district GeoJSON; unset uses the shipped one")
    unit_register: Path | None = Field(
        default=None, description="the unit register YAML (processors/register.py); unset uses the shipped one")
    metrics_port: int = Field(default=9464, description="Prometheus exposition port; 0 disables")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    # Mutual TLS (additions to the contract): the client certificate (PEM; may carry its chain,
    # and the key too when kafka_ssl_keyfile is unset), its private key, and that key's password.
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = Field(
        default="console",
        description="console: key=value lines for people; json: one JSON object per line for a log collector",
    )

    # --- our own additions ---
    app_id: str = Field(
        default="patrol-dispatch",
        description="the app id: names the consumer groups and prefixes internal topics",
    )
    topic_partitions: int = Field(default=4, ge=1, description="partitions of every topic we create")
    topic_replication: int = Field(
        default=1, ge=1,
        description="replicas of every topic we create; 3 on a production cluster, with min.insync.replicas 2 on "
                    "the broker, so that one broker may fail without losing an acknowledged write")
    kafka_idempotence: bool = Field(
        default=True,
        description="every producer of ours is idempotent (and acks=all): a send the broker wrote but whose "
                    "acknowledgement was lost to a leader change is retried without a duplicate. The embedded "
                    "Tansu does not grant producer ids, so a run on it turns this off")
    # Tansu answers a fetch only when its max wait expires, so this wait is the
    # per-hop latency floor; faust hard-codes 1500 ms, we make it ours.
    fetch_max_wait_ms: int = Field(default=5, ge=0, le=10_000)
    # Tansu holds a new group's join for half the session timeout, so a short
    # session makes a worker ready in ~5 s instead of faust's default ~30 s.
    kafka_session_timeout_s: float = Field(default=10.0, ge=6.0, le=300.0)
    max_report_bytes: int = Field(default=64 * 1024, description="larger inbound messages are dead-lettered")
    future_skew_s: float = Field(
        default=300.0, description="a reported_at later than arrival plus this is rejected"
    )
    tick_interval_s: float = Field(
        default=1.0, gt=0, le=60,
        description="how often the owner of a district looks for its deadlines due, and writes it a clock tick if "
                    "one is: SLA breaches are noticed within one tick")
    clock_rate: float = Field(
        default=1.0, ge=1.0, le=10_000.0,
        description="a compressed simulated day only (`patrol up`): the worker's clock runs this many times faster "
                    "than the wall clock from PATROL_CLOCK_EPOCH, so that time limits, travel times and every "
                    "duration the district core reckons are in simulated time. 1 (the default) is the wall clock")
    clock_epoch: datetime | None = Field(
        default=None,
        description="with PATROL_CLOCK_RATE above 1: the instant at which the simulated clock reads the wall clock")
    snapshot_interval_s: float = Field(
        default=600.0, ge=1,
        description="the longest a district work-log partition goes without a snapshot while it moves on; a takeover "
                    "replays at most this much of the log")
    snapshot_every_entries: int = Field(
        default=20_000, ge=1, description="a partition is also snapshotted after this many entries")
    worklog_retention_s: float = Field(
        default=3 * 86400.0, ge=60,
        description="how long the broker keeps district work-log entries (and the location pings in them); at least "
                    "twice the snapshot interval, and longer than any outage of every worker at once")
    sink_batch_size: int = Field(default=500, ge=1)
    sink_flush_ms: int = Field(
        default=200, ge=1, le=5000,
        description="the longest the sink waits for more records before writing a batch; also its fetch wait, "
                    "since rows are not on the dispatch path and every poll costs the broker CPU")
    sink_in_worker: bool = Field(
        default=True,
        description="`patrol worker` also runs the PostgreSQL sink; turn off where `patrol sink` runs it in a "
                    "process of its own, which keeps the audit writes off the dispatch path's event loop")
    reporter_retention_days: float = Field(
        default=180.0, gt=0,
        description="reporters' names and phones (and the descriptions' phone numbers) are erased from the incident "
                    "records this many days after the report (`patrol retention`, and the sink once an hour)")
    data_dir: Path = Field(default=Path("run"), description="embedded broker/database scratch space")
    embedded_broker: Literal["auto", "kafka", "tansu"] = Field(
        default="auto",
        description="the broker started when kafka_bootstrap is unset: Apache Kafka (needs java and mvn; its jars "
                    "are fetched once into cache_dir) or Tansu (a Python package); auto takes Kafka where java and "
                    "mvn are on the PATH, Tansu elsewhere")
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "patrol-dispatch",
        description="downloads kept between runs and clones: the embedded Kafka's jars")
    liveness_stall_s: float = Field(
        default=60.0, gt=0, le=3600,
        description="/healthz fails when a loop (the district pipeline, the sink) has had work waiting and made no "
                    "progress for this long; an idle loop is alive")
    # --- the Open311 gateway (streams/gateway) ---
    gateway_rate_per_key: str = Field(
        default="120/minute",
        description="requests one API key may make (a moving window; `limits` notation, e.g. 120/minute): a "
                    "client system's share, whatever addresses it posts from")
    gateway_rate_per_address: str = Field(
        default="300/minute",
        description="requests one client address may make, with a key or without: the anonymous reader's share, and "
                    "a bound on guessing keys")
    gateway_cors_origins: str = Field(
        default="",
        description="comma-separated origins whose web pages may call the gateway from a browser (CORS), e.g. "
                    "https://app.example.org; empty: none")

    @field_validator("gateway_rate_per_key", "gateway_rate_per_address")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        from limits import parse

        parse(value)  # a ValueError says what is wrong
        return value

    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.gateway_cors_origins.split(",") if origin.strip()]

    field_token_key: SecretStr | None = Field(
        default=None,
        description="the key the field API signs device tokens with (HS256; at least 32 random bytes); every "
                    "instance of the field API needs the same. Unset: a random key per process, so that tokens "
                    "end with the process (development only)")
    field_token_ttl_s: float = Field(
        default=12 * 3600.0, gt=0, le=7 * 86400,
        description="how long a device token lasts: one shift. Revoking a device ends its tokens at once")

    field_api_url: str = Field(default="http://127.0.0.1:8090",
                               description="where the field unit terminal (`patrol unit`) finds the field API")
    field_device_id: str | None = Field(default=None, description="the terminal's device credential: its id")
    field_device_secret: SecretStr | None = Field(default=None, description="the terminal's device credential: "
                                                  "its secret (`patrol field-credentials issue`)")
    command_token_secret: SecretStr | None = Field(
        default=None,
        description="the key the command API signs its dispatchers' bearer tokens with (HS256; at least 32 bytes); "
                    "unset, the command API answers 503 to everything but its description")
    command_token_ttl_s: float = Field(
        default=8 * 3600.0, ge=60, le=24 * 3600,
        description="how long a dispatcher's token is valid: a shift; a disabled account's token stops at once")

    @model_validator(mode="after")
    def _compressed_clock_has_an_epoch(self) -> "Settings":
        if self.clock_rate != 1.0 and (self.clock_epoch is None or self.clock_epoch.tzinfo is None):
            raise ValueError("PATROL_CLOCK_RATE other than 1 needs PATROL_CLOCK_EPOCH, with its time zone")
        return self

    @model_validator(mode="after")
    def _retention_outlasts_snapshots(self) -> "Settings":
        if self.worklog_retention_s < 2 * self.snapshot_interval_s:
            raise ValueError(f"PATROL_WORKLOG_RETENTION_S ({self.worklog_retention_s:g}) must be at least twice "
                             f"PATROL_SNAPSHOT_INTERVAL_S ({self.snapshot_interval_s:g}): a takeover needs the "
                             "entries after the newest snapshot")
        return self

    @property
    def uses_embedded_broker(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def uses_embedded_database(self) -> bool:
        return not self.database_url

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every Kafka client (streams/runtime/clients.py); None unless the protocol is SSL or SASL_SSL.

        It verifies the broker: certificate chain up to `kafka_ssl_cafile` (unset: the system's CAs)
        and host name. With `kafka_ssl_certfile` it presents that client certificate (mutual TLS).
        An encrypted key without `kafka_ssl_key_password` is an error, never OpenSSL's terminal prompt.
        """
        if self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(
            purpose=ssl.Purpose.SERVER_AUTH,
            cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
        )
        if self.kafka_ssl_certfile:
            def key_password() -> str:
                if self.kafka_ssl_key_password is None:
                    raise ValueError(
                        f"the private key of {self.kafka_ssl_keyfile or self.kafka_ssl_certfile} is encrypted: "
                        "set PATROL_KAFKA_SSL_KEY_PASSWORD"
                    )
                return self.kafka_ssl_key_password.get_secret_value()

            context.load_cert_chain(
                str(self.kafka_ssl_certfile),
                str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
                password=key_password,
            )
        elif self.kafka_ssl_keyfile:
            raise ValueError("PATROL_KAFKA_SSL_KEYFILE is set without PATROL_KAFKA_SSL_CERTFILE")
        return context

    def kafka_client_options(self) -> dict:
        """Security options of every Kafka client we build, set by the one client factory (streams/runtime/clients.py)."""
        opts: dict = {"security_protocol": self.kafka_security_protocol}
        context = self.ssl_context()
        if context is not None:
            opts["ssl_context"] = context
        if self.kafka_security_protocol.startswith("SASL"):
            opts["sasl_mechanism"] = self.kafka_sasl_mechanism or "PLAIN"
            opts["sasl_plain_username"] = self.kafka_sasl_username
            opts["sasl_plain_password"] = (
                _Masked(self.kafka_sasl_password.get_secret_value()) if self.kafka_sasl_password else None
            )
        return opts

    def producer_options(self) -> dict:
        """The options of every producer we build (streams/runtime/clients.py builds them): acks=all (a write counts
        once the in-sync replicas have it), idempotent where the broker allows it, and the shared security options."""
        return {"acks": "all", "enable_idempotence": self.kafka_idempotence, **self.kafka_client_options()}

    def with_overrides(self, **values) -> "Settings":
        """A copy with explicit values (e.g. the embedded broker's address) filled in."""
        return self.model_copy(update=values)

    def to_env(self) -> dict[str, str]:
        """These settings as PATROL_* variables, for a child process such as a worker started by `patrol up`."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, datetime):
                value = value.isoformat()
            env[f"PATROL_{name.upper()}"] = str(value)
        return env
