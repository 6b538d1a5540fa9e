"""The building blocks of the Grafana dashboards (grafana-foundation-sdk): the datasources, the PromQL and SQL
queries, the panel shapes used more than once, the template variables and the common dashboard frame.
The dashboards themselves are in streams.operations.dashboard_boards; streams.operations.dashboards writes them."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, common as common_builders, dashboard as dash
from grafana_foundation_sdk.builders import heatmap, prometheus, stat as stat_builder, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder, variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
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

# Grafana expands these before Prometheus sees an expression; dashboard_queries.render_promql stands in for it.
DISTRICT = 'district=~"$district"'
STREET = 'street=~"$street"'
DOMAIN = 'domain=~"$domain"'
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


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in steps])


COMPLIANCE_COLOURS = thresholds((None, "red"), (0.8, "orange"), (0.95, "green"))


def _legend(table_calcs: list[str] | None = None) -> common_builders.VizLegendOptions:
    legend = common_builders.VizLegendOptions().show_legend(True).placement(common.LegendPlacement.BOTTOM)
    if table_calcs:
        return legend.display_mode(common.LegendDisplayMode.TABLE).calcs(table_calcs)
    return legend.display_mode(common.LegendDisplayMode.LIST)


def stat(title: str, *targets: prometheus.Dataquery, unit: str = "short", w: int = 4, h: int = 5,
         description: str = "") -> stat_builder.Panel:
    return (stat_builder.Panel().title(title).description(description).datasource(PROMETHEUS)
            .targets(list(targets)).unit(unit).span(w).height(h).graph_mode(common.BigValueGraphMode.AREA)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"])))


def series(title: str, *targets: prometheus.Dataquery, unit: str = "short", w: int = 12, h: int = 8,
           description: str = "", stacked: bool = False, calcs: list[str] | None = None) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(PROMETHEUS)
             .targets(list(targets)).unit(unit).span(w).height(h).fill_opacity(10).line_width(1)
             .legend(_legend(calcs)))
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)).fill_opacity(60)
    return panel


def bars(title: str, *targets: prometheus.Dataquery, unit: str = "short", w: int = 8, h: int = 8,
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


def response_heatmap(stage: str, w: int = 8) -> heatmap.Panel:
    # The buckets come from the histogram itself (calculate off): Grafana re-bucketing averages would hide the tail.
    expr = (f'sum by (le) (increase(patrol_response_seconds_bucket{{stage="{stage}",{DOMAIN}}}[{RATE}]))')
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


def compliance(by: str, window: str, matchers: str = "") -> str:
    # met / (met + missed); an empty window divides 0 by 0 and shows as no value, not as 0 % or 100 %
    total = f"sum by ({by}) " if by else "sum"
    extra = f",{matchers}" if matchers else ""
    return (f'{total}(increase(patrol_sla_outcomes_total{{outcome="met"{extra}}}[{window}]))'
            f' / {total}(increase(patrol_sla_outcomes_total{{outcome=~"met|missed"{extra}}}[{window}]))')


def variables(board: dash.Dashboard, *names: str) -> dash.Dashboard:
    queries = {
        "district": ("District", "label_values(patrol_units, district)"),
        "street": ("Street", f"label_values(patrol_units{{{DISTRICT}}}, street)"),
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


def frame(uid: str, title: str, description: str, time_from: str, refresh: str) -> dash.Dashboard:
    return (dash.Dashboard(title).uid(uid).description(description).tags([TAG]).editable()
            .timezone("browser").time(time_from, "now").refresh(refresh)
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .link(dash.DashboardLink("Patrol dashboards").type(model.DashboardLinkType.DASHBOARDS)
                  .tags([TAG]).as_dropdown(True).include_vars(True).keep_time(True)))
