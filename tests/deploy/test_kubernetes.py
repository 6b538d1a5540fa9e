"""The Kubernetes manifests of deploy/kubernetes/ are valid and agree with each other and with the code.

- Every built-in kind validates, strictly (no unknown field), against the Kubernetes OpenAPI schemas that the
  kubernetes-validate wheel ships, for the oldest and newest release we claim.
- The Prometheus operator's PodMonitor and ServiceMonitor have no schema in that wheel: they are checked against the
  structure their CRDs require.
- The Deployments, Services and monitors fit together: selectors, ports, probes on /healthz and /readyz, settings
  from ConfigMaps and Secrets that exist and that streams/settings.py reads.

Strimzi's resources are checked in test_strimzi.py, the KafkaUsers and the Deployments' logins in test_access.py.
"""

from __future__ import annotations

import json

import jsonschema
import kubernetes_validate
import pytest

from streams.settings import Settings
from tests.deploy.manifests import DEPLOY, MANIFESTS, _LABELS, _METADATA, _container, _of_kind, _one

# the range of Kubernetes releases the manifests are written for (Strimzi 0.51 and later support 1.30 and newer)
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CUSTOM_GROUPS = ("kafka.strimzi.io/", "monitoring.coreos.com/")
BUILT_IN = [(f, d) for f, d in MANIFESTS if not d["apiVersion"].startswith(CUSTOM_GROUPS)]
CUSTOM = [(f, d) for f, d in MANIFESTS if d["apiVersion"].startswith(CUSTOM_GROUPS)]


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
# use (_LABELS and _METADATA are in manifests.py). Strimzi's resources are validated against the release's own CRDs,
# in test_strimzi.py.
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


def test_the_field_api_runs_behind_its_service_with_the_shared_token_key():
    field = _one("Deployment", "patrol-field-api")
    labels = field["spec"]["template"]["metadata"]["labels"]
    container = _container(field)
    assert "exec patrol field --host 0.0.0.0 --port 8090" in container["args"][0]
    assert 'PATROL_UNIT_REGISTER="$ref/units.yaml"' in container["args"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8090}
    service = _one("Service", "patrol-field-api")
    assert service["spec"]["selector"] == {k: labels[k] for k in service["spec"]["selector"]}
    assert not _selects({"matchLabels": _one("Service", "patrol-gateway")["spec"]["selector"]}, labels)
    env = {e["name"]: e for e in container["env"]}
    assert env["PATROL_FIELD_TOKEN_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "patrol-field-token", "key": "key"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_every_pod_gets_its_settings_from_objects_that_exist():
    config_maps = {d["metadata"]["name"] for d in _of_kind("ConfigMap")}
    secrets = {d["metadata"]["name"] for d in _of_kind("Secret")}
    pods = [d["spec"]["template"] for d in _of_kind("Deployment") + _of_kind("Job")]
    assert len(pods) == 5
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
    # the database URLs, and the field API's token key (referenced by name, not read whole)
    assert all(set(d["stringData"]) == {"PATROL_DATABASE_URL"} for d in _of_kind("Secret")
               if d["metadata"]["name"] != "patrol-field-token")
    assert set(_one("Secret", "patrol-field-token")["stringData"]) == {"key"}
