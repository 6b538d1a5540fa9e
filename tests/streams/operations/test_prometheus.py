"""The Prometheus side of the command centre, proved against Debian's real `prometheus`.

1. `promtool` accepts deploy/prometheus/prometheus.yml and alerts.yml, and alerts_test.yml (a firing and a
   quiet scenario for every rule) passes.
2. A real Prometheus scrapes the session's real worker (every second) while it processes a stream that
   exercises every metric; then every PromQL expression of every dashboard panel (grafana/dashboards/*.json)
   and of every alert rule is run through the HTTP API: each must parse and return data. An alert compares
   with a threshold, and a quiet system is below it, so what must return data is each operand of the rule
   with its comparison stripped (`sum by (...) (...) > 5` -> `sum by (...) (...)`; both sides of an
   `and`/`unless`).
3. Every SQL query of the PostgreSQL panels runs against the real, migrated schema.

Prometheus comes from Debian's `prometheus` package, which `make prerequisites` installs when it is missing.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from streams.operations.embedded import free_port, spawn_child, stop_child
from streams.operations.publish import Outgoing
from streams.runtime.topics import DISPATCH_ORDERS, INCIDENT_REPORTS, UNIT_EVENTS
from tests.streams.conftest import Field, TopicReader, message, send

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
PROMETHEUS_BIN = Path("/usr/bin/prometheus")
PROMTOOL_BIN = Path("/usr/bin/promtool")

# The metric names are a contract (streams/runtime/metrics.py exports them); the stream driven below gives each data.
METRICS = {
    "patrol_reports_total": "counter",
    "patrol_unit_events_total": "counter",
    "patrol_dead_letters_total": "counter",
    "patrol_incident_events_total": "counter",
    "patrol_dispatch_orders_total": "counter",
    "patrol_reassignments_total": "counter",
    "patrol_sla_breaches_total": "counter",
    "patrol_sla_outcomes_total": "counter",
    "patrol_dispatch_decision_seconds": "histogram",
    "patrol_intake_wait_seconds": "histogram",
    "patrol_response_seconds": "histogram",
    "patrol_open_incidents": "gauge",
    "patrol_queued_incidents": "gauge",
    "patrol_units": "gauge",
    "patrol_street_workload": "gauge",
    "patrol_street_circle_covered": "gauge",
    "patrol_consumer_lag": "gauge",
    "patrol_sink_batch_seconds": "histogram",
    "patrol_sink_rows_total": "counter",
    "patrol_sink_retries_total": "counter",
    "patrol_worker_info": "gauge",
    "patrol_loop_restarts_total": "counter",
    "patrol_loop_progress_timestamp_seconds": "gauge",
    "patrol_sink_write_failing_seconds": "gauge",
    "patrol_worker_ready": "gauge",
}
SCRAPE_JOB = "patrol-workers"  # the alert rules select on it


@pytest.fixture(scope="session")
def prometheus_binaries() -> tuple[Path, Path]:
    """Debian's prometheus and promtool (`make prerequisites` installs them; the tests install nothing)."""
    if not (PROMETHEUS_BIN.exists() and PROMTOOL_BIN.exists()):
        pytest.fail(f"{PROMETHEUS_BIN} or {PROMTOOL_BIN} is missing: `make prerequisites` installs Debian's "
                    "`prometheus` package (as `make test` does)")
    return PROMETHEUS_BIN, PROMTOOL_BIN


def prometheus_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).splitlines()[0]


# --------------------------------------------------------------------------- 1. promtool


def _promtool(promtool: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(promtool), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [
    ("check", "config", "prometheus.yml"),
    ("check", "rules", "alerts.yml"),
    ("test", "rules", "alerts_test.yml"),
], ids=["check-config", "check-rules", "test-rules"])
def test_promtool_accepts_the_configuration_and_the_rules_pass_their_tests(prometheus_binaries, command):
    _, promtool = prometheus_binaries
    result = _promtool(promtool, *command)
    assert result.returncode == 0, f"promtool {' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alert_rule_is_labelled_annotated_and_tested_firing_and_quiet():
    rules = alert_rules()
    doc = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    assert [g["name"] for g in doc["groups"]] == ["patrol"]
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)) >= 12
    for rule in rules:
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule.get("annotations", {})), rule["alert"]

    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    fires, quiet = set(), set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(names) <= fires, f"rules never tested firing: {set(names) - fires}"
    assert set(names) <= quiet, f"rules never tested quiet: {set(names) - quiet}"


