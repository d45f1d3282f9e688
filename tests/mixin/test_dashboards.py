"""mixin/dashboards: every generated dashboard keeps the wrapper's defaults, reads only
series that exist, and the tenant dashboard reads only its own tenant's series.

Fast and offline: no Grafana, no Prometheus. The queries themselves are proven against
a real Prometheus in tests/mixin/test_end_to_end.py through `panel_queries`."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from mixin.config import CONFIG
from mixin.dashboards import dashboards, files
from mixin.dashboards.panels import (
    DATASOURCE,
    PANEL_TYPES,
    RATE_INTERVAL,
    SCHEMA_VERSION,
    Board,
    panel_queries,
)
from tests.support.paths import REPO

DASHBOARDS = dashboards(CONFIG)
NAMES = sorted(DASHBOARDS)
# Values for the variables that have no All: what a user picks.
PICKED = {"tenant": "acme", "node": "node-1"}
TENANT = 'tenant="$tenant"'

# Recording rules added beside the useful-work ones, by name (see the brief of the mixin).
NEW_RULES = {
    "gpu_uuid:gpuwork_device_sm_active_ratio:fraction_weighted",
    "tenant_model:gpuwork_tokens_per_gpu_hour:ratio_rate1h",
    "tenant_model:gpuwork_fleet_tokens_per_gpu_hour:ratio_rate1h",
    "tenant:gpuwork_gpu_fraction_held:sum",
}
# Series not in docs/metrics.md that a scrape of the exporter still has: Prometheus's own
# per-target series (scrape_body_size_bytes with --enable-feature=extra-scrape-metrics)
# and prometheus_client's process_* series, which metrics.md names as served besides.
SCRAPE_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_body_size_bytes",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
}
# Rule levels (the part of a rule's name before the first colon) whose series keep the
# tenant label: every aggregation at these levels is `by (..., tenant, ...)`.
TENANT_LEVELS = {
    "tenant",
    "tenant_model",
    "namespace_pod",
    "namespace_pod_model",
    "namespace_pod_state",
}


def documented() -> dict[str, set[str]]:
    """Every series docs/metrics.md lists, with its labels; histograms as their series."""
    names: dict[str, set[str]] = {}
    row = re.compile(r"^\| `(gpuwork_\w+)` \| (\w+) \|\s*([^|]*?)\s*\|", re.MULTILINE)
    for name, kind, labels in row.findall((REPO / "docs" / "metrics.md").read_text()):
        label_set = set(re.findall(r"`(\w+)`", labels))
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        for suffix in suffixes:
            names[name + suffix] = label_set
    return names


def recorded() -> set[str]:
    """The `record:` names of every generated rules file."""
    names = set()
    for path in sorted((REPO / "alerts").glob("*.rules.yml")):
        if path.is_file():
            for group in yaml.safe_load(path.read_text())["groups"]:
                names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


# -- reading PromQL just enough ------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_OFFSET = re.compile(r"\boffset\s+\S+")
_NAME = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


def selectors(expr: str) -> list[tuple[str, str]]:
    """Every (metric name, `{matchers}` or "") an expression selects."""
    text = _OFFSET.sub(" ", _RANGE.sub(" ", _CLAUSE.sub(" ", expr)))
    found = []
    for match in _NAME.finditer(text):
        name, braces = match.group(1), match.group(2) or ""
        if name.lower() in _KEYWORDS:
            continue
        if not braces and text[match.end() :].startswith("("):
            continue  # a function or an aggregation
        found.append((name, braces))
    return found


def range_windows(expr: str) -> list[tuple[str, str]]:
    """Every (innermost function, window) of a range selector `[...]`."""
    stack: list[str] = []
    found = []
    for match in re.finditer(r"(\w*)\s*\(|\)|\[([^\]]*)\]", _STRING.sub('""', expr)):
        token = match.group(0)
        if token.endswith("("):
            stack.append(match.group(1))
        elif token == ")":
            stack.pop()
        else:
            found.append((stack[-1] if stack else "", match.group(2)))
    return found


def test_the_promql_reader_finds_selectors_and_windows() -> None:
    expr = (
        'sum by (model, le) (rate(a_bucket{tenant="$tenant", x=~"(b|c)"}[$__rate_interval]))'
        " / on (cluster) group_left () tenant:b:sum * 1e6 and c > bool 0"
    )
    assert selectors(expr) == [
        ("a_bucket", '{tenant="$tenant", x=~"(b|c)"}'),
        ("tenant:b:sum", ""),
        ("c", ""),
    ]
    assert range_windows(expr) == [("rate", "$__rate_interval")]


# -- every dashboard -----------------------------------------------------------------


def variable_sources(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(variable name, the series its `label_values(<series>, <label>)` reads)."""
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
            assert match, variable["query"]
            found.append((variable["name"], match.group(1)))
    return found


def targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(panel, target) for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.mark.parametrize("name", NAMES)
def test_schema_version_and_the_datasource_variable(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["schemaVersion"] == SCHEMA_VERSION >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    cluster = variables["cluster"]
    assert cluster["includeAll"] and cluster["allValue"] == ".*"
    assert cluster["query"].endswith(f", {CONFIG.cluster_label})")


@pytest.mark.parametrize("name", NAMES)
def test_only_four_panel_types_each_with_a_unit_and_a_description(name: str) -> None:
    for panel in DASHBOARDS[name]["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]


def test_unit_and_description_are_mandatory_arguments() -> None:
    board = Board(CONFIG, name="x", title="x", description="x")
    for add in (board.timeseries, board.stat, board.table, board.bargauge):
        with pytest.raises(TypeError):
            add("no unit", description="d", queries=["up"])  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            add("no description", unit="short", queries=["up"])  # type: ignore[call-arg]


def test_uids_are_stable_and_unique_and_so_are_panel_ids() -> None:
    uids = [DASHBOARDS[name]["uid"] for name in NAMES]
    assert uids == [f"gpuwork-{name}" for name in NAMES]
    assert len(set(uids)) == len(uids)
    for name in NAMES:
        ids = [panel["id"] for panel in DASHBOARDS[name]["panels"]]
        assert len(set(ids)) == len(ids), name
        assert all(isinstance(i, int) and i > 0 for i in ids), name
    assert dashboards(CONFIG) == DASHBOARDS  # the same input, the same output


@pytest.mark.parametrize("name", NAMES)
def test_every_panel_target_and_variable_uses_the_datasource_variable(name: str) -> None:
    dashboard = DASHBOARDS[name]
    for panel, target in targets(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert target["datasource"] == DATASOURCE, panel["title"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


@pytest.mark.parametrize("name", NAMES)
def test_panels_do_not_overlap_and_fit_the_grid(name: str) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in DASHBOARDS[name]["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


@pytest.mark.parametrize("name", NAMES)
def test_rate_windows_are_the_rate_interval(name: str) -> None:
    for panel, target in targets(DASHBOARDS[name]):
        for function, window in range_windows(target["expr"]):
            if function in ("rate", "irate"):
                assert window == RATE_INTERVAL, (panel["title"], target["expr"])
            elif function == "increase":
                # the dashboard's range is a count over it: instant queries only
                assert window == RATE_INTERVAL or (window == "$__range" and target["instant"]), (
                    panel["title"],
                    target["expr"],
                )
            else:
                assert function.endswith("_over_time"), (panel["title"], function)


@pytest.mark.parametrize("name", NAMES)
def test_every_metric_and_rule_name_exists(name: str) -> None:
    known = set(documented()) | recorded() | NEW_RULES | SCRAPE_SERIES
    for panel, target in targets(DASHBOARDS[name]):
        for metric, _ in selectors(target["expr"]):
            assert metric in known, (panel["title"], metric)
    for variable, source in variable_sources(DASHBOARDS[name]):
        for metric, _ in selectors(source):
            assert metric in known, (variable, metric)


@pytest.mark.parametrize("name", NAMES)
def test_exporter_series_carry_the_job_and_every_series_the_cluster(name: str) -> None:
    docs = set(documented()) | SCRAPE_SERIES
    cluster = f'{CONFIG.cluster_label}=~"$cluster"'
    for panel, target in targets(DASHBOARDS[name]):
        for metric, braces in selectors(target["expr"]):
            assert cluster in braces, (panel["title"], metric)
            if metric in docs:
                assert CONFIG.job_selector in braces, (panel["title"], metric)


# -- the tenant dashboard behind a label-enforcing proxy ------------------------------


def has_tenant_label(metric: str, docs: dict[str, set[str]]) -> bool:
    if ":" in metric:
        return metric.split(":", 1)[0] in TENANT_LEVELS
    return "tenant" in docs.get(metric, set())


def test_every_tenant_query_selects_the_tenant_on_every_series() -> None:
    docs = documented()
    dashboard = DASHBOARDS["tenant"]
    for panel, target in targets(dashboard):
        found = selectors(target["expr"])
        assert found, panel["title"]
        for metric, braces in found:
            assert TENANT in braces, (panel["title"], metric)
            assert has_tenant_label(metric, docs), (panel["title"], metric)
    # The variables fill in behind the proxy too: they read tenant-labelled series only.
    for variable, source in variable_sources(dashboard):
        for metric, _ in selectors(source):
            assert has_tenant_label(metric, docs), (variable, metric)


def test_the_tenant_check_catches_a_series_without_the_tenant() -> None:
    docs = documented()
    assert not has_tenant_label("gpuwork_device_gpu_fraction", docs)
    assert not has_tenant_label("model:gpuwork_tokens_per_gpu_hour:ratio_rate1h", docs)
    assert has_tenant_label("gpuwork_device_allocation", docs)
    assert has_tenant_label("tenant_model:gpuwork_fleet_tokens_per_gpu_hour:ratio_rate1h", docs)


# -- reading the dashboards back -----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_panel_queries_substitutes_every_variable(name: str) -> None:
    queries = panel_queries(DASHBOARDS[name], PICKED)
    assert len(queries) == len(targets(DASHBOARDS[name]))
    titles = {panel["title"] for panel in DASHBOARDS[name]["panels"]}
    for title, unit, expr in queries:
        assert title in titles and unit
        assert "$" not in expr, expr
        assert "[5m]" in expr or "rate(" not in expr
    if name == "tenant":
        assert all('tenant="acme"' in expr for _, _, expr in queries)


def test_panel_queries_reads_table_column_units_and_needs_a_tenant() -> None:
    text = files(CONFIG)["dashboards/tenant.json"]
    units = {unit for title, unit, _ in panel_queries(text, PICKED) if title == "Pods, last hour"}
    assert units == {"short", "percentunit"}
    with pytest.raises(ValueError, match="tenant"):
        panel_queries(text)
    window = panel_queries(text, {**PICKED, "__rate_interval": "2m"})
    assert any("[2m]" in expr for _, _, expr in window)


def test_files_are_sorted_indented_json_with_a_trailing_newline() -> None:
    generated = files(CONFIG)
    assert sorted(generated) == [f"dashboards/{name}.json" for name in NAMES]
    assert set(NAMES) == {"fleet", "node", "tenant", "serving", "exporter", "rightsizing"}
    for text in generated.values():
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
