"""The one wrapper over grafanalib: every dashboard is a `Board`, and a `Board` applies
our defaults so that no dashboard module repeats them or can forget one.

- `schemaVersion` 39 (Grafana 10.x and 11.x read it without migrating);
- a `datasource` variable of type prometheus, and every panel and target points at it
  with an object reference, `{"type": "prometheus", "uid": "${datasource}"}`, so one
  file imports into any Grafana whatever its data source is called;
- a `cluster` variable (values of `config.cluster_label`, All included, All meaning
  `.*`, which also matches series without the label) on every dashboard;
- selectors built here: `raw()` for the exporter's own series (`config.job_selector`
  and the cluster), `recorded()` for recording rules' series (the cluster only: a
  rule's aggregation drops `job`);
- only `timeseries`, `stat`, `table` and `bargauge` panels, each with a unit and a
  description, keyword arguments without defaults;
- a stable `uid`, `gpuwork-<name>`, and panel ids in the order panels are added;
- panels laid out left to right, 24 columns to a row.

Rate windows are `$__rate_interval` (`RATE_INTERVAL`); `increase()` over the
dashboard's range (`$__range`) is for instant queries (tables, stats) only.

`panel_queries()` reads a generated dashboard back: every (panel title, unit, expr)
with its variables substituted, for the tests and for proving the queries against a
real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from mixin.config import Config

SCHEMA_VERSION = 39
DATASOURCE: Mapping[str, str] = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = ("timeseries", "stat", "table", "bargauge")
RATE_INTERVAL = "$__rate_interval"
# The value a multi-value variable's All stands for in a regex matcher.
ALL = ".*"
# What the built-in interval variables stand for in `panel_queries()` unless given.
BUILTIN_DEFAULTS: Mapping[str, str] = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
}
GRID_WIDTH = 24
# Keys grafanalib writes for Grafana's pre-8 schema that a schema-39 dashboard ignores.
_LEGACY_DASHBOARD_KEYS = ("rows", "sharedCrosshair", "hideControls", "style")
_LEGACY_PANEL_KEYS = ("height", "span", "minSpan", "error", "columns", "fontSize", "mappings")
# Grafana's own default (one point per pixel) is better than grafanalib's 100.
_DROPPED_PANEL_KEYS = (*_LEGACY_PANEL_KEYS, "maxDataPoints", "cacheTimeout")
_LEGACY_TARGET_KEYS = ("target", "metric", "step", "query")


@dataclass(frozen=True, slots=True)
class Query:
    """One target of a panel. `column` and `unit` name a table's value column where
    it differs from the panel's unit."""

    expr: str
    legend: str = ""
    column: str = ""
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Variable:
    """A query variable: `label_values(<source>, <label>)`."""

    name: str
    label: str
    source: str
    label_name: str
    include_all: bool = False
    multi: bool = False


def counted_in(counter: str, window: str) -> str:
    """How much `counter` (a selector) grew over `window`, its first count included:
    increase() cannot see the count a series is born with (an XID code's counter appears
    at 1), so a series that did not exist a window ago counts whole."""
    return f"(({counter} unless {counter} offset {window}) or increase({counter}[{window}]))"


def _queries(queries: Sequence[Query | str]) -> list[Query]:
    return [q if isinstance(q, Query) else Query(q) for q in queries]


def _thresholds(red: float | None) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if red is not None:
        steps.append({"color": "red", "value": red})
    return steps