RUNBOOK = ROOT / "docs" / "runbook.md"


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """docs/runbook.md's sections (## and deeper) by anchor: the text up to the next heading of any level."""
    sections, anchor = {}, None
    for line in RUNBOOK.read_text().splitlines():
        heading = re.match(r"#{2,6}\s+(.*)", line)
        if heading:
            anchor = _anchor(heading.group(1))
            sections[anchor] = ""
        elif anchor is not None:
            sections[anchor] += line + "\n"
    return sections


def test_every_alert_links_a_runbook_section_that_names_it():
    assert _anchor("Sink cannot write") == "sink-cannot-write"
    assert _anchor("Decision latency: budget burning (`x`)") == "decision-latency-budget-burning-x"
    sections = runbook_sections()
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        # one form for all: relative to the repository, so it names the file as it is in this version
        match = re.fullmatch(r"docs/runbook\.md#([a-z0-9-]+)", url)
        assert match, f"{rule['alert']}: runbook_url {url!r} is not docs/runbook.md#<section>"
        assert match.group(1) in sections, f"{rule['alert']}: docs/runbook.md has no heading for #{match.group(1)}"
        assert rule["alert"] in sections[match.group(1)], f"{rule['alert']}: its runbook section does not name it"


# --------------------------------------------------------------------------- expressions to check


