"""The three Grafana dashboards, each defined from the building blocks of streams.operations.dashboard_panels:
24-hour integrated patrol, SLA and street performance (综合评价), and pipeline health."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders, dashboard as dash, geomap, statetimeline, table
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import geomap as geomap_model

from streams.operations.dashboard_panels import COMPLIANCE_COLOURS, DISTRICT, DOMAIN, POSTGRES, PROMETHEUS, RATE
from streams.operations.dashboard_panels import SCRAPE_JOB, STREET, Sql
from streams.operations.dashboard_panels import bars, compliance, frame, prom, response_heatmap, series, stat, thresholds
from streams.operations.dashboard_panels import variables


def integrated_patrol() -> dash.Dashboard:
    """The live situation of the three domains, for the district and streets chosen."""
    board = variables(frame(
        "patrol-integrated", "24-hour integrated patrol",
        "Live situation of public security (治安), traffic (交通) and city management (城管) together.",
        "now-3h", "30s"), "district", "street")
    board = _now(board)
    board = _incidents_and_reports(board)
    board = _time_limits(board)
    board = _units_streets_and_map(board)
    board = _service_circle(board)
    return _action_list(board)


def _now(board: dash.Dashboard) -> dash.Dashboard:
    """Row "Now": the headline figures."""
    d, s = DISTRICT, STREET
    return (board
             .with_row(dash.Row("Now"))
             .with_panel(stat("Open incidents", prom(f"sum(patrol_open_incidents{{{d},{s}}})", "open"),
                              description="Incidents not yet closed or cancelled."))
             .with_panel(stat("Queued, nobody free", prom(f"sum(patrol_queued_incidents{{{d}}})", "queued"),
                              description="Incidents (or places of a joint dispatch) waiting for an eligible unit.")
                         .thresholds(thresholds((None, "green"), (1, "orange"), (5, "red"))))
             .with_panel(stat("New reports / min",
                              prom(f'sum(rate(patrol_reports_total{{outcome="admitted"}}[{RATE}])) * 60', "reports"),
                              unit="cpm"))
             .with_panel(stat("Free units", prom(f'sum(patrol_units{{status="free",{d},{s}}})', "free"),
                              description="Logged on, available, not on a task.")
                         .thresholds(thresholds((None, "red"), (1, "orange"), (3, "green"))))
             .with_panel(stat("SLA compliance, 24 h", prom(compliance("", "24h"), "compliance", instant=True),
                              unit="percentunit",
                              description="Limits met / limits measured, acknowledge + arrive + resolve, last 24 h.")
                         .thresholds(COMPLIANCE_COLOURS).min(0).max(1))
             .with_panel(stat("Escalations, 24 h",
                              prom("sum(increase(patrol_sla_breaches_total[24h]))", "escalations", instant=True),
                              description="Time limits missed and escalated (all ladder levels), last 24 h.")
                         .thresholds(thresholds((None, "green"), (1, "orange"), (10, "red")))))


def _incidents_and_reports(board: dash.Dashboard) -> dash.Dashboard:
    """Row "Incidents and reports": open incidents, new reports, dispatch latency."""
    d, s = DISTRICT, STREET
    return (board
             .with_row(dash.Row("Incidents and reports"))
             .with_panel(series("Open incidents by domain",
                                prom(f"sum by (domain) (patrol_open_incidents{{{d},{s}}})", "{{domain}}"),
                                stacked=True, w=8))
             .with_panel(series("New reports per minute",
                                prom(f'sum by (source) (rate(patrol_reports_total{{outcome="admitted"}}[{RATE}])) * 60',
                                     "{{source}}"),
                                prom(f'sum(rate(patrol_incident_events_total{{type="created",{d}}}[{RATE}])) * 60',
                                     "new incidents", ref_id="B"),
                                unit="cpm", w=8,
                                description="Admitted reports by source; several reports of one matter merge "
                                            "into one new incident."))
             .with_panel(series("Dispatch decision latency",
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
                                            "grows first when the worker falls behind).")))


def _time_limits(board: dash.Dashboard) -> dash.Dashboard:
    """Row "Time limits": SLA compliance and escalations."""
    return (board
             .with_row(dash.Row("Time limits (限时办结)"))
             .with_panel(bars("SLA compliance by domain and stage, 24 h",
                              prom(compliance("domain, stage", "24h"), "{{domain}} · {{stage}}", instant=True),
                              unit="percentunit", thresholds=COMPLIANCE_COLOURS, w=12).min(0).max(1))
             .with_panel(series("Escalations by level",
                                prom(f"sum by (level) (increase(patrol_sla_breaches_total[{RATE}]))", "level {{level}}"),
                                w=12, stacked=True,
                                description="1 reassign, 2 supervisor, 3 command centre.")
                         .draw_style(common.GraphDrawStyle.BARS)))


def _units_streets_and_map(board: dash.Dashboard) -> dash.Dashboard:
    """Rows "Units and streets" and "Map": availability, workload, orders and the open incidents."""
    d, s = DISTRICT, STREET
    return (board
             .with_row(dash.Row("Units and streets"))
             .with_panel(bars("Unit availability by agency",
                              prom(f"sum by (agency, status) (patrol_units{{{d},{s}}})", "{{agency}} · {{status}}",
                                   instant=True), w=8))
             .with_panel(bars("Workload by street (open incidents per free unit)",
                              # max, not sum: a ratio must not add up when two workers briefly both own a district
                              prom(f"max by (street) (patrol_street_workload{{{d},{s}}})", "{{street}}", instant=True),
                              thresholds=thresholds((None, "green"), (1, "orange"), (3, "red")), w=8))
             .with_panel(series("Dispatch orders per minute by agency",
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




def _service_circle(board: dash.Dashboard) -> dash.Dashboard:
    """Row "15-minute circle": per street and agency, whether a free officer who may take the agency's priority-1
    work is within 15 minutes of all of the street, now and over the last 24 h."""
    d, s = DISTRICT, STREET
    # max over workers: while a district changes hands, two may describe it for a moment
    now = f"max by (street, agency) (patrol_street_circle_covered{{{d},{s}}})"
    meaning = ("A street is covered while every point of it is within 15 minutes (half a minute to set off, "
               "then the way at the unit's speed) of a free unit of the agency that may take the agency's "
               "priority-1 work (police: the first priority-1 matter it leads in the catalogue, e.g. a fight).")
    return (board
            .with_row(dash.Row("15-minute circle"))
            .with_panel(statetimeline.Panel().title("15-minute circle: streets within 15 min of a free officer")
                        .description(meaning).datasource(PROMETHEUS)
                        .with_target(prom(now, "{{street}} · {{agency}}"))
                        .span(14).height(12).show_value(common.VisibilityMode.NEVER).merge_values(True)
                        .mappings([model.ValueMap(options={
                            "0": model.ValueMappingResult(text="outside", color="red", index=0),
                            "1": model.ValueMappingResult(text="covered", color="green", index=1)})])
                        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
                        .thresholds(thresholds((None, "red"), (1, "green"))))
            .with_panel(bars("15-minute circle: share of the last 24 h covered",
                             # every half minute, then averaged: the share of the day, whichever worker described it
                             prom(f"avg_over_time(({now})[24h:30s])", "{{street}} · {{agency}}", instant=True),
                             unit="percentunit", w=10, h=12,
                             thresholds=thresholds((None, "red"), (0.8, "orange"), (0.95, "green")),
                             description="Where the brigade is thin, whatever happened to be reported there.")
                        .min(0).max(1)))


def _action_list(board: dash.Dashboard) -> dash.Dashboard:
    """Row "Action list": the open escalations no dispatcher has acknowledged (GET /command/v1/escalations)."""
    return (board
            .with_row(dash.Row("Action list"))
            .with_panel(table.Panel().title("Open escalations, highest level and earliest due first")
                        .datasource(POSTGRES)
                        .description("From PostgreSQL (view v_open_escalations). An escalation leaves the list when a "
                                     "dispatcher acknowledges it (command acknowledge_escalation) or its incident "
                                     "closes.")
                        .with_target(Sql("""
                            SELECT level, due, reason, unit_id, category, district, street, status, incident_id,
                            escalation_id
                            FROM v_open_escalations
                            ORDER BY level DESC, due
                            LIMIT 200""")).span(24).height(10)))


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
            .thresholds(thresholds((None, "red"), (2, "orange"), (3, "yellow"), (4, "green"))))


def sla_streets() -> dash.Dashboard:
    board = variables(frame(
        "patrol-sla-streets", "SLA and street performance (综合评价)",
        "Time limits met per street and domain, response-time distributions, reassignments and escalations.",
        "now-24h", "1m"), "domain")
    board = (board
             .with_row(dash.Row("Streets, last 24 h (PostgreSQL)"))
             .with_panel(bars("Compliance by street, 24 h",
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

             .with_panel(table.Panel().title("Verification and closure (核查结案), 24 h").datasource(POSTGRES)
                         .description("From PostgreSQL (view v_street_verification): closures the complainant "
                                      "verified, closed unverified when the window ran out, closed by a supervisor, "
                                      "and reopened as not resolved.")
                         .with_target(Sql("""
                             SELECT district, street, verified_24h, unverified_24h, closed_by_command_24h,
                             reopened_24h, awaiting_24h
                             FROM v_street_verification
                             ORDER BY district, street"""))
                         .span(24).height(8))

             .with_row(dash.Row("Time limits by domain and stage"))
             .with_panel(series("SLA compliance over time (1 h window)",
                                prom(compliance("domain, stage", "1h", DOMAIN), "{{domain}} · {{stage}}"),
                                unit="percentunit", w=12).min(0).max(1))
             .with_panel(series("Response time p50 / p90 by stage and domain",
                                prom("histogram_quantile(0.5, sum by (le, stage, domain) "
                                     f"(rate(patrol_response_seconds_bucket{{{DOMAIN}}}[{RATE}])))",
                                     "p50 {{stage}} · {{domain}}"),
                                prom("histogram_quantile(0.9, sum by (le, stage, domain) "
                                     f"(rate(patrol_response_seconds_bucket{{{DOMAIN}}}[{RATE}])))",
                                     "p90 {{stage}} · {{domain}}", ref_id="B"),
                                unit="s", w=12, calcs=["mean", "max"])
                         .scale_distribution(common_builders.ScaleDistributionConfig()
                                             .type(common.ScaleDistribution.LOG).log(10)))
             .with_panel(response_heatmap("acknowledge"))
             .with_panel(response_heatmap("arrive"))
             .with_panel(response_heatmap("resolve"))

             .with_row(dash.Row("Reassignments and escalations"))
             .with_panel(bars("Reassignments by reason",
                              prom("sum by (reason) (increase(patrol_reassignments_total[$__range]))", "{{reason}}",
                                   instant=True),
                              w=8, description="declined, ack_overdue, log_off, preempted; in the time range shown."))
             .with_panel(bars("Escalations by stage and level",
                              prom("sum by (stage, level) "
                                   f"(increase(patrol_sla_breaches_total{{{DOMAIN}}}[$__range]))",
                                   "{{stage}} · level {{level}}", instant=True),
                              w=8, description="In the time range shown.")
                         .thresholds(thresholds((None, "orange"), (10, "red"))))
             .with_panel(series("Escalations by domain",
                                prom(f"sum by (domain) (increase(patrol_sla_breaches_total{{{DOMAIN}}}[{RATE}]))",
                                     "{{domain}}"),
                                w=8, stacked=True).draw_style(common.GraphDrawStyle.BARS)))
    return board


def pipeline_health() -> dash.Dashboard:
    board = frame("patrol-pipeline", "Pipeline health",
                  "Throughput, consumer lag, dead letters, PostgreSQL sink and workers of the patrol pipeline.",
                  "now-1h", "30s")
    up = f'up{{job="{SCRAPE_JOB}"}}'
    board = (board
             .with_row(dash.Row("Workers"))
             .with_panel(stat("Workers up", prom(f"sum({up})", "up", instant=True), w=4)
                         .thresholds(thresholds((None, "red"), (1, "green"))))
             .with_panel(stat("Worker up by instance", prom(up, "{{instance}}", instant=True), w=10)
                         .mappings([model.ValueMap(options={
                             "0": model.ValueMappingResult(text="DOWN", color="red", index=0),
                             "1": model.ValueMappingResult(text="up", color="green", index=1)})])
                         .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE))
             .with_panel(stat("Versions running", prom("count by (version) (patrol_worker_info)", "{{version}}",
                                                       instant=True), w=5).graph_mode(common.BigValueGraphMode.NONE))
             .with_panel(stat("Total consumer lag", prom("sum(patrol_consumer_lag)", "lag"), w=5,
                              description="Messages not yet consumed, all groups and partitions.")
                         .thresholds(thresholds((None, "green"), (100, "orange"), (1000, "red"))))

             .with_row(dash.Row("Throughput"))
             .with_panel(series("Inbound messages / s by outcome",
                                prom(f"sum by (outcome) (rate(patrol_reports_total[{RATE}]))", "reports {{outcome}}"),
                                prom(f"sum by (outcome) (rate(patrol_unit_events_total[{RATE}]))",
                                     "unit events {{outcome}}", ref_id="B"),
                                unit="ops", w=12))
             .with_panel(series("Incident events / s by type",
                                prom(f"sum by (type) (rate(patrol_incident_events_total[{RATE}]))", "{{type}}"),
                                unit="ops", w=12, stacked=True))

             .with_row(dash.Row("Lag and dead letters"))
             .with_panel(series("Consumer lag by group and topic",
                                prom("sum by (group, topic) (patrol_consumer_lag)", "{{group}} · {{topic}}"),
                                w=12, calcs=["lastNotNull", "max"]))
             .with_panel(series("Dead letters by stage and reason",
                                prom(f"sum by (stage, reason) (increase(patrol_dead_letters_total[{RATE}]))",
                                     "{{stage}} · {{reason}}"),
                                w=12, stacked=True, calcs=["sum"],
                                description="Nothing is dropped: what cannot be processed lands on "
                                            "incident.reports.dlq with a stable reason.")
                         .draw_style(common.GraphDrawStyle.BARS))

             .with_row(dash.Row("PostgreSQL sink"))
             .with_panel(series("Sink batch latency",
                                prom("histogram_quantile(0.5, sum by (le) "
                                     f"(rate(patrol_sink_batch_seconds_bucket[{RATE}])))", "p50"),
                                prom("histogram_quantile(0.99, sum by (le) "
                                     f"(rate(patrol_sink_batch_seconds_bucket[{RATE}])))", "p99", ref_id="B"),
                                prom(f"sum(rate(patrol_sink_batch_seconds_sum[{RATE}])) / "
                                     f"sum(rate(patrol_sink_batch_seconds_count[{RATE}]))", "mean", ref_id="C"),
                                unit="s", w=8, calcs=["mean", "max"]))
             .with_panel(series("Sink rows / s by table",
                                prom(f"sum by (table) (rate(patrol_sink_rows_total[{RATE}]))", "{{table}}"),
                                unit="rowsps", w=8, stacked=True))
             .with_panel(series("Sink retries",
                                prom(f"sum(increase(patrol_sink_retries_total[{RATE}]))", "retried batches"),
                                w=8, description="Batches written again after a database error.")
                         .draw_style(common.GraphDrawStyle.BARS)))
    return board