class Board:
    """One dashboard. Add panels with `timeseries`, `stat`, `table`, `bargauge`; read
    it with `json_data()` or `json_text()`."""

    def __init__(
        self,
        config: Config,
        *,
        name: str,
        title: str,
        description: str,
        tags: Iterable[str] = (),
        variables: Sequence[Variable] = (),
        cluster_source: str | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.title = title
        self.description = description
        self.tags = ["gpuwork", *tags]
        cl = config.cluster_label
        # The cluster variable reads the exporter's build info unless a dashboard that
        # must only touch other series (the tenant one) names its own source.
        cluster = Variable(
            name="cluster",
            label="Cluster",
            source=cluster_source or f"gpuwork_exporter_build_info{{{config.job_selector}}}",
            label_name=cl,
            include_all=True,
            multi=True,
        )
        self.variables = [cluster, *variables]
        self._panels: list[Any] = []
        self._x = 0
        self._y = 0
        self._row_height = 0

    @property
    def uid(self) -> str:
        return f"gpuwork-{self.name}"

    @property
    def cluster(self) -> str:
        """The name of the cluster label, for `by (...)` and `on (...)` clauses."""
        return self.config.cluster_label

    def raw(self, *matchers: str) -> str:
        """The selector of an exporter series: its job, the chosen clusters, `matchers`."""
        cl = self.config.cluster_label
        return "{" + ", ".join([self.config.job_selector, f'{cl}=~"$cluster"', *matchers]) + "}"

    def recorded(self, *matchers: str) -> str:
        """The selector of a recording rule's series: the chosen clusters, `matchers`."""
        cl = self.config.cluster_label
        return "{" + ", ".join([f'{cl}=~"$cluster"', *matchers]) + "}"

    # -- panels ---------------------------------------------------------------------

    def timeseries(
        self,
        title: str,
        *,
        unit: str,
        description: str,
        queries: Sequence[Query | str],
        width: int = 12,
        height: int = 8,
        stack: bool = False,
        max_value: int | None = None,
        newline: bool = False,
    ) -> None:
        panel = g.TimeSeries(
            title=title,
            description=description,
            dataSource=dict(DATASOURCE),
            targets=self._targets(queries, instant=False, table=False),
            unit=unit,
            gridPos=self._place(width, height, newline),
            id=len(self._panels) + 1,
            stacking={"mode": "normal", "group": "A"} if stack else {},
            fillOpacity=30 if stack else 10,
            lineWidth=1,
            legendDisplayMode="list",
            tooltipMode="multi",
            tooltipSort="desc",
            valueMin=0,
            valueMax=max_value,
        )
        self._panels.append(panel)

    def stat(
        self,
        title: str,
        *,
        unit: str,
        description: str,
        queries: Sequence[Query | str],
        width: int = 6,
        height: int = 4,
        red_from: float | None = None,
        newline: bool = False,
    ) -> None:
        panel = g.Stat(
            title=title,
            description=description,
            dataSource=dict(DATASOURCE),
            targets=self._targets(queries, instant=True, table=False),
            format=unit,
            gridPos=self._place(width, height, newline),
            id=len(self._panels) + 1,
            reduceCalc="lastNotNull",
            graphMode="none",
            color={"mode": "thresholds"},
            noValue="0",
            thresholds=_thresholds(red_from),
        )
        self._panels.append(panel)

    def bargauge(
        self,
        title: str,
        *,
        unit: str,
        description: str,
        queries: Sequence[Query | str],
        width: int = 12,
        height: int = 8,
        max_value: float | None = None,
        newline: bool = False,
    ) -> None:
        panel = g.BarGauge(
            title=title,
            description=description,
            dataSource=dict(DATASOURCE),
            targets=self._targets(queries, instant=True, table=False),
            format=unit,
            gridPos=self._place(width, height, newline),
            id=len(self._panels) + 1,
            displayMode=g.GAUGE_DISPLAY_MODE_GRADIENT,
            orientation=g.ORIENTATION_HORIZONTAL,
            # grafanalib writes the pre-7 `options.fieldOptions`; these are what a
            # schema-39 Grafana reads.
            extraJson={
                "fieldConfig": {
                    "defaults": {
                        "unit": unit,
                        "min": 0,
                        "max": max_value,
                        "color": {"mode": "thresholds"},
                        "thresholds": {"mode": "absolute", "steps": _thresholds(None)},
                    },
                    "overrides": [],
                },
                "options": {
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "showUnfilled": True,
                    "valueMode": "color",
                    "namePlacement": "auto",
                    "sizing": "auto",
                    "minVizHeight": 16,
                    "maxVizHeight": 300,
                    "minVizWidth": 8,
                },
            },
        )
        self._panels.append(panel)

    def table(
        self,
        title: str,
        *,
        unit: str,
        description: str,
        queries: Sequence[Query | str],
        hide: Sequence[str] = (),
        width: int = 24,
        height: int = 8,
        newline: bool = False,
    ) -> None:
        """An instant table: one row per label set, the queries' values side by side
        (Grafana's merge). `hide` names label columns to leave out."""
        qs = _queries(queries)
        renames: dict[str, str] = {}
        overrides: list[dict[str, Any]] = []
        for ref, q in zip(_ref_ids(), qs, strict=False):
            key = "Value" if len(qs) == 1 else f"Value #{ref}"
            header = q.column or key
            renames[key] = header
            if q.unit and q.unit != unit:
                overrides.append(
                    {
                        "matcher": {"id": "byName", "options": header},
                        "properties": [{"id": "unit", "value": q.unit}],
                    }
                )
        first = renames["Value" if len(qs) == 1 else "Value #A"]
        panel = g.Table(
            title=title,
            description=description,
            dataSource=dict(DATASOURCE),
            targets=self._targets(qs, instant=True, table=True),
            unit=unit,
            gridPos=self._place(width, height, newline),
            id=len(self._panels) + 1,
            filterable=True,
            overrides=overrides,
            sortBy=[g.TableSortByField(displayName=first, desc=True)],
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, **{label: True for label in hide}},
                        "indexByName": {},
                        "renameByName": renames,
                    },
                },
            ],
        )
        self._panels.append(panel)

    # -- output ---------------------------------------------------------------------

    def json_data(self) -> dict[str, Any]:
        dashboard = g.Dashboard(
            title=self.title,
            uid=self.uid,
            description=self.description,
            tags=self.tags,
            schemaVersion=SCHEMA_VERSION,
            timezone="browser",
            refresh="1m",
            time=g.Time("now-6h", "now"),
            graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
            editable=True,
            panels=self._panels,
            templating=g.Templating([self._datasource_template(), *self._templates()]),
        )
        data: dict[str, Any] = json.loads(json.dumps(dashboard, cls=DashboardEncoder))
        return _modernize(data)

    def json_text(self) -> str:
        return json.dumps(self.json_data(), sort_keys=True, indent=2) + "\n"

    # -- internals ------------------------------------------------------------------

    def _place(self, width: int, height: int, newline: bool) -> g.GridPos:
        if newline or self._x + width > GRID_WIDTH:
            self._x, self._y, self._row_height = 0, self._y + self._row_height, 0
        pos = g.GridPos(h=height, w=width, x=self._x, y=self._y)
        self._x += width
        self._row_height = max(self._row_height, height)
        return pos

    def _targets(self, queries: Sequence[Query | str], *, instant: bool, table: bool) -> list[Any]:
        return [
            g.Target(
                expr=q.expr,
                legendFormat=q.legend or "__auto",
                refId=ref,
                datasource=dict(DATASOURCE),
                instant=instant,
                format="table" if table else "time_series",
                intervalFactor=1,
            )
            for ref, q in zip(_ref_ids(), _queries(queries), strict=False)
        ]

    def _datasource_template(self) -> Any:
        return g.Template(
            name="datasource",
            label="Data source",
            query="prometheus",
            type="datasource",
        )

    def _templates(self) -> list[Any]:
        return [
            g.Template(
                name=v.name,
                label=v.label,
                query=f"label_values({v.source}, {v.label_name})",
                dataSource=dict(DATASOURCE),
                includeAll=v.include_all,
                allValue=ALL if v.include_all else None,
                multi=v.multi,
                refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
                default="$__all" if v.include_all else None,
            )
            for v in self.variables
        ]