_SET_OPERATOR = re.compile(r"\s+(and|or|unless)(\s+(on|ignoring)\s*\([^)]*\))?\s+", re.IGNORECASE)
_ABSENT = re.compile(r"^absent\s*\((.*)\)$", re.DOTALL)
_SCALAR_COMPARISON = re.compile(
    r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$", re.IGNORECASE)


def _top_level_split(expr: str) -> list[str]:
    """Split at `and`/`or`/`unless` outside parentheses, brackets, braces and strings."""
    depth, quote, cuts, i = 0, None, [], 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            # the operator's leading whitespace sets it apart from a name (`x_and`), whatever precedes it
            # (`> 0.144 and`)
            m = _SET_OPERATOR.match(expr, i)
            if m:
                cuts.append((i, m.end()))
                i = m.end()
                continue
        i += 1
    parts, start = [], 0
    for begin, end in cuts:
        parts.append(expr[start:begin])
        start = end
    parts.append(expr[start:])
    return [p.strip() for p in parts if p.strip()]


def _strip_outer_parentheses(expr: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, c in enumerate(expr):
            depth += c == "("
            depth -= c == ")"
            if depth == 0 and i < len(expr) - 1:
                return expr  # "(a) > (b)": the first parenthesis closes before the end
        expr = expr[1:-1].strip()
    return expr


def data_expressions(expr: str) -> list[str]:
    """What must return data on a quiet system: each set-operation operand, compared-with-a-scalar stripped, and
    of `absent(v)` the `v` it finds present."""
    out = []
    for part in _top_level_split(" ".join(expr.split())):
        part = _strip_outer_parentheses(part)
        stripped = _strip_outer_parentheses(_SCALAR_COMPARISON.sub("", part))
        absent = _ABSENT.match(stripped)
        out.append(absent.group(1).strip() if absent else stripped)
    return out


def test_alert_comparisons_are_stripped_to_their_operands():
    assert data_expressions('up{job="patrol-workers"} == 0') == ['up{job="patrol-workers"}']
    assert data_expressions("sum by (a) (rate(x_total[5m])) > 0.05") == ["sum by (a) (rate(x_total[5m]))"]
    assert data_expressions("(sum by (a, b) (x) > 0)\nunless on (a, b)\n(sum by (a, b) (y{s=\"free\"}) > 0)") == [
        "sum by (a, b) (x)", 'sum by (a, b) (y{s="free"})']
    assert data_expressions("(sum(x) > 1000) and on (g) (sum(deriv(x[10m])) > 0)") == [
        "sum(x)", "sum(deriv(x[10m]))"]
    # a label value that looks like an operator is not split
    assert data_expressions('x{a="b and c"} > 1') == ['x{a="b and c"}']
    assert data_expressions('absent(up{job="j"})') == ['up{job="j"}']
    assert data_expressions('absent(x{l="a"})\nor absent(x{l="b"})') == ['x{l="a"}', 'x{l="b"}']
    assert data_expressions("(sum(rate(c[1h])) - sum(rate(b[1h]))) / sum(rate(c[1h])) > 0.144\nand\n"
                            "(sum(rate(c[5m])) - sum(rate(b[5m]))) / sum(rate(c[5m])) > 0.144") == [
        "(sum(rate(c[1h])) - sum(rate(b[1h]))) / sum(rate(c[1h]))",
        "(sum(rate(c[5m])) - sum(rate(b[5m]))) / sum(rate(c[5m]))"]
    assert data_expressions("x_and_y > 1") == ["x_and_y"]


@dataclass(frozen=True)
class Expression:
    where: str  # "alerts.yml: PatrolWorkerDown" or "patrol-live.json: panel 'Open incidents' (A)"
    expr: str  # as run
    must_have_data: bool = True


def alert_expressions() -> list[Expression]:
    out = []
    for rule in alert_rules():
        where = f"alerts.yml: {rule['alert']}"
        out.append(Expression(f"{where} (whole rule; parse only)", " ".join(rule["expr"].split()), False))
        for operand in data_expressions(rule["expr"]):
            out.append(Expression(f"{where} (operand)", operand))
    return out


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def _dashboard(path: Path) -> dict:
    doc = json.loads(path.read_text())
    return doc.get("dashboard", doc)  # the API's {"dashboard": ...} wrapper or the bare model


def _panels(panels: list[dict]):
    for panel in panels or []:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows (collapsed ones hold their panels)


def dashboard_targets(kind: str):
    """(file, dashboard, panel, target) for every target whose query is PromQL (`expr`) or SQL (`rawSql`)."""
    field = {"promql": "expr", "sql": "rawSql"}[kind]
    for path in dashboard_files():
        board = _dashboard(path)
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []) or []:
                if isinstance(target.get(field), str) and target[field].strip() and not target.get("hide"):
                    yield path, board, panel, target


# --------------------------------------------------------------------------- Grafana variables and macros


GLOBAL_VARIABLES = {
    "__rate_interval": "1m", "__interval": "1m", "__interval_ms": "60000", "__range": "1h", "__range_s": "3600",
    "__range_ms": "3600000", "__auto": "1m", "__rate_interval_ms": "60000", "__dashboard": "patrol",
    "__org": "1", "__user": "admin", "__name": "test",
}
_REFERENCE = re.compile(r"\$\{([A-Za-z_]\w*)(?::([\w]+))?\}|\[\[([A-Za-z_]\w*)(?::([\w]+))?\]\]|\$([A-Za-z_]\w*)")


class Variables:
    """Values for a dashboard's template variables: this test's district and street where the name says so,
    otherwise a value the variable itself offers (custom options, label_values from Prometheus, current)."""

    def __init__(self, board: dict, preferred: dict[str, str], prometheus: "PrometheusServer | None"):
        self.definitions = {v["name"]: v for v in (board.get("templating") or {}).get("list", []) if "name" in v}
        self.values = dict(GLOBAL_VARIABLES)
        for name, var in self.definitions.items():
            self.values[name] = self._choose(name, var, preferred, prometheus)

    @staticmethod
    def _choose(name: str, var: dict, preferred: dict[str, str], prometheus) -> str:
        if name in preferred:
            return preferred[name]
        kind = var.get("type")
        if kind == "interval":
            return "1m"
        if kind == "custom":
            options = [o.get("value") for o in var.get("options", []) if o.get("value") not in (None, "$__all")]
            if not options and isinstance(var.get("query"), str):
                options = [o.split(":", 1)[-1].strip() for o in var["query"].split(",")]
            if options:
                return str(options[0])
        if kind == "query" and prometheus is not None:
            query = var.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            m = re.match(r"\s*label_values\((?:(.*),)?\s*(\w+)\s*\)\s*$", query or "")
            if m:
                values = prometheus.label_values(m.group(2), m.group(1))
                if values:
                    return values[0]
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = current[0] if current else None
        if current and current != "$__all":
            return str(current)
        if kind in ("constant", "textbox") and isinstance(var.get("query"), str):
            return var["query"]
        return ""  # nothing to offer: the query runs with an empty value

    def _multi(self, name: str) -> bool:
        var = self.definitions.get(name, {})
        return bool(var.get("multi") or var.get("includeAll"))

    def substitute(self, text: str, sql: bool) -> str:
        def replace(m: re.Match) -> str:
            name = m.group(1) or m.group(3) or m.group(5)
            fmt = m.group(2) or m.group(4)
            if name not in self.values:
                return m.group(0)  # left as is: the query fails and the message shows it
            value = self.values[name]
            if fmt in ("singlequote", "sqlstring"):
                return "'" + value.replace("'", "''") + "'"
            if fmt == "doublequote":
                return '"' + value + '"'
            if fmt == "json":
                return json.dumps([value])
            if fmt == "regex":
                return re.sub(r"([\\.^$*+?()\[\]{}|])", r"\\\1", value)
            if fmt == "queryparam":
                return f"var-{name}={urllib.parse.quote(value)}"
            if fmt == "percentencode":
                return urllib.parse.quote(value)
            if fmt is None and sql and self._multi(name):
                return "'" + value.replace("'", "''") + "'"  # Grafana quotes multi-value variables in SQL
            return value

        return _REFERENCE.sub(replace, text)


def _interval_seconds(text: str) -> int:
    text = text.strip().strip("'\"")
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)?", text)
    if not m:
        return 60  # $__interval and the like
    n, unit = int(m.group(1)), m.group(2) or "s"
    return max(1, n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit])


