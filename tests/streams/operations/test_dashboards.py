"""The dashboards as code: the committed JSON is what the code generates, and every panel reads what exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import streams.runtime.metrics  # noqa: F401  (registers the worker's metrics in the default registry)
from streams.operations.dashboards import BUILDERS, DATASOURCE_UIDS, POSTGRES_UID, PROMETHEUS_UID, SCRAPE_JOB
from streams.operations.dashboards import dashboards, metric_names, queries, render_promql, write_dashboards

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "grafana" / "dashboards"
PROVISIONING = ROOT / "grafana" / "provisioning"
# Prometheus' own series for every target it scrapes
PROMETHEUS_OWN = frozenset({"up"})


def committed_documents() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(COMMITTED.glob("*.json"))}


def exported_metric_names() -> set[str]:
    """The series names a worker exposes, read from the registry rather than from a scrape:
    a labelled metric with no sample yet must count too."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count"),
                "info": ("_info",), "gauge": ("",), "stateset": ("",), "gaugehistogram": ("_bucket", "_gsum", "_gcount")}
    names = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def unknown_metrics(expressions: list[tuple[str, str]], exported: set[str]) -> list[str]:
    return [f"{where}: {name}" for where, expr in expressions
            for name in sorted(metric_names(expr) - exported - PROMETHEUS_OWN)]


def all_queries(language: str | None = None):
    for name, document in committed_documents().items():
        for query in queries(document):
            if language is None or query.language == language:
                yield name, query


def test_committed_json_is_exactly_what_the_code_generates(tmp_path):
    write_dashboards(tmp_path)
    generated = {path.name: path.read_text(encoding="utf-8") for path in sorted(tmp_path.glob("*.json"))}
    committed = {path.name: path.read_text(encoding="utf-8") for path in sorted(COMMITTED.glob("*.json"))}
    assert sorted(committed) == sorted(BUILDERS), "grafana/dashboards holds a file the code does not generate"
    for name, text in generated.items():
        assert committed[name] == text, f"{name} differs from the code: run `patrol dashboards` and commit the result"


def test_generation_is_deterministic():
    assert dashboards() == dashboards()


def test_the_three_dashboards_are_there():
    titles = {document["title"]: document for document in committed_documents().values()}
    assert set(titles) == {"24-hour integrated patrol", "SLA and street performance (综合评价)", "Pipeline health"}
    for document in titles.values():
        panels = [p for p in document["panels"] if p["type"] != "row"]
        ids = [p["id"] for p in document["panels"]]
        assert len(ids) == len(set(ids)), f"{document['title']}: panel ids repeat"
        assert all(p.get("targets") for p in panels), f"{document['title']}: a panel without a query"
        for p in document["panels"]:
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, f"{document['title']}/{p['title']} overflows the grid"
    integrated = titles["24-hour integrated patrol"]
    [geomap] = [p for p in integrated["panels"] if p["type"] == "geomap"]
    assert geomap["datasource"]["uid"] == POSTGRES_UID and "v_open_incidents" in geomap["targets"][0]["rawSql"]
    # the 15-minute circle: per street and agency, covered now and the share of the last 24 h
    circle = [t["expr"] for p in integrated["panels"] for t in p.get("targets", [])
              if "patrol_street_circle_covered" in t.get("expr", "")]
    assert len(circle) == 2 and any("avg_over_time" in e and "[24h:" in e for e in circle), circle
    assert all("by (street, agency)" in e for e in circle), circle
    sla = titles["SLA and street performance (综合评价)"]
    assert any("v_street_performance" in t.get("rawSql", "") for p in sla["panels"] if p["type"] == "table"
               for t in p["targets"])
    pipeline = titles["Pipeline health"]
    assert any(f'up{{job="{SCRAPE_JOB}"}}' in t.get("expr", "") for p in pipeline["panels"]
               for t in p.get("targets", []))


def test_every_metric_a_panel_reads_is_exported_by_the_code():
    exported = exported_metric_names()
    expressions = [(f"{name} / {q.panel}", q.text) for name, q in all_queries("promql")]
    assert expressions
    assert unknown_metrics(expressions, exported) == []


def test_the_check_fails_on_a_metric_nobody_exports():
    exported = exported_metric_names()
    assert "patrol_reports_total" in exported
    good = 'sum by (source) (rate(patrol_reports_total{outcome="admitted"}[$__rate_interval])) * 60'
    bad = 'sum by (le) (rate(patrol_dispatch_latency_seconds_bucket{district=~"$district"}[5m])) / 1e3'
    assert unknown_metrics([("fake", good)], exported) == []
    assert unknown_metrics([("fake", bad)], exported) == ["fake: patrol_dispatch_latency_seconds_bucket"]
    # a counter must be read by its _total series, a histogram by _bucket/_sum/_count, never by the bare name
    assert unknown_metrics([("fake", "rate(patrol_reports[5m])")], exported) == ["fake: patrol_reports"]


@pytest.mark.parametrize("expr, names", [
    ('histogram_quantile(0.99, sum by (le) (rate(a_bucket[$__rate_interval])))', {"a_bucket"}),
    ('sum(rate(a_total{x="sum(b)", le="0.5"}[5m] offset 1h)) by (le) * 1e3', {"a_total"}),
    ('a / on (street) group_left (agency) b', {"a", "b"}),
    ('count(up{job="w"} == 1) > bool 0 and c unless d', {"up", "c", "d"}),
    ('min_over_time(a[1h:5m])', {"a"}),
    ('max by (street) (a{district=~"${district:regex}"})', {"a"}),
])
def test_metric_names_reads_only_metric_names(expr, names):
    assert metric_names(expr) == names


def test_every_panel_and_query_uses_a_provisioned_datasource():
    for name, document in committed_documents().items():
        for panel in document["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] in DATASOURCE_UIDS, f"{name}/{panel['title']}"
        for query in queries(document):
            assert query.datasource_uid in DATASOURCE_UIDS, f"{name}/{query.panel}"
            assert query.language == {PROMETHEUS_UID: "promql", POSTGRES_UID: "sql"}[query.datasource_uid], \
                f"{name}/{query.panel}: {query.language} query on {query.datasource_uid}"


def test_sql_panels_read_only_the_views_and_need_no_grafana_macros():
    # another test runs these as they are against the real schema; a macro or variable would need Grafana
    sql = [(f"{name}/{q.panel}", q.text) for name, q in all_queries("sql")]
    assert sql
    for where, text in sql:
        assert "$" not in text, where
        assert any(f"FROM {view}" in text for view in (
            "v_open_incidents", "v_street_performance", "v_open_escalations", "v_street_verification")), where


def test_promql_has_no_grafana_variable_left_once_rendered():
    for name, query in all_queries("promql"):
        assert "$" not in render_promql(query.text), f"{name}/{query.panel}: {query.text}"


def test_provisioning_names_the_datasources_the_dashboards_use():
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text())
    by_uid = {d["uid"]: d for d in datasources["datasources"]}
    assert set(by_uid) == DATASOURCE_UIDS
    assert by_uid[PROMETHEUS_UID]["type"] == "prometheus"
    assert by_uid[PROMETHEUS_UID]["url"] == "http://prometheus:9090"
    postgres = by_uid[POSTGRES_UID]
    assert postgres["type"] == "grafana-postgresql-datasource"
    assert postgres["url"] == "postgres:5432" and postgres["user"] == "grafana_reader"
    assert postgres["jsonData"]["database"] == "patrol"
    assert postgres["secureJsonData"]["password"] == "$PATROL_GRAFANA_DB_PASSWORD"

    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"
