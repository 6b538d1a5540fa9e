"""The Grafana dashboards as code (grafana-foundation-sdk), written as JSON by `patrol dashboards`;
also what the tests use to read every query of a panel back and the metric names a PromQL expression reads."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from grafana_foundation_sdk.builders import bargauge, common as common_builders, dashboard as dash, geomap
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder, variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import geomap as geomap_model
from grafana_foundation_sdk.models import heatmap as heatmap_model
from grafana_foundation_sdk.models import prometheus as prometheus_model

PROMETHEUS_UID = "patrol-prometheus"
POSTGRES_UID = "patrol-postgres"
DATASOURCE_UIDS = frozenset({PROMETHEUS_UID, POSTGRES_UID})
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
# The plugin id of PostgreSQL since Grafana 10.2 ("postgres" is only an alias now).
POSTGRES = model.DataSourceRef(type_val="grafana-postgresql-datasource", uid=POSTGRES_UID)
SCRAPE_JOB = "patrol-workers"
TAG = "patrol"

# Grafana expands these before Prometheus sees an expression; render_promql stands in for it.
_DISTRICT = 'district=~"$district"'
_STREET = 'street=~"$street"'
_DOMAIN = 'domain=~"$domain"'
RATE = "$__rate_interval"


# --- the SDK has no builder for SQL queries, so this is the one the PostgreSQL panels need -------------


class SqlQuery(cogvariants.Dataquery):
    def __init__(self, raw_sql: str, ref_id: str = "A", format_val: str = "table") -> None:
        self.raw_sql = raw_sql
        self.ref_id = ref_id
        self.format_val = format_val

    def to_json(self) -> dict[str, object]:
        # rawQuery + editorMode "code": Grafana must run the text as written, not rebuild it in its query builder
        return {"datasource": POSTGRES, "editorMode": "code", "format": self.format_val,
                "rawQuery": True, "rawSql": self.raw_sql, "refId": self.ref_id}


class Sql(cogbuilder.Builder[SqlQuery]):
    def __init__(self, raw_sql: str, ref_id: str = "A") -> None:
        self._internal = SqlQuery(_dedent(raw_sql), ref_id)

    def build(self) -> SqlQuery:
        return self._internal


def _dedent(sql: str) -> str:
    return "\n".join(line.strip() for line in sql.strip().splitlines())


def prom(expr: str, legend: str = "__auto", ref_id: str = "A", instant: bool = False,
         fmt: prometheus_model.PromQueryFormat | None = None) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).datasource(PROMETHEUS)
    query = query.instant() if instant else query.range()
    return query.format(fmt) if fmt else query


# --- panel shapes used more than once --------------------------------------------------------------------


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in steps])


COMPLIANCE_COLOURS = _thresholds((None, "red"), (0.8, "orange"), (0.95, "green"))


def _legend(table_calcs: list[str] | None = None) -> common_builders.VizLegendOptions:
    legend = common_builders.VizLegendOptions().show_legend(True).placement(common.LegendPlacement.BOTTOM)
    if table_calcs:
        return legend.display_mode(common.LegendDisplayMode.TABLE).calcs(table_calcs)
    return legend.display_mode(common.LegendDisplayMode.LIST)


def _stat(title: str, *targets: prometheus.Dataquery, unit: str = "short", w: int = 4, h: int = 5,
          description: str = "") -> stat.Panel:
    return (stat.Panel().title(title).description(description).datasource(PROMETHEUS).targets(list(targets))
            .unit(unit).span(w).height(h).graph_mode(common.BigValueGraphMode.AREA)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"])))


def _series(title: str, *targets: prometheus.Dataquery, unit: str = "short", w: int = 12, h: int = 8,
            description: str = "", stacked: bool = False, calcs: list[str] | None = None) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(PROMETHEUS)
             .targets(list(targets)).unit(unit).span(w).height(h).fill_opacity(10).line_width(1)
             .legend(_legend(calcs)))
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)).fill_opacity(60)
    return panel


def _bars(title: str, *targets: prometheus.Dataquery, unit: str = "short", w: int = 8, h: int = 8,
          description: str = "", thresholds: dash.ThresholdsConfig | None = None,
          datasource: model.DataSourceRef = PROMETHEUS, fields: str | None = None) -> bargauge.Panel:
    reduce = common_builders.ReduceDataOptions().calcs(["lastNotNull"])
    if datasource is POSTGRES:
        # a SQL result is one row per street: show every row, not one reduced value per column
        reduce = reduce.values(True).limit(200)
    if fields:
        reduce = reduce.fields(fields)
    panel = (bargauge.Panel().title(title).description(description).datasource(datasource)
             .targets(list(targets)).unit(unit).span(w).height(h)
             .orientation(common.VizOrientation.HORIZONTAL)
             .display_mode(common.BarGaugeDisplayMode.GRADIENT).reduce_options(reduce))
    if thresholds:
        panel = panel.thresholds(thresholds)
    return panel


def _response_heatmap(stage: str, w: int = 8) -> heatmap.Panel:
    # The buckets come from the histogram itself (calculate off): Grafana re-bucketing averages would hide the tail.
    expr = (f'sum by (le) (increase(patrol_response_seconds_bucket{{stage="{stage}",{_DOMAIN}}}[{RATE}]))')
    return (heatmap.Panel().title(f"Response time distribution: {stage}")
            .description(_STAGE_MEANING[stage]).datasource(PROMETHEUS)
            .with_target(prom(expr, "{{le}}", fmt=prometheus_model.PromQueryFormat.HEATMAP))
            .calculate(False).span(w).height(9)
            .y_axis(heatmap.YAxisConfig().unit("s"))
            .color(heatmap.HeatmapColorOptions().mode(heatmap_model.HeatmapColorMode.SCHEME)
                   .scheme("Oranges").fill("dark-orange").scale(heatmap_model.HeatmapColorScale.EXPONENTIAL)
                   .exponent(0.5).steps(64))
            .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.LE))
            .cell_values(heatmap.CellValues().unit("short")))


_STAGE_MEANING = {
    "acknowledge": "Dispatch order issued → the unit acknowledges it.",
    "arrive": "First dispatch → a unit reports on scene.",
    "resolve": "Incident created → closed (核查结案).",
}


def _compliance(by: str, window: str, matchers: str = "") -> str:
    # met / (met + missed); an empty window divides 0 by 0 and shows as no value, not as 0 % or 100 %
    total = f"sum by ({by}) " if by else "sum"
    extra = f",{matchers}" if matchers else ""
    return (f'{total}(increase(patrol_sla_outcomes_total{{outcome="met"{extra}}}[{window}]))'
            f' / {total}(increase(patrol_sla_outcomes_total{{outcome=~"met|missed"{extra}}}[{window}]))')


def _variables(board: dash.Dashboard, *names: str) -> dash.Dashboard:
    queries = {
        "district": ("District", "label_values(patrol_units, district)"),
        "street": ("Street", f"label_values(patrol_units{{{_DISTRICT}}}, street)"),
        "domain": ("Domain", "label_values(patrol_response_seconds_count, domain)"),
    }
    for name in names:
        label, query = queries[name]
        board = board.with_variable(
            dash.QueryVariable(name).label(label).datasource(PROMETHEUS).query(query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True)
            # ".*" rather than Grafana's list of every value: a street seen for the first time still matches
            .all_value(".*")
            .current(model.VariableOption(selected=True, text="All", value="$__all")))
    return board


def _board(uid: str, title: str, description: str, time_from: str, refresh: str) -> dash.Dashboard:
    return (dash.Dashboard(title).uid(uid).description(description).tags([TAG]).editable()
            .timezone("browser").time(time_from, "now").refresh(refresh)
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .link(dash.DashboardLink("Patrol dashboards").type(model.DashboardLinkType.DASHBOARDS)
                  .tags([TAG]).as_dropdown(True).include_vars(True).keep_time(True)))


# --- the three dashboards ----------------------------------------------------------------------------------


def integrated_patrol() -> dash.Dashboard:
    d, s = _DISTRICT, _STREET
    board = _variables(_board(
        "patrol-integrated", "24-hour integrated patrol",
        "Live situation of public security (治安), traffic (交通) and city management (城管) together.",
        "now-3h", "30s"), "district", "street")
    board = (board
             .with_row(dash.Row("Now"))
             .with_panel(_stat("Open incidents", prom(f"sum(patrol_open_incidents{{{d},{s}}})", "open"),
                               description="Incidents not yet closed or cancelled."))
             .with_panel(_stat("Queued, nobody free", prom(f"sum(patrol_queued_incidents{{{d}}})", "queued"),
                               description="Incidents (or places of a joint dispatch) waiting for an eligible unit.")
                         .thresholds(_thresholds((None, "green"), (1, "orange"), (5, "red"))))
             .with_panel(_stat("New reports / min",
                               prom(f'sum(rate(patrol_reports_total{{outcome="admitted"}}[{RATE}])) * 60', "reports"),
                               unit="cpm"))
             .with_panel(_stat("Free units", prom(f'sum(patrol_units{{status="free",{d},{s}}})', "free"),
                               description="Logged on, available, not on a task.")
                         .thresholds(_thresholds((None, "red"), (1, "orange"), (3, "green"))))
             .with_panel(_stat("SLA compliance, 24 h", prom(_compliance("", "24h"), "compliance", instant=True),
                               unit="percentunit",
                               description="Limits met / limits measured, acknowledge + arrive + resolve, last 24 h.")
                         .thresholds(COMPLIANCE_COLOURS).min(0).max(1))
             .with_panel(_stat("Escalations, 24 h",
                               prom("sum(increase(patrol_sla_breaches_total[24h]))", "escalations", instant=True),
                               description="Time limits missed and escalated (all ladder levels), last 24 h.")
                         .thresholds(_thresholds((None, "green"), (1, "orange"), (10, "red"))))

             .with_row(dash.Row("Incidents and reports"))
             .with_panel(_series("Open incidents by domain",
                                 prom(f"sum by (domain) (patrol_open_incidents{{{d},{s}}})", "{{domain}}"),
                                 stacked=True, w=8))
             .with_panel(_series("New reports per minute",
                                 prom(f'sum by (source) (rate(patrol_reports_total{{outcome="admitted"}}[{RATE}])) * 60',
                                      "{{source}}"),
                                 prom(f'sum(rate(patrol_incident_events_total{{type="created",{d}}}[{RATE}])) * 60',
                                      "new incidents", ref_id="B"),
                                 unit="cpm", w=8,
                                 description="Admitted reports by source; several reports of one matter merge "
                                             "into one new incident."))
             .with_panel(_series("Dispatch decision latency",
                                 prom("histogram_quantile(0.5, sum by (le) "
                                      f"(rate(patrol_dispatch_decision_seconds_bucket[{RATE}])))", "p50"),
                                 prom("histogram_quantile(0.99, sum by (le) "
                                      f"(rate(patrol_dispatch_decision_seconds_bucket[{RATE}])))", "p99", ref_id="B"),
                                 prom("histogram_quantile(0.99, sum by (le) "
                                      f"(rate(patrol_intake_wait_seconds_bucket[{RATE}])))", "waiting for intake p99",
                                      ref_id="C"),
                                 unit="s", w=8, calcs=["mean", "max"],
                                 description="Report received → dispatch order published; and before that, report "
                                             "published → received (the broker's hop and the worker's queue: it "
                                             "grows first when the worker falls behind)."))

             .with_row(dash.Row("Time limits (限时办结)"))
             .with_panel(_bars("SLA compliance by domain and stage, 24 h",
                               prom(_compliance("domain, stage", "24h"), "{{domain}} · {{stage}}", instant=True),
                               unit="percentunit", thresholds=COMPLIANCE_COLOURS, w=12).min(0).max(1))
             .with_panel(_series("Escalations by level",
                                 prom(f"sum by (level) (increase(patrol_sla_breaches_total[{RATE}]))", "level {{level}}"),
                                 w=12, stacked=True,
                                 description="1 reassign, 2 supervisor, 3 command centre.")
                         .draw_style(common.GraphDrawStyle.BARS))

             .with_row(dash.Row("Units and streets"))
             .with_panel(_bars("Unit availability by agency",
                               prom(f"sum by (agency, status) (patrol_units{{{d},{s}}})", "{{agency}} · {{status}}",
                                    instant=True), w=8))
             .with_panel(_bars("Workload by street (open incidents per free unit)",
                               # max, not sum: a ratio must not add up when two workers briefly both own a district
                               prom(f"max by (street) (patrol_street_workload{{{d},{s}}})", "{{street}}", instant=True),
                               thresholds=_thresholds((None, "green"), (1, "orange"), (3, "red")), w=8))
             .with_panel(_series("Dispatch orders per minute by agency",
                                 prom(f'sum by (agency, role) (rate(patrol_dispatch_orders_total{{kind="assign"}}[{RATE}])) * 60',
                                      "{{agency}} · {{role}}"),
                                 unit="cpm", w=8, description="Support orders are the other agencies of a joint dispatch."))

             .with_row(dash.Row("Map"))
             .with_panel(_open_incident_map())
             .with_panel(table.Panel().title("Open incidents, most urgent first").datasource(POSTGRES)
                         .with_target(Sql("""
                             SELECT priority, category, domain, street, status, age_s, incident_id
                             FROM v_open_incidents
                             ORDER BY priority, age_s DESC
                             LIMIT 200""")).span(10).height(14)
                         .override_by_name("age_s", [model.DynamicConfigValue(id_val="unit", value="s")])))
    return board


def _open_incident_map() -> geomap.Panel:
    markers = (common_builders.MapLayerOptions().type("markers").name("Open incidents").tooltip(True)
               .location(common_builders.FrameGeometrySource().mode(common.FrameGeometrySourceMode.COORDS)
                         .latitude("lat").longitude("lon"))
               .config({
                   "showLegend": True,
                   "style": {
                       # priority 1 is the most urgent: red; the thresholds below colour by it
                       "color": {"field": "priority", "fixed": "dark-green"},
                       "opacity": 0.8,
                       "size": {"fixed": 7, "max": 15, "min": 2},
                       "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                       "text": {"field": "category", "fixed": "", "mode": "field"},
                       "textConfig": {"fontSize": 10, "offsetX": 0, "offsetY": -12, "textAlign": "center",
                                      "textBaseline": "middle"},
                   },
               }))
    return (geomap.Panel().title("Open incidents on the map").datasource(POSTGRES)
            .description("From PostgreSQL (view v_open_incidents); colour by priority, 1 = most urgent.")
            .with_target(Sql("""
                SELECT incident_id, category, domain, priority, district, street, status, age_s, lat, lon
                FROM v_open_incidents"""))
            .span(14).height(14)
            # fit to the incidents, so the map needs no knowledge of where the district is
            .view(geomap.MapViewConfig().id(geomap_model.MapCenterID.FIT).all_layers(True).max_zoom(17).zoom(14))
            .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_scale(True))
            .basemap(common_builders.MapLayerOptions().type("default").name("Basemap"))
            .layers([markers])
            .tooltip(geomap.TooltipOptions().mode(geomap_model.TooltipMode.DETAILS))
            .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
            .thresholds(_thresholds((None, "red"), (2, "orange"), (3, "yellow"), (4, "green"))))


def sla_streets() -> dash.Dashboard:
    board = _variables(_board(
        "patrol-sla-streets", "SLA and street performance (综合评价)",
        "Time limits met per street and domain, response-time distributions, reassignments and escalations.",
        "now-24h", "1m"), "domain")
    board = (board
             .with_row(dash.Row("Streets, last 24 h (PostgreSQL)"))
             .with_panel(_bars("Compliance by street, 24 h",
                               Sql("""
                                   SELECT street, compliance_24h
                                   FROM v_street_performance
                                   WHERE compliance_24h IS NOT NULL
                                   ORDER BY compliance_24h, street"""),
                               unit="percentunit", thresholds=COMPLIANCE_COLOURS, datasource=POSTGRES,
                               fields="/^compliance_24h$/", w=8, h=10,
                               description="Streets where nothing was measured in 24 h are left out.").min(0).max(1))
             .with_panel(table.Panel().title("Street performance, 24 h").datasource(POSTGRES)
                         .with_target(Sql("""
                             SELECT district, street, incidents_24h, closed_24h, escalations_24h,
                             sla_met_24h, sla_missed_24h, compliance_24h
                             FROM v_street_performance
                             ORDER BY compliance_24h NULLS LAST, street"""))
                         .span(16).height(10)
                         .override_by_name("compliance_24h", [
                             model.DynamicConfigValue(id_val="unit", value="percentunit"),
                             model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
                             model.DynamicConfigValue(id_val="thresholds", value=COMPLIANCE_COLOURS.build()),
                         ]))

             .with_row(dash.Row("Time limits by domain and stage"))
             .with_panel(_series("SLA compliance over time (1 h window)",
                                 prom(_compliance("domain, stage", "1h", _DOMAIN), "{{domain}} · {{stage}}"),
                                 unit="percentunit", w=12).min(0).max(1))
             .with_panel(_series("Response time p50 / p90 by stage and domain",
                                 prom("histogram_quantile(0.5, sum by (le, stage, domain) "
                                      f"(rate(patrol_response_seconds_bucket{{{_DOMAIN}}}[{RATE}])))",
                                      "p50 {{stage}} · {{domain}}"),
                                 prom("histogram_quantile(0.9, sum by (le, stage, domain) "
                                      f"(rate(patrol_response_seconds_bucket{{{_DOMAIN}}}[{RATE}])))",
                                      "p90 {{stage}} · {{domain}}", ref_id="B"),
                                 unit="s", w=12, calcs=["mean", "max"])
                         .scale_distribution(common_builders.ScaleDistributionConfig()
                                             .type(common.ScaleDistribution.LOG).log(10)))
             .with_panel(_response_heatmap("acknowledge"))
             .with_panel(_response_heatmap("arrive"))
             .with_panel(_response_heatmap("resolve"))

             .with_row(dash.Row("Reassignments and escalations"))
             .with_panel(_bars("Reassignments by reason",
                               prom("sum by (reason) (increase(patrol_reassignments_total[$__range]))", "{{reason}}",
                                    instant=True),
                               w=8, description="declined, ack_overdue, log_off, preempted; in the time range shown."))
             .with_panel(_bars("Escalations by stage and level",
                               prom("sum by (stage, level) "
                                    f"(increase(patrol_sla_breaches_total{{{_DOMAIN}}}[$__range]))",
                                    "{{stage}} · level {{level}}", instant=True),
                               w=8, description="In the time range shown.")
                         .thresholds(_thresholds((None, "orange"), (10, "red"))))
             .with_panel(_series("Escalations by domain",
                                 prom(f"sum by (domain) (increase(patrol_sla_breaches_total{{{_DOMAIN}}}[{RATE}]))",
                                      "{{domain}}"),
                                 w=8, stacked=True).draw_style(common.GraphDrawStyle.BARS)))
    return board


def pipeline_health() -> dash.Dashboard:
    board = _board("patrol-pipeline", "Pipeline health",
                   "Throughput, consumer lag, dead letters, PostgreSQL sink and workers of the patrol pipeline.",
                   "now-1h", "30s")
    up = f'up{{job="{SCRAPE_JOB}"}}'
    board = (board
             .with_row(dash.Row("Workers"))
             .with_panel(_stat("Workers up", prom(f"sum({up})", "up", instant=True), w=4)
                         .thresholds(_thresholds((None, "red"), (1, "green"))))
             .with_panel(_stat("Worker up by instance", prom(up, "{{instance}}", instant=True), w=10)
                         .mappings([model.ValueMap(options={
                             "0": model.ValueMappingResult(text="DOWN", color="red", index=0),
                             "1": model.ValueMappingResult(text="up", color="green", index=1)})])
                         .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE))
             .with_panel(_stat("Versions running", prom("count by (version) (patrol_worker_info)", "{{version}}",
                                                        instant=True), w=5).graph_mode(common.BigValueGraphMode.NONE))
             .with_panel(_stat("Total consumer lag", prom("sum(patrol_consumer_lag)", "lag"), w=5,
                               description="Messages not yet consumed, all groups and partitions.")
                         .thresholds(_thresholds((None, "green"), (100, "orange"), (1000, "red"))))

             .with_row(dash.Row("Throughput"))
             .with_panel(_series("Inbound messages / s by outcome",
                                 prom(f"sum by (outcome) (rate(patrol_reports_total[{RATE}]))", "reports {{outcome}}"),
                                 prom(f"sum by (outcome) (rate(patrol_unit_events_total[{RATE}]))",
                                      "unit events {{outcome}}", ref_id="B"),
                                 unit="ops", w=12))
             .with_panel(_series("Incident events / s by type",
                                 prom(f"sum by (type) (rate(patrol_incident_events_total[{RATE}]))", "{{type}}"),
                                 unit="ops", w=12, stacked=True))

             .with_row(dash.Row("Lag and dead letters"))
             .with_panel(_series("Consumer lag by group and topic",
                                 prom("sum by (group, topic) (patrol_consumer_lag)", "{{group}} · {{topic}}"),
                                 w=12, calcs=["lastNotNull", "max"]))
             .with_panel(_series("Dead letters by stage and reason",
                                 prom(f"sum by (stage, reason) (increase(patrol_dead_letters_total[{RATE}]))",
                                      "{{stage}} · {{reason}}"),
                                 w=12, stacked=True, calcs=["sum"],
                                 description="Nothing is dropped: what cannot be processed lands on "
                                             "incident.reports.dlq with a stable reason.")
                         .draw_style(common.GraphDrawStyle.BARS))

             .with_row(dash.Row("PostgreSQL sink"))
             .with_panel(_series("Sink batch latency",
                                 prom("histogram_quantile(0.5, sum by (le) "
                                      f"(rate(patrol_sink_batch_seconds_bucket[{RATE}])))", "p50"),
                                 prom("histogram_quantile(0.99, sum by (le) "
                                      f"(rate(patrol_sink_batch_seconds_bucket[{RATE}])))", "p99", ref_id="B"),
                                 prom(f"sum(rate(patrol_sink_batch_seconds_sum[{RATE}])) / "
                                      f"sum(rate(patrol_sink_batch_seconds_count[{RATE}]))", "mean", ref_id="C"),
                                 unit="s", w=8, calcs=["mean", "max"]))
             .with_panel(_series("Sink rows / s by table",
                                 prom(f"sum by (table) (rate(patrol_sink_rows_total[{RATE}]))", "{{table}}"),
                                 unit="rowsps", w=8, stacked=True))
             .with_panel(_series("Sink retries",
                                 prom(f"sum(increase(patrol_sink_retries_total[{RATE}]))", "retried batches"),
                                 w=8, description="Batches written again after a database error.")
                         .draw_style(common.GraphDrawStyle.BARS)))
    return board


BUILDERS = {
    "integrated-patrol.json": integrated_patrol,
    "sla-streets.json": sla_streets,
    "pipeline-health.json": pipeline_health,
}


def render(builder: dash.Dashboard) -> str:
    """The dashboard as the JSON text that is committed (stable: sorted keys, trailing newline)."""
    document = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    # Grafana needs a panel id unique within the dashboard; the SDK leaves them unset
    for number, panel in enumerate(_all_panels(document), start=1):
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


# --- reading dashboards back: for the tests and for anyone checking queries against a live server ------------


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    datasource_uid: str | None
    language: str  # "promql" or "sql"
    text: str


def _all_panels(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in document.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []  # a collapsed row carries its panels


def queries(document: dict[str, Any]) -> Iterator[PanelQuery]:
    """Every query of a dashboard: each panel target and each template variable query."""
    title = document.get("title", "")
    for panel in _all_panels(document):
        for target in panel.get("targets") or []:
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            if "expr" in target:
                yield PanelQuery(title, panel.get("title", ""), uid, "promql", target["expr"])
            elif "rawSql" in target:
                yield PanelQuery(title, panel.get("title", ""), uid, "sql", target["rawSql"])
            else:
                yield PanelQuery(title, panel.get("title", ""), uid, "unknown", json.dumps(target))
    for variable in (document.get("templating") or {}).get("list") or []:
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else query or ""
            yield PanelQuery(title, f"${variable['name']}", (variable.get("datasource") or {}).get("uid"),
                             "promql", _label_values_selector(text))


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.S)


def _label_values_selector(query: str) -> str:
    """label_values(selector, label) is Grafana's, not PromQL: the selector is the expression Prometheus sees."""
    match = _LABEL_VALUES.match(query)
    if not match:
        return query
    return match.group("selector") or f'{{{match.group("label")}=~".+"}}'


GRAFANA_STAND_INS = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "1h",
    "$district": ".*",
    "$street": ".*",
    "$domain": ".*",
}


def render_promql(expr: str, stand_ins: dict[str, str] | None = None) -> str:
    """An expression as Grafana would send it, with the variables set to "All" and fixed windows."""
    values = {**GRAFANA_STAND_INS, **(stand_ins or {})}
    # longest first, so that $__range is not taken for a prefix of a longer name
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    return expr


# PromQL words that look like metric names but are not: aggregation modifiers, binary operators, literals.
PROMQL_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless",
    "atan2", "inf", "nan", "start", "end",
})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'" r"|`[^`]*`")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
# A whole identifier (not the "e3" of 1e3 nor the "m" of 5m) that is not called like a function.
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (a deliberately small parser: enough for our own panels)."""
    text = _STRING.sub('""', expr)          # label values may look like anything
    text = _VARIABLE.sub("1", text)         # Grafana variables and intervals
    text = _GROUPING.sub(" ", text)         # label lists of by (...), on (...), …
    text = _MATCHERS.sub(" ", text)         # {label="…"} selectors: label names are not metrics
    text = _RANGE.sub(" ", text)            # [5m], [1h:1m]
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in PROMQL_KEYWORDS}