def _macro_arguments(text: str, start: int) -> tuple[list[str], int]:
    """Arguments of the macro call whose "(" is at `start`, and the index after its ")"."""
    depth, args, current, i = 0, [], "", start
    while i < len(text):
        c = text[i]
        if c == "(":
            depth += 1
            if depth > 1:
                current += c
        elif c == ")":
            depth -= 1
            if depth == 0:
                args.append(current.strip())
                return [a for a in args if a != ""], i + 1
            current += c
        elif c == "," and depth == 1:
            args.append(current.strip())
            current = ""
        else:
            current += c
        i += 1
    raise ValueError(f"unbalanced macro call in {text!r}")


def expand_sql_macros(sql: str, start: datetime, end: datetime) -> str:
    """Grafana's PostgreSQL macros, expanded the way Grafana does for the range start..end."""
    frm, to = start.strftime("'%Y-%m-%dT%H:%M:%SZ'"), end.strftime("'%Y-%m-%dT%H:%M:%SZ'")
    efrm, eto = str(int(start.timestamp())), str(int(end.timestamp()))

    def expand(name: str, args: list[str]) -> str:
        col = args[0] if args else ""
        if name == "time":
            return f'{col} AS "time"'
        if name == "timeEpoch":
            return f'extract(epoch from {col}) AS "time"'
        if name == "timeFilter":
            return f"{col} BETWEEN {frm} AND {to}"
        if name == "timeFrom":
            return frm
        if name == "timeTo":
            return to
        if name in ("timeGroup", "timeGroupAlias"):
            s = _interval_seconds(args[1] if len(args) > 1 else "1m")
            group = f"floor(extract(epoch from {col})/{s})*{s}"
            return group + (' AS "time"' if name.endswith("Alias") else "")
        if name == "unixEpochFilter":
            return f"{col} >= {efrm} AND {col} <= {eto}"
        if name == "unixEpochNanoFilter":
            return f"{col} >= {efrm}000000000 AND {col} <= {eto}000000000"
        if name == "unixEpochFrom":
            return efrm
        if name == "unixEpochTo":
            return eto
        if name == "unixEpochNanoFrom":
            return efrm + "000000000"
        if name == "unixEpochNanoTo":
            return eto + "000000000"
        if name in ("unixEpochGroup", "unixEpochGroupAlias"):
            s = _interval_seconds(args[1] if len(args) > 1 else "1m")
            group = f"floor({col}/{s})*{s}"
            return group + (' AS "time"' if name.endswith("Alias") else "")
        raise ValueError(f"unknown Grafana macro $__{name}")

    pattern = re.compile(r"\$__(\w+)\(")
    while (m := pattern.search(sql)) is not None:
        args, after = _macro_arguments(sql, m.end() - 1)
        sql = sql[:m.start()] + expand(m.group(1), args) + sql[after:]
    return sql


