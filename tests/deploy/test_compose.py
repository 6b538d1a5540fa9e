"""deploy/docker-compose.yml is valid and agrees with the files it uses and with the code.

- It validates against the Compose Specification's JSON schema (vendored here as compose-spec.json, from the
  check-jsonschema wheel on PyPI; Apache-2.0, LICENSE.compose-spec), before and after variable interpolation.
- It runs the production parts (KRaft Kafka, PostgreSQL, the migration, workers, sink, gateway) with the contract
  settings; its `topics` job creates every contract topic, and our internal ones as a worker would.
- Every file it mounts or builds from exists; its services fit prometheus.yml and Grafana's provisioning; the image
  is the package without the embedded extra; its health checks ask the workers' and the sink's /healthz and /readyz.

Who logs in as whom and may do what (SASL_SSL, SCRAM users, ACLs) is checked in test_access.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from streams.settings import Settings
from streams.runtime.topics import CONTRACT_TOPICS, internal_topics, topic_configs
from tests.deploy.manifests import COMPOSE_SPEC, DEPLOY, PATROL_SERVICES, ROOT, _mount_target, interpolate


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
    # each internal topic with exactly the configuration a worker would create it with (streams/runtime/topics.py): the
    # work log's retention (a takeover replays only what follows the newest snapshot), the snapshots and the
    # unit map compacted, the reporters' personal data kept no longer than the topic catalogue says
    settings = Settings(app_id="patrol-dispatch")
    for topic in internal_topics(settings):
        configs = " ".join(f"--config {name}={value}" for name, value in topic_configs(topic, settings).items())
        assert re.search(rf"create {re.escape(topic)} \"{re.escape(configs)}\"", script), (topic, configs)


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

    from streams.operations.embedded import free_port
    from streams.runtime.health import Health, serve
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
