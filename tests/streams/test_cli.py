"""The `patrol` verbs as a user runs them: real processes, real exit codes."""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from streams.operations.schemas import ALL_MESSAGES
from streams.operations.embedded import free_port, spawn_child, stop_child
from tests.streams.conftest import eventually


def patrol(*args, env=None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, **kwargs)


# each verb with words of its own description, as `patrol --help` shows them
VERBS = {
    "up": "The main job: embedded broker and database",
    "worker": "Run a worker: intake, district cores",
    "sink": "Run the PostgreSQL sink on its own",
    "migrate": "Apply the database migrations",
    "publish": "Publish JSON lines to incident.reports",
    "unit": "Field-unit terminal",
    "field": "The field API and the field-unit web app",
    "field-credentials": "Device credentials of field units",
    "dashboards": "Write the Grafana dashboards",
    "simulate": "Play a simulated day",
    "gateway": "Open311 GeoReport v2 intake gateway",
    "bench": "Benchmarks: throughput, latency",
    "schemas": "The JSON Schema of every contract message",
    "catalogue": "Print the catalogue of powers and duties",
    "retention": "Erase reporters' personal data older than",
    "accounts": "Dispatcher accounts of the command API",
    "keys": "API keys of the Open311 gateway",
    "roster": "roster: shifts planned from demand",
}


def command_table(help_text: str) -> dict[str, str]:
    """The Commands panel of `patrol --help` as {verb: description}; a wrapped description is joined up."""
    table: dict[str, str] = {}
    verb = None
    lines = iter(help_text.splitlines())
    for line in lines:
        if "Commands" in line:
            break
    for line in lines:
        if line.startswith("╰"):
            break
        row = line.strip().strip("│").rstrip()
        name, _, text = row.strip().partition(" ")
        if row.startswith(" ") and row[1:2] != " " and name:  # a verb's first line: its name, then its text
            verb = name
            table[verb] = text.strip()
        elif verb is not None:  # the wrapped rest of the verb's description
            table[verb] += " " + row.strip()
    return table


def test_help_shows_each_verb_with_its_own_description():
    result = patrol("--help", env={"COLUMNS": "100", "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    table = command_table(result.stdout)
    assert sorted(table) == sorted(VERBS), result.stdout
    for verb, words in VERBS.items():
        assert words in table[verb], (verb, table[verb])
        # the words tell this verb from the others: no other verb's line has them
        assert [other for other, text in table.items() if words in text] == [verb]


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_each_verb_prints_its_own_usage(verb):
    result = patrol(verb, "--help", env={"COLUMNS": "200", "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.replace("│", " ").split())
    assert f"Usage: patrol {verb} [OPTIONS]" in text
    assert VERBS[verb] in text
    assert [other for other, words in VERBS.items() if words in text] == [verb]


def test_version_and_module_entry_point():
    from streams import __version__

    result = patrol("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"patrol-dispatch {__version__}"
    assert __version__ != "0.0.0"  # read from the installed distribution's metadata
    as_module = subprocess.run([sys.executable, "-m", "streams", "--help"], capture_output=True, text=True,
                               env={**os.environ, "COLUMNS": "100"}, timeout=60)
    assert as_module.returncode == 0 and "Usage: patrol" in as_module.stdout
    assert sorted(command_table(as_module.stdout)) == sorted(VERBS)


def test_logs_are_json_lines_when_the_settings_say_so():
    # a logged failure, as a worker logs one: one JSON object per line, its traceback without frame variables
    program = ("import structlog; from streams.cli import _settings; _settings()\n"
               "def handle(payload):\n    raise ValueError('unreadable')\n"
               "try:\n    handle({'phone': '13800138000'})\n"
               "except ValueError as exc:\n    structlog.get_logger('patrol.test').error('failed', exc_info=exc, n=1)\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    result = subprocess.run([sys.executable, "-c", program], env={**clean, "PATROL_LOG_FORMAT": "json"},
                            capture_output=True, text=True, timeout=60)
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    entry = json.loads(line)
    assert entry["event"] == "failed" and entry["level"] == "error" and entry["n"] == 1
    assert "ValueError: unreadable" in entry["exception"] and "13800138000" not in line


def test_schemas_are_written_for_every_contract_message(tmp_path):
    result = patrol("schemas", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {f"{name}.schema.json" for name in ALL_MESSAGES} | {"asyncapi.json"}
    assert "RegisterChange.schema.json" in written
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


@pytest.mark.integration
async def test_worker_sink_and_gateway_start_in_an_empty_directory_and_serve_together(second_site, tmp_path):
    """Each long-running verb started as an operator might: in a directory with nothing in it, PATROL_DATA_DIR
    left at its default (`run`, relative), on a broker and database of their own (a worker of a new app id
    on the session's broker would decide every report of the session again). A request posted to the gateway
    is decided by the worker and written by the sink, so each of the three is seen at work, not only up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    env.update(second_site.to_env())
    del env["PATROL_DATA_DIR"]
    patrol = str(Path(sys.executable).with_name("patrol"))  # the console script an operator runs
    port = free_port()
    verbs = {
        "worker": (["worker"], {"PATROL_APP_ID": f"patrol-cwd-w-{uuid.uuid4().hex[:6]}",
                                "PATROL_SINK_IN_WORKER": "false", "PATROL_METRICS_PORT": "0"}),
        "sink": (["sink"], {"PATROL_APP_ID": f"patrol-cwd-s-{uuid.uuid4().hex[:6]}", "PATROL_METRICS_PORT": "0"}),
        "gateway": (["gateway", "--port", str(port)], {}),
    }
    # the hotline's key, as an operator issues it (its run needs no data directory either)
    issued = subprocess.run([patrol, "keys", "issue", "--client", "hotline", "--role", "hotline"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip()
    processes, logs = {}, {}
    try:
        for name, (args, overrides) in verbs.items():
            cwd = tmp_path / f"cwd-{name}"
            cwd.mkdir()
            logs[name] = tmp_path / f"{name}.log"
            processes[name] = spawn_child([patrol, *args], log=logs[name], death_signal=signal.SIGTERM,
                                          env={**env, **overrides}, cwd=cwd)

        def running(name: str) -> None:
            assert processes[name].poll() is None, f"patrol {name} exited:\n{logs[name].read_text()[-3000:]}"

        async def logged(name: str, line: str) -> bool:
            running(name)
            return line in logs[name].read_text()

        await eventually(lambda: logged("worker", "consumer loop started"), timeout=120)
        await eventually(lambda: logged("sink", "sink started"), timeout=120)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async def answers(path: str):
                running("gateway")
                try:
                    response = await client.get(path)
                except httpx.TransportError:
                    return None
                return response if response.status_code == 200 else None

            await eventually(lambda: answers("/healthz"), timeout=120)
            posted = await client.post("/requests.json", data={"service_code": "PS-FIGHT", "lat": 30.654,
                                                               "long": 104.0765, "api_key": key})
            assert posted.status_code == 201, posted.text
            request_id = posted.json()[0]["service_request_id"]
            # 404 until the worker has created the incident and the sink has written it
            registered = await eventually(lambda: answers(f"/requests/{request_id}.json?api_key={key}"), timeout=120)
        assert registered.json()[0]["service_code"] == "PS-FIGHT"
        for name in verbs:
            running(name)
    finally:
        for process in processes.values():
            stop_child(process, signal.SIGTERM, timeout=30)