def test_sql_macros_expand_like_grafana():
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    end = start + timedelta(hours=1)
    sql = expand_sql_macros("SELECT $__timeGroupAlias(at, '5m'), count(*) FROM t WHERE $__timeFilter(lower(x.at))",
                            start, end)
    assert sql == ("SELECT floor(extract(epoch from at)/300)*300 AS \"time\", count(*) FROM t "
                   "WHERE lower(x.at) BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-01T01:00:00Z'")
    board = {"templating": {"list": [{"name": "district", "type": "query", "multi": True},
                                     {"name": "street", "type": "query"}]}}
    v = Variables(board, {"district": "D1", "street": "S1"}, None)
    assert v.substitute("district IN ($district) AND street = '${street}'", sql=True) == \
        "district IN ('D1') AND street = 'S1'"
    assert v.substitute('rate(x{district=~"$district"}[$__rate_interval]) and label_replace(y, "a", "$1", "b", "(.*)")',
                        sql=False) == 'rate(x{district=~"D1"}[1m]) and label_replace(y, "a", "$1", "b", "(.*)")'


# --------------------------------------------------------------------------- a real Prometheus


class PrometheusServer:
    def __init__(self, binary: Path, workdir: Path, target: str, rule_file: Path):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rule_file)],
            "scrape_configs": [{"job_name": SCRAPE_JOB, "static_configs": [{"targets": [target]}]}],
        }))
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrometheusServer":
        self.process = spawn_child(
            [str(self.binary), f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d",
             "--log.level=warn"],
            log=self.log, death_signal=signal.SIGKILL)  # dies with the test process: never an orphan
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready within 30 s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None:
            stop_child(self.process, signal.SIGTERM, timeout=10)

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}"
        data = urllib.parse.urlencode(params, doseq=True).encode() if params else None
        try:
            with urllib.request.urlopen(url, data=data, timeout=15) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # 400/422 carry the JSON error
            try:
                return json.loads(error.read())
            except ValueError:
                return {"status": "error", "error": f"HTTP {error.code}"}

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def label_values(self, label: str, match: str | None) -> list[str]:
        params = {"match[]": match.strip()} if match and match.strip() else {}
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/label/{label}/values{query}", timeout=15) as response:
            return json.loads(response.read()).get("data", [])


@pytest.fixture
def prometheus(prometheus_binaries, worker, tmp_path):
    binary, _ = prometheus_binaries
    server = PrometheusServer(binary, tmp_path, f"127.0.0.1:{worker.settings.metrics_port}",
                              PROMETHEUS_DIR / "alerts.yml")
    try:
        yield server.start()
    finally:
        server.stop()
        assert server.process is None or server.process.poll() is not None, "prometheus still running"


def _has_data(answer: dict) -> bool:
    data = answer.get("data") or {}
    if data.get("resultType") in ("scalar", "string"):
        return True
    return bool(data.get("result"))


# --------------------------------------------------------------------------- driving the worker


def _report(report_id: str, category: str, point, source: str) -> Outgoing:
    return message(INCIDENT_REPORTS, report_id, {
        "schema_version": 1, "report_id": report_id, "source": source, "category": category,
        "lat": point[0], "lon": point[1], "reported_at": "2026-11-25T07:59:00Z"})