def _ref_ids() -> Iterable[str]:
    return (chr(ord("A") + i) for i in range(26))


def _modernize(data: dict[str, Any]) -> dict[str, Any]:
    """What grafanalib 0.7.1 writes for old schemas, made what schema 39 reads."""
    for key in _LEGACY_DASHBOARD_KEYS:
        data.pop(key, None)
    for variable in data["templating"]["list"]:
        if variable["type"] == "datasource":
            variable["current"] = {}
            variable["datasource"] = None
            continue
        variable["definition"] = variable["query"]
        if variable["includeAll"]:
            variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
        else:
            variable["current"] = {}
        for key in ("auto", "auto_count", "auto_min", "useTags", "tagsQuery", "tagValuesQuery"):
            variable.pop(key, None)
    for panel in data["panels"]:
        for key in _DROPPED_PANEL_KEYS:
            panel.pop(key, None)
        if panel["type"] == "bargauge":
            panel["options"].pop("fieldOptions", None)
        if panel["type"] == "table":
            panel.pop("color", None)
        for target in panel["targets"]:
            for key in _LEGACY_TARGET_KEYS:
                target.pop(key, None)
            target["range"] = not target["instant"]
            target["editorMode"] = "code"
    return data


# -- reading a dashboard back --------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def variable_values(dashboard: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, str]:
    """Each variable's value: from `values`, else All's regex where All is allowed,
    else an error (a variable like `tenant` has no sensible default)."""
    resolved = dict(BUILTIN_DEFAULTS)
    for variable in dashboard["templating"]["list"]:
        name = variable["name"]
        if variable["type"] == "datasource":
            continue
        if name in values:
            resolved[name] = values[name]
        elif variable.get("includeAll"):
            resolved[name] = variable.get("allValue") or ALL
        else:
            raise ValueError(f"{dashboard['uid']}: give a value for the variable {name!r}")
    resolved.update(values)
    return resolved


def substitute(expr: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def _panel_units(panel: Mapping[str, Any]) -> dict[str, str]:
    """refId -> unit: the panel's, or its column's override in a table."""
    unit: str = panel["fieldConfig"]["defaults"].get("unit", "")
    targets = panel["targets"]
    if panel["type"] != "table":
        return {t["refId"]: unit for t in targets}
    renames: dict[str, str] = {}
    for transformation in panel.get("transformations", []):
        if transformation["id"] == "organize":
            renames = transformation["options"].get("renameByName", {})
    overrides = {
        o["matcher"]["options"]: p["value"]
        for o in panel["fieldConfig"].get("overrides", [])
        for p in o["properties"]
        if p["id"] == "unit"
    }
    units = {}
    for t in targets:
        key = "Value" if len(targets) == 1 else f"Value #{t['refId']}"
        units[t["refId"]] = overrides.get(renames.get(key, key), unit)
    return units


def panel_queries(
    dashboard: Mapping[str, Any] | str, values: Mapping[str, str] | None = None
) -> list[tuple[str, str, str]]:
    """Every (panel title, unit, expr) of a generated dashboard (its JSON text or its
    decoded form), with the variables given in `values`, All (`.*`) for those that
    allow it, and `BUILTIN_DEFAULTS` for Grafana's interval variables substituted."""
    data: Mapping[str, Any] = json.loads(dashboard) if isinstance(dashboard, str) else dashboard
    resolved = variable_values(data, values or {})
    out = []
    for panel in data["panels"]:
        units = _panel_units(panel)
        for target in panel["targets"]:
            expr = substitute(target["expr"], resolved)
            out.append((panel["title"], units[target["refId"]], expr))
    return out
