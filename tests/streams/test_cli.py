"""The `patrol` verbs as a user runs them: real processes, real exit codes."""

import json
import os
import subprocess
import sys

from processors.messages import CONTRACT_MESSAGES


def patrol(*args, env=None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def test_help_lists_the_verbs():
    result = patrol("--help")
    assert result.returncode == 0
    for verb in ("up", "worker", "migrate", "publish", "unit", "simulate", "dashboards", "schemas", "catalogue"):
        assert verb in result.stdout


def test_schemas_are_written_for_every_contract_message(tmp_path):
    result = patrol("schemas", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {f"{name}.schema.json" for name in CONTRACT_MESSAGES}
    report = json.loads((tmp_path / "IncidentReport.schema.json").read_text())
    assert {"report_id", "source", "category", "lat", "lon", "reported_at"} <= set(report["required"])
    unit_event = json.loads((tmp_path / "UnitEvent.schema.json").read_text())
    assert unit_event["discriminator"]["propertyName"] == "type"


def test_the_catalogue_is_printed():
    result = patrol("catalogue")
    assert result.returncode == 0, result.stderr
    assert "PS-FIGHT" in result.stdout and "police" in result.stdout


def test_a_malformed_catalogue_is_refused_naming_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories:\n  - code: X-1\n    name: x\n    domain: weather\n")
    result = patrol("catalogue", env={"PATROL_CATALOGUE": str(bad)})
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert f"{bad}:4: categories.0.domain" in message


def test_publish_refuses_a_line_it_cannot_route(tmp_path):
    lines = tmp_path / "mixed.jsonl"
    lines.write_text('{"report_id": "R-1"}\nnot json\n')
    result = patrol("publish", str(lines), env={"PATROL_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert result.returncode == 2
    assert "line 2" in result.stderr


def test_migrate_needs_a_database_url():
    result = patrol("migrate")
    assert result.returncode == 2 and "PATROL_DATABASE_URL" in result.stderr
