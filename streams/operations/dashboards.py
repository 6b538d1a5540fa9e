"""The Grafana dashboards as code (grafana-foundation-sdk), written as JSON by `patrol dashboards`.

The building blocks (datasources, queries, panel shapes) are in streams.operations.dashboard_panels, the three
dashboards in streams.operations.dashboard_boards, and the reading back of a dashboard's queries (for the tests: every
query of a panel, the metric names a PromQL expression reads) in streams.operations.dashboard_queries; this module
renders and writes them, and keeps every name the rest of the project imports from it."""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from streams.operations.dashboard_boards import integrated_patrol, pipeline_health, sla_streets
from streams.operations.dashboard_panels import DATASOURCE_UIDS, POSTGRES, POSTGRES_UID, PROMETHEUS, PROMETHEUS_UID
from streams.operations.dashboard_panels import RATE, SCRAPE_JOB, TAG, Sql, SqlQuery, prom
from streams.operations.dashboard_queries import GRAFANA_STAND_INS, PROMQL_KEYWORDS, PanelQuery, all_panels
from streams.operations.dashboard_queries import metric_names, queries, render_promql

__all__ = [
    "BUILDERS", "DATASOURCE_UIDS", "GRAFANA_STAND_INS", "POSTGRES", "POSTGRES_UID", "PROMETHEUS", "PROMETHEUS_UID",
    "PROMQL_KEYWORDS", "PanelQuery", "RATE", "SCRAPE_JOB", "Sql", "SqlQuery", "TAG", "dashboards",
    "integrated_patrol", "metric_names", "pipeline_health", "prom", "queries", "render", "render_promql",
    "sla_streets", "write_dashboards",
]

BUILDERS = {
    "integrated-patrol.json": integrated_patrol,
    "sla-streets.json": sla_streets,
    "pipeline-health.json": pipeline_health,
}


def render(builder: dash.Dashboard) -> str:
    """The dashboard as the JSON text that is committed (stable: sorted keys, trailing newline)."""
    document = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    # Grafana needs a panel id unique within the dashboard; the SDK leaves them unset
    for number, panel in enumerate(all_panels(document), start=1):
        panel["id"] = number
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def dashboards() -> dict[str, str]:
    return {name: render(build()) for name, build in BUILDERS.items()}


def write_dashboards(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in dashboards().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