async def drive_the_worker(settings, db, district) -> dict:
    """A stream that gives every metric data: valid reports of several categories and sources, invalid ones
    (dead letters), a unit that never acknowledges an XT-FAST order (reassignment, breaches), one that
    declines, units that work orders to the end (response times, SLA outcomes), a joint dispatch (lead and
    support orders) and a last XT-FAST incident nobody takes (queued, escalated, open)."""
    f = Field(district)
    units = {
        "silent": (f"{f.run}-P1", "police", district.point(east_m=100)),
        "worker": (f"{f.run}-P2", "police", district.point(east_m=1500)),
        "decliner": (f"{f.run}-T1", "traffic", district.point(north_m=300)),
        "city": (f"{f.run}-C1", "city_management", district.point(north_m=-300)),
        "city-2": (f"{f.run}-C2", "city_management", district.point(north_m=-1500)),
    }
    ids = {uid for uid, _, _ in units.values()}
    await f.log_on_all(settings, db, list(units.values()))
    first, parking, garbage = f"{f.run}-fast-1", f"{f.run}-parking", f"{f.run}-garbage"
    crowd, last = f"{f.run}-crowd", f"{f.run}-fast-2"
    await send(settings, [
        _report(first, "XT-FAST", district.point(), "sensor"),
        _report(parking, "TR-PARKING", district.point(north_m=300), "app"),
        _report(garbage, "CM-GARBAGE", district.point(north_m=-300), "patrol"),
        # dead letters: unreadable bytes, an unknown category, a place outside the area, an unknown unit
        Outgoing(INCIDENT_REPORTS, f"{f.run}-bad-json".encode(), b"{this is not json"),
        _report(f"{f.run}-bad-category", "XX-NO-SUCH", district.point(), "hotline"),
        _report(f"{f.run}-bad-place", "PS-NOISE", (0.5, 0.5), "hotline"),
        message(UNIT_EVENTS, f"{f.run}-nobody", {
            "schema_version": 1, "event_id": f"{f.run}-nobody-1", "unit_id": f"{f.run}-nobody",
            "at": "2026-11-25T08:00:00Z", "type": "available"}),
    ])

    actions = {"TR-PARKING": ("decline",), "CM-GARBAGE": ("ack",), "EM-CROWD": ("ack", "en_route", "on_scene", "resolved")}
    handled: set[str] = set()
    first_incident = last_incident = None
    crowd_sent = last_sent = None  # monotonic times
    started = time.monotonic()
    async with TopicReader(settings, DISPATCH_ORDERS, ids) as orders:
        while time.monotonic() - started < 45:
            records = await orders.poll()
            for order in records:
                if order["order_id"] in handled or order["kind"] != "assign":
                    continue
                handled.add(order["order_id"])
                uid, oid, category = order["unit_id"], order["order_id"], order["category"]
                if category == "XT-FAST":
                    if first_incident is None:
                        first_incident = order["incident_id"]
                    if order["incident_id"] != first_incident:
                        last_incident = order["incident_id"]
                        continue  # the last XT-FAST incident: nobody acknowledges, nobody else is left
                    if uid == units["silent"][0]:
                        continue  # never acknowledges: reassigned after ack_s
                    steps = ("ack", "en_route", "on_scene", "resolved")
                else:
                    steps = actions.get(category, ())
                for step in steps:
                    await send(settings, [f.status(uid, step, oid)])
                if category == "XT-FAST":
                    # the reassigned unit has resolved the first XT-FAST incident: now a joint dispatch
                    await send(settings, [_report(crowd, "EM-CROWD", district.point(north_m=600, east_m=600),
                                                  "hotline")])
                    crowd_sent = time.monotonic()
            crowd_orders = [o for o in records if o["category"] == "EM-CROWD" and o["kind"] == "assign"]
            if crowd_sent and not last_sent and (
                    (len(crowd_orders) >= 3 and all(o["order_id"] in handled for o in crowd_orders))
                    or time.monotonic() - crowd_sent > 15):
                await send(settings, [_report(last, "XT-FAST", district.point(east_m=50), "patrol")])
                last_sent = time.monotonic()
            if last_sent and (last_incident or time.monotonic() - last_sent > 5):
                break  # what follows (overdue acknowledgement, nobody left, escalations) needs no field unit
            await asyncio.sleep(0.1)
    return {"orders": len(handled), "joint": crowd_sent is not None, "last": last_incident is not None,
            "seconds": round(time.monotonic() - started, 1)}


# --------------------------------------------------------------------------- 2. the integration test


def dashboard_expressions(prometheus: PrometheusServer, preferred: dict[str, str]) -> list[Expression]:
    out = []
    for path, board, panel, target in dashboard_targets("promql"):
        variables = Variables(board, preferred, prometheus)
        where = f"{path.name}: panel {panel.get('title')!r} ({target.get('refId', '?')})"
        out.append(Expression(where, variables.substitute(target["expr"], sql=False)))
    # the dashboards' template variables that ask Prometheus (label_values(metric, label)) must find values
    for path in dashboard_files():
        board = _dashboard(path)
        for var in (board.get("templating") or {}).get("list", []):
            query = var.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            m = re.match(r"\s*(?:label_values\((.+),\s*\w+\s*\)|query_result\((.+)\))\s*$", query or "")
            if var.get("type") == "query" and m:
                variables = Variables(board, preferred, prometheus)
                expr = variables.substitute(m.group(1) or m.group(2), sql=False)
                out.append(Expression(f"{path.name}: variable ${var['name']}", expr))
    return out


