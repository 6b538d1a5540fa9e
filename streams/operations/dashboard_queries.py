"""Reading the Grafana dashboards back: every query of a panel or template variable, a PromQL expression as
Grafana would send it, and the metric names an expression reads; for the tests and for anyone checking the
queries against a live server."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterator


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    datasource_uid: str | None
    language: str  # "promql" or "sql"
    text: str


def all_panels(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, those inside collapsed rows included."""
    for panel in document.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []  # a collapsed row carries its panels


def queries(document: dict[str, Any]) -> Iterator[PanelQuery]:
    """Every query of a dashboard: each panel target and each template variable query."""
    title = document.get("title", "")
    for panel in all_panels(document):
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
