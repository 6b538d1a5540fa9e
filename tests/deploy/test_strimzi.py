"""Strimzi's resources in deploy/kubernetes/ (Kafka, KafkaNodePool, KafkaTopic, KafkaUser) are valid and agree with
the rest.

- They validate, strictly (no field the CRD does not know), against the CRDs of the Strimzi release
  deploy/strimzi/pom.xml names, made by tests/deploy/strimzi_crds.py and checked to be the release's own (SHA-256).
- The Kafka version is one that release supports, and the one compose runs; the cluster is KRaft with node pools
  and one TLS/SCRAM listener; every contract topic and our internal ones are KafkaTopics configured as a worker
  would create them.

The KafkaUsers' ACLs are checked in test_access.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import jsonschema
import pytest
import yaml

from streams.settings import Settings
from streams.runtime.topics import CONTRACT_TOPICS, internal_topics, topic_configs
from tests.deploy.manifests import MANIFESTS, _METADATA, _of_kind, _one
from tests.deploy.strimzi_crds import CRDS, fetch_crds, strimzi_version

STRIMZI = [(f, d) for f, d in MANIFESTS if d["apiVersion"].startswith("kafka.strimzi.io/")]
# Facts of the Strimzi release deploy/strimzi/pom.xml names (strimzi/strimzi-kafka-operator at tag 1.2.0): the SHA-256
# of its packaging/install/cluster-operator/*-Crd-*.yaml, and the Kafka versions it supports (kafka-versions.yaml,
# `supported: true`; 4.3.1 is its default). A new release means new facts here.
STRIMZI_RELEASE = "1.2.0"
RELEASE_CRD_SHA256 = {
    "040-Crd-kafka.yaml": "b5b27fc8d52068a77cde7c40d47c068023c7b4e92fc266c45200db2d2506392a",
    "043-Crd-kafkatopic.yaml": "36390f0731c699448076d4ee739e8b7f331d083e91a7fb71500aaa830ab1127e",
    "044-Crd-kafkauser.yaml": "c7e91b9b027a516b43dc7d369e781ee23a6ea177ae15fe0c33af6f722e26e05f",
    "045-Crd-kafkanodepool.yaml": "411c1b32ef8c1a6408ac9d4fe791115a6ce2b41107204588f976a3ed19be2430",
}
SUPPORTED_KAFKA_VERSIONS = ("4.2.0", "4.2.1", "4.3.0", "4.3.1")


def strict_schema(node: dict) -> dict:
    """A CRD's structural schema as a JSON schema that also refuses fields the CRD does not know (the API server
    drops them, or refuses them under strict field validation; either way a manifest that has one is wrong).

    Every object of the structure (properties, items, additionalProperties) that names its properties gets
    additionalProperties: false, unless it has x-kubernetes-preserve-unknown-fields (e.g. `config`);
    x-kubernetes-int-or-string becomes "integer or string"; the other x-kubernetes-* keys, among them the CEL rules
    of x-kubernetes-validations, are left out (not checked here). oneOf/anyOf/allOf/not are value validations and
    are kept as they are."""
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if "properties" in node:
        out["properties"] = {name: strict_schema(child) for name, child in node["properties"].items()}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(node.get("items"), dict):
        out["items"] = strict_schema(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = strict_schema(node["additionalProperties"])
    return out


@pytest.fixture(scope="module")
def strimzi_crds() -> dict[str, dict]:
    if shutil.which("mvn") is None:  # a machine with Python alone: the CRDs come from Maven Central through Maven
        pytest.skip("no mvn on the PATH: Strimzi's CRDs are fetched by Maven")
    directory = fetch_crds()
    return {kind: yaml.safe_load((directory / name).read_text()) for kind, (_, name) in CRDS.items()}


@pytest.fixture(scope="module")
def strimzi_validators(strimzi_crds) -> dict[str, tuple[str, jsonschema.protocols.Validator]]:
    """kind -> (the apiVersion the release serves it at, a validator of its strict schema)."""
    validators = {}
    for kind, crd in strimzi_crds.items():
        [version] = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
        schema = strict_schema(version["schema"]["openAPIV3Schema"])
        jsonschema.Draft7Validator.check_schema(schema)
        validators[kind] = (f"{crd['spec']['group']}/{version['name']}", jsonschema.Draft7Validator(schema))
    return validators


def _errors(validator, document) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))]


def test_the_strimzi_crds_are_the_releases_own(strimzi_crds):
    assert strimzi_version() == STRIMZI_RELEASE
    directory = fetch_crds()
    assert {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
            for _, name in CRDS.values()} == RELEASE_CRD_SHA256
    # the v1 API only: v1beta2 is gone from the CRDs since Strimzi 1.0
    for kind, crd in strimzi_crds.items():
        assert crd["spec"]["names"]["kind"] == kind
        assert [v["name"] for v in crd["spec"]["versions"] if v["served"]] == ["v1"], kind


@pytest.mark.parametrize("path, document", STRIMZI, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in STRIMZI])
def test_strimzi_resources_validate_against_the_releases_crds(path, document, strimzi_validators):
    assert document["kind"] in strimzi_validators, f"{path}: add {document['kind']}'s CRD to tests/deploy/strimzi_crds.py"
    api_version, validator = strimzi_validators[document["kind"]]
    assert document["apiVersion"] == api_version, path
    errors = _errors(validator, document) + _errors(jsonschema.Draft202012Validator(_METADATA), document["metadata"])
    assert not errors, f"{path}:\n" + "\n".join(errors)


def test_the_strimzi_check_has_teeth(strimzi_validators):
    def broken(kind: str, name: str | None, change) -> list[str]:
        document = json.loads(json.dumps(_one(kind, name)))
        change(document)
        return _errors(strimzi_validators[kind][1], document)

    # fields v1 removed: the brokers' resources (now the node pool's), an ACL's single `operation`
    assert broken("Kafka", None, lambda d: d["spec"]["kafka"].update(resources={"requests": {"cpu": "1"}}))
    assert broken("KafkaUser", "worker",
                  lambda d: d["spec"]["authorization"]["acls"][0].update(operation="Read"))
    # a field nobody ever had, values outside the enums, a missing required field
    assert broken("Kafka", None, lambda d: d["spec"]["kafka"]["listeners"][0].update(sasl=True))
    assert broken("Kafka", None, lambda d: d["spec"]["kafka"]["listeners"][0].update(authentication={"type": "scram-sha-256"}))
    assert broken("KafkaNodePool", None, lambda d: d["spec"].update(roles=["zookeeper"]))
    assert broken("KafkaUser", "sink", lambda d: d["spec"]["authorization"]["acls"][0]["resource"].update(patternType="prefixed"))
    assert broken("KafkaTopic", "incident-reports", lambda d: d.pop("spec"))
    assert broken("KafkaTopic", "incident-reports", lambda d: d["spec"].update(partitions="twelve"))
    # a broker setting is free-form: `config` keeps unknown fields
    assert not broken("Kafka", None, lambda d: d["spec"]["kafka"]["config"].update({"log.retention.hours": 1}))


def test_the_kafka_version_is_one_the_strimzi_release_supports(compose):
    version = _one("Kafka")["spec"]["kafka"]["version"]
    assert version in SUPPORTED_KAFKA_VERSIONS
    # one Kafka everywhere: compose runs the same release
    for name in ("kafka", "kafka-setup", "topics"):
        assert compose["services"][name]["image"] == f"apache/kafka:{version}", name


def test_the_kafka_cluster_is_kraft_with_node_pools_and_one_tls_scram_listener():
    kafka = _one("Kafka")
    # v1: KRaft and node pools are the only way, and the annotations that chose them are gone
    assert "annotations" not in kafka["metadata"]
    assert "zookeeper" not in kafka["spec"]
    pools = _of_kind("KafkaNodePool")
    assert all(p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for p in pools)
    assert {"controller", "broker"} <= {role for p in pools for role in p["spec"]["roles"]}
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    config = kafka["spec"]["kafka"]["config"]
    assert config["min.insync.replicas"] < config["default.replication.factor"] <= brokers
    # one listener, TLS and SCRAM-SHA-512; Kafka's ACLs decide; the User Operator runs the KafkaUsers
    [listener] = kafka["spec"]["kafka"]["listeners"]
    assert (listener["type"], listener["tls"], listener["authentication"]) == ("internal", True, {"type": "scram-sha-512"})
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}
    assert "allow.everyone.if.no.acl.found" not in config
    assert {"topicOperator", "userOperator"} <= set(kafka["spec"]["entityOperator"])
    # clients find it, and speak its protocol, where the settings say
    settings = _one("ConfigMap", "patrol-config")["data"]
    assert settings["PATROL_KAFKA_BOOTSTRAP"] == f"{kafka['metadata']['name']}-kafka-bootstrap.patrol.svc:{listener['port']}"
    assert (settings["PATROL_KAFKA_SECURITY_PROTOCOL"], settings["PATROL_KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512")


def test_every_contract_topic_and_our_internal_ones_are_kafka_topics():
    kafka = _one("Kafka")
    config = _one("ConfigMap", "patrol-config")["data"]
    topics = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in _of_kind("KafkaTopic")}
    settings = Settings(app_id=config["PATROL_APP_ID"])
    assert set(topics) == {*CONTRACT_TOPICS, *internal_topics(settings)}
    brokers = sum(p["spec"]["replicas"] for p in _of_kind("KafkaNodePool") if "broker" in p["spec"]["roles"])
    for name, topic in topics.items():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"], name
        assert topic["spec"]["partitions"] == int(config["PATROL_TOPIC_PARTITIONS"]), name
        assert topic["spec"]["replicas"] == int(config["PATROL_TOPIC_REPLICATION"]) <= brokers, name
    # each internal topic with the configuration a worker would create it with (streams/runtime/topics.py)
    for topic in internal_topics(settings):
        wanted = topic_configs(topic, settings)
        assert {name: str(topics[topic]["spec"]["config"].get(name)) for name in wanted} == wanted, topic