@pytest.mark.integration
async def test_prometheus_scrapes_a_real_worker_and_every_expression_parses_and_returns_data(
        prometheus, infrastructure, worker, db, isolated_district):
    started = time.monotonic()
    version = prometheus_version(prometheus.binary)
    # the first scrapes: the counters' starting values are known before the stream moves them
    await _wait(lambda: _has_data(prometheus.query(f'up{{job="{SCRAPE_JOB}"}} == 1')), 20, "first scrape")

    _DATA_DISTRICT["district"] = isolated_district
    drive = await drive_the_worker(infrastructure, db, isolated_district)
    worker.assert_alive()

    preferred = {"district": isolated_district.district, "street": isolated_district.streets[0],
                 "domain": "public_security", "agency": "police", "job": SCRAPE_JOB,
                 "instance": f"127.0.0.1:{worker.settings.metrics_port}"}
    expressions = alert_expressions() + dashboard_expressions(prometheus, preferred)
    boards = dashboard_files()
    if not boards:
        warnings.warn(f"no dashboards in {DASHBOARDS_DIR} yet: only the alert expressions were checked")

    # poll until every metric name has a series and every expression returns data (or the time is up)
    deadline = time.monotonic() + max(20.0, 85.0 - (time.monotonic() - started))
    while True:
        present = {r["metric"]["__name__"] for r in prometheus.query(
            'count by (__name__) ({__name__=~"patrol_.+"})')["data"]["result"]}
        missing = sorted(name for name, kind in METRICS.items()
                         if (name + "_bucket" if kind == "histogram" else name) not in present)
        answers = {e: prometheus.query(e.expr) for e in expressions}
        unparsed = {e: a for e, a in answers.items() if a.get("status") != "success"}
        empty = [e for e, a in answers.items() if e not in unparsed and e.must_have_data and not _has_data(a)]
        # a parse error is final, but keep polling the others so that "no data" below is not premature
        if (not missing and not empty) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)

    rules = prometheus.api("rules")["data"]["groups"]
    loaded = {r["name"]: r for g in rules for r in g["rules"]}
    summary = (f"{version}; {len(boards)} dashboards, {len(expressions)} expressions; stream {drive}; "
               f"{time.monotonic() - started:.0f} s")
    print(summary)
    problems = []
    if missing:
        problems.append(f"metrics without any series after the stream: {missing}")
    problems += [f"does not parse: {e.where}: {e.expr}\n    {a.get('errorType')}: {a.get('error')}"
                 for e, a in unparsed.items()]
    problems += [f"no data: {e.where}: {e.expr}" for e in empty]
    problems += [f"alert rule not loaded by Prometheus: {r['alert']}" for r in alert_rules() if r["alert"] not in loaded]
    problems += [f"alert rule evaluation fails: {name}: {r.get('lastError')}" for name, r in loaded.items()
                 if r.get("health") == "err"]
    assert not problems, summary + "\n" + "\n".join(problems)
    worker.assert_alive()


async def _wait(probe, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


# --------------------------------------------------------------------------- 3. SQL panels


_DATA_DISTRICT: dict = {}  # the district the integration test filled with data, for the SQL panels' variables


@pytest.mark.integration
async def test_every_sql_panel_query_runs_against_the_real_schema(infrastructure, db):
    targets = list(dashboard_targets("sql"))
    if not dashboard_files():
        pytest.skip(f"no dashboards in {DASHBOARDS_DIR} yet")
    if not targets:
        pytest.skip("the dashboards have no SQL (PostgreSQL) panels")
    end = datetime.now(timezone.utc) + timedelta(minutes=1)
    start = end - timedelta(hours=24)
    district = _DATA_DISTRICT.get("district")
    preferred = {"domain": "public_security", "agency": "police"}
    if district is not None:
        preferred |= {"district": district.district, "street": district.streets[0]}
    failures, empty = [], []
    for path, board, panel, target in targets:
        where = f"{path.name}: panel {panel.get('title')!r} ({target.get('refId', '?')})"
        sql = expand_sql_macros(Variables(board, preferred, None).substitute(target["rawSql"], sql=True), start, end)
        transaction = db.transaction()
        await transaction.start()
        try:
            await db.execute("SET LOCAL statement_timeout = '20s'")
            rows = await db.fetch(sql)
            if not rows:
                empty.append(where)
        except Exception as error:  # noqa: BLE001 - every failure is reported with its query
            failures.append(f"{where}: {type(error).__name__}: {error}\n    {sql}")
        finally:
            await transaction.rollback()
    if empty:
        warnings.warn(f"SQL panels that ran but returned no rows: {empty}")
    assert not failures, "\n".join(failures)
