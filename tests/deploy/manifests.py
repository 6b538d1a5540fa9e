"""What the tests of deploy/ share (no tests here): where the deployment files are, the table of who may do what on
the Kafka cluster as streams/operations/access.py defines it (`ACLS`, in Strimzi's words) with Kafka's reading of allow rules
(`allowed`), Compose's variable interpolation, and the Kubernetes manifests of deploy/kubernetes/ with the means to
find one. The `compose` fixture (the compose file as written) is in conftest.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from streams.operations.access import principals
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE_SPEC = Path(__file__).with_name("compose-spec.json")
PATROL_SERVICES = ("migrate", "worker-1", "worker-2", "sink", "gateway", "field-api", "simulator")


# ----------------------------------------------------------------------------- who may do what on the Kafka cluster

# The app id both deployments run with (PATROL_APP_ID of kubernetes/10-config.yaml; compose leaves the default): it
# names our internal topics (streams/runtime/topics.py) and consumer groups.
APP = Settings(app_id="patrol-dispatch")
Acl = tuple[str, str, str, str]  # (resource type, name, pattern type, operation), in Strimzi's words


def _allow(kind: str, name: str, pattern: str, *operations: str) -> set[Acl]:
    return {(kind, name, pattern, operation) for operation in operations}


# The table of principals and their ACLs is streams/operations/access.py; deploy/kubernetes/22-users.yaml (KafkaUsers) and the
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
# compose only: `patrol simulate` plays the hotlines and the field units at once (streams/simulation/day_run.py)
COMPOSE_ONLY_ACLS: dict[str, set[Acl]] = {"simulator": ACLS["reporter"] | ACLS["field-api"]}


def allowed(acls: set[Acl], kind: str, name: str, operation: str) -> bool:
    """Kafka's reading of allow rules: a literal name matches itself, a prefix every name it starts; All is all."""
    return any(k == kind and op in (operation, "All") and (n == name if p == "literal" else name.startswith(n))
               for k, n, p, op in acls)

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


def _mount_target(service: dict, source_suffix: str) -> str:
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.rstrip("/").endswith(source_suffix):
            return target
    raise AssertionError(f"nothing mounted from {source_suffix}")


# ----------------------------------------------------------------------------- kubernetes


def _manifests() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                documents.append((path.name, document))
    return documents


MANIFESTS = _manifests()


def _of_kind(kind: str) -> list[dict]:
    return [d for _, d in MANIFESTS if d["kind"] == kind]


def _one(kind: str, name: str | None = None) -> dict:
    found = [d for d in _of_kind(kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def _container(deployment: dict) -> dict:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


# The metadata of a namespaced resource, as a structural schema: the Prometheus operator's resources are checked with
# it in test_kubernetes.py, Strimzi's in test_strimzi.py.
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {"type": "object", "required": ["name", "namespace"],
             "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                            "namespace": {"type": "string"}, "labels": _LABELS, "annotations": _LABELS}}
