"""The Kafka client factory (streams/runtime/clients.py) is the only place in streams/ that builds a client, and
builds every producer with acks=all and the settings' security options."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from streams.runtime import clients
from streams.settings import Settings

STREAMS = Path(__file__).resolve().parents[3] / "streams"
CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}


def _builders(path: Path, root: Path = STREAMS.parent) -> list[str]:
    """Where `path` calls a client class (by name or as an attribute, such as aiokafka.AIOKafkaProducer)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in CLIENTS:
                found.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    return found


def test_no_module_but_the_factory_builds_a_kafka_client():
    factory = STREAMS / "runtime" / "clients.py"
    elsewhere = [where for path in sorted(STREAMS.rglob("*.py")) if path != factory for where in _builders(path)]
    assert elsewhere == []
    assert len(_builders(factory)) >= 3  # the check itself sees calls: the factory's own


def test_the_check_sees_a_client_built_elsewhere(tmp_path):
    module = tmp_path / "rogue.py"
    module.write_text("import aiokafka\nproducer = aiokafka.AIOKafkaProducer(bootstrap_servers='x')\n")
    assert _builders(module, tmp_path) == ["rogue.py:2 AIOKafkaProducer"]


async def test_every_producer_acknowledges_all_replicas_and_is_secured_as_the_settings_say():
    settings = Settings(kafka_bootstrap="localhost:1", kafka_security_protocol="SASL_PLAINTEXT",
                        kafka_sasl_username="worker", kafka_sasl_password="secret", kafka_idempotence=False)
    producer = clients.producer(settings, linger_ms=3)
    assert producer.client._security_protocol == "SASL_PLAINTEXT"
    assert producer.client._sasl_plain_username == "worker"
    assert producer._sender._acks == -1  # "all"
    await producer.stop()


def test_callers_cannot_set_what_the_factory_sets():
    with pytest.raises(TypeError, match="acks"):
        clients.producer(Settings(kafka_bootstrap="localhost:1"), acks=1)
    with pytest.raises(TypeError, match="security_protocol"):
        clients.consumer(Settings(kafka_bootstrap="localhost:1"), security_protocol="PLAINTEXT")
