"""The mixin's rules, alerts and dashboards with the real programs, end to end.

The exporter serves a simulated node with faults (`--simulate`, a real process); a real
Prometheus scrapes it with the generated recording and alert rules loaded, sends alerts
to a real Alertmanager configured from the example config (its webhooks pointed at a
sink in this test) and remote-writes every sample into a real VictoriaMetrics. The
rules are generated with every duration of the config cut down (`fast`), so the run
takes two minutes instead of hours; the expressions are the ones users get.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.kube_apiserver import free_port
from harness.monitoring import (
    ProgramMissingError,
    PromQL,
    WebhookSink,
    alertmanager,
    prometheus,
    victoria_metrics,
)
from mixin.config import CONFIG, Config
from mixin.dashboards.panels import panel_queries
from mixin.generate import generated
from tests.support.exporter_process import exporter
from tests.support.paths import REPO

pytestmark = [pytest.mark.slow, pytest.mark.integration]

INTERVAL = 2.0  # the exporter's collections, Prometheus's scrapes and rule evaluations
RUN_SECONDS = 100.0  # past the GPU loss and every (shortened) `for`
EXAMPLE_WEBHOOKS = "http://127.0.0.1:9095/"  # where the example config's receivers point

SCENARIO = yaml.safe_load("""
name: e2e
node: sim-e2e
gpu_hourly_cost: {"*H100*": 4.0}
gpus:
  - model: H100-SXM5-80GB                    # 0: chat, whole GPU; its own XID
  - model: H100-SXM5-80GB                    # 1: ads, whole GPU; falls off the bus
  - model: H100-SXM5-80GB                    # 2: search and research on MIG slices
    mig: [3g.40gb, 3g.40gb]
  - model: H100-SXM5-80GB                    # 3: chat's second pod, started with the node
pods:
  - {name: chat-0, namespace: chat, tenant: chat, devices: ["0"], load: busy}
  - {name: ads-0, namespace: ads, tenant: ads, devices: ["1"], load: busy}
  - {name: search-0, namespace: search, tenant: search, devices: ["2/0"], load: busy}
  - {name: research-0, namespace: research, tenant: research, devices: ["2/1"], load: idle}
  - {name: chat-1, namespace: chat, tenant: chat, devices: ["3"], load: busy,
     started_before_seconds: 0, cold_start_seconds: 10}
faults:
  - {kind: xid, at: 20, gpu: 0, xid: 31}     # RESTART_APP: chat's own fault
  - {kind: xid, at: 24, gpu: 2, slot: 0, xid: 13}  # search's own, on its MIG slice alone
  - {kind: gpu_lost, at: 30, gpu: 1}
""")

_DURATION = re.compile(r"^(\d+)([smh])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


def fast(config: Config) -> Config:
    """The config with every duration cut to a sixtieth (at least three intervals): a
    `for: 30m` becomes 30 s, a 1 h burn-rate window 60 s."""
    changes: dict[str, str] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match:
            seconds = int(match[1]) * _SECONDS[match[2]]
            changes[field.name] = f"{max(seconds // 60, int(3 * INTERVAL))}s"
    return dataclasses.replace(config, **changes)


def pointed_at(config: dict[str, Any], sink: WebhookSink) -> dict[str, Any]:
    """The example Alertmanager config with its webhooks at `sink` and no waiting."""
    text = json.dumps(config).replace(EXAMPLE_WEBHOOKS, f"http://127.0.0.1:{sink.port}/")
    answer: dict[str, Any] = json.loads(text)

    def hurry(route: dict[str, Any]) -> None:
        for key, value in (("group_wait", "1s"), ("group_interval", "1s"),
                           ("repeat_interval", "1h")):  # fmt: skip
            if key in route or route is answer["route"]:
                route[key] = value
        for child in route.get("routes", []):
            hurry(child)

    hurry(answer["route"])
    return answer


@dataclass
class Stack:
    prometheus: PromQL
    victoria: PromQL
    sink: WebhookSink
    wall_start: float
    files: dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    scratch = tmp_path_factory.mktemp("e2e")
    # the right-sizing window (7d, which `fast` leaves) cut to the run, so that the
    # right-sizing dashboard has advice to show (tests/mixin/conftest.py proves the advice)
    files = generated(dataclasses.replace(fast(CONFIG), rightsizing_window="60s",
                                          rightsizing_resolution=f"{INTERVAL:g}s"))  # fmt: skip
    rule_files = []
    for path, text in files.items():
        if path.startswith("alerts/") and path.endswith((".rules.yml", ".alerts.yml")):
            rule_files.append(scratch / Path(path).name)
            rule_files[-1].write_text(text)
    example = files.get("alerts/alertmanager.example.yml")
    if example is None:
        pytest.fail("the mixin generates no example Alertmanager config")
    scenario = scratch / "e2e.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    port = free_port()
    sink = WebhookSink()
    try:
        with (
            sink.serving(),
            alertmanager(scratch, pointed_at(yaml.safe_load(example), sink)) as am,
            victoria_metrics(scratch) as vm,
            exporter(scenario, port, scratch, interval=INTERVAL) as wall_start,
            prometheus(
                scratch,
                targets=[f"127.0.0.1:{port}"],
                rule_files=rule_files,
                alertmanager=am,
                remote_write=f"{vm.base}/api/v1/write",
                interval=f"{INTERVAL:g}s",
                job=job_of(CONFIG),
            ) as prom,  # fmt: skip
        ):
            time.sleep(max(RUN_SECONDS - (time.time() - wall_start), 0))
            yield Stack(prom, vm, sink, wall_start, files)
    except ProgramMissingError as missing:
        pytest.fail(str(missing))


def job_of(config: Config) -> str:
    match = re.fullmatch(r'job="([^"]+)"', config.job_selector)
    assert match, f"the e2e test scrapes one job: {config.job_selector}"
    return match[1]


def test_prometheus_scrapes_the_exporter_and_feeds_victoria_metrics(stack: Stack) -> None:
    up = stack.prometheus.query(f"up{{{CONFIG.job_selector}}}")
    assert [float(s["value"][1]) for s in up] == [1.0]
    assert stack.victoria.query("count(gpuwork_device_info)")


def test_tokens_per_gpu_hour_recorded_by_the_rules_match_the_truth(stack: Stack) -> None:
    """Per tenant untouched by a fault: the exporter's counters between the first and the
    last scrape agree with the scenario's truth within 1%, and the recorded rule is their
    ratio, up to Prometheus's own extrapolation at the edges of the data (about 1% over a
    two-minute run, 0.03% over a real hour; measured here with increase() of the same
    series). tests/mixin/test_recording.py checks the rules against the truth over a
    whole hour of samples."""
    from simulator.node import SimulatedNode
    from simulator.scenario import Scenario
    from simulator.work import tenant_gpu_seconds_held, tenant_tokens

    prom = stack.prometheus
    recorded = prom.query("tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h")
    assert recorded, "the rule recorded nothing"
    at = max(float(s["value"][0]) for s in recorded)
    ratios = {s["metric"]["tenant"]: float(s["value"][1]) for s in recorded}
    node = SimulatedNode(Scenario.model_validate(SCENARIO), wall_start=stack.wall_start)
    stamps = prom.query('gpuwork_collector_last_success_timestamp_seconds{collector="engines"}'
                        "[1h]", time=f"{at:.3f}")[0]["values"]  # fmt: skip
    t0, t1 = (float(stamps[i][1]) - stack.wall_start for i in (0, -1))
    tokens, held = tenant_tokens(node, t0, t1, "total"), tenant_gpu_seconds_held(node, t0, t1)
    first, last = (f"{float(stamps[i][0]):.3f}" for i in (0, -1))
    for tenant in ("chat", "search"):
        counted: dict[str, tuple[float, float]] = {}  # (last - first sample, increase())
        for name, series in (
            ("tokens", f'gpuwork_tokens_total{{{CONFIG.job_selector},tenant="{tenant}"}}'),
            ("held", f'gpuwork_device_state_seconds_total{{{CONFIG.job_selector},'
                     f'tenant="{tenant}",state!="unallocated"}}'),
        ):  # fmt: skip
            at_first, at_last = (value(prom, f"sum({series})", when) for when in (first, last))
            increase = value(prom, f"sum(increase({series}[1h]))", f"{at:.3f}")
            counted[name] = (at_last - at_first, increase)
        truth = tokens[tenant] / held[tenant] * 3600
        served = counted["tokens"][0] / counted["held"][0] * 3600
        assert served == pytest.approx(truth, rel=0.01), (tenant, served, truth, t0, t1)
        extrapolated = counted["tokens"][1] / counted["held"][1] * 3600
        # a rule may run before its evaluation time's last scrape is stored: one sample less
        assert ratios[tenant] == pytest.approx(extrapolated, rel=0.01), (tenant, extrapolated)


def value(prom: PromQL, expr: str, when: str) -> float:
    """The one value of `expr` at `when`."""
    result = prom.query(expr, time=when)
    assert len(result) == 1, f"{expr} at {when}: {result}"
    return float(result[0]["value"][1])


# -- dashboards ----------------------------------------------------------------------------

DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
# The values a user would pick; the GPU is chat's, found at run time.
PICKED = {"node": "sim-e2e", "tenant": "chat", "model": ".*", "engine": "vllm"}


def variables(prom: PromQL) -> dict[str, str]:
    gpu = prom.query('gpuwork_device_allocation{tenant="chat"} * on (device) group_left '
                     "(gpu_uuid) gpuwork_device_info")[0]["metric"]["gpu_uuid"]  # fmt: skip
    return {**PICKED, "gpu": gpu}


def fits(unit: str, values: list[float], signed: bool = False) -> bool:
    """Whether values can be shown in `unit`: a temperature as one, a saving (negative for
    an upsize) as any number, anything else not below zero (every other quantity here is a
    count, a size, a time, a rate, a ratio or a price)."""
    if signed:
        return all(abs(v) < float("inf") for v in values)
    if unit == "percentunit":  # a share of a device, or a tenant's figure over the fleet's
        return all(v >= 0 for v in values)
    if unit == "celsius":
        return all(-50 <= v <= 150 for v in values)
    return all(v >= 0 for v in values)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_of_every_dashboard_shows_data_in_its_unit(stack: Stack, path: Path) -> None:
    empty, misfit = [], []
    for title, unit, expr in panel_queries(path.read_text(), variables(stack.prometheus)):
        result = stack.prometheus.query(expr)
        values = [float(s["value"][1]) for s in result]
        if not values:
            empty.append(f"{title}: {expr}")
        elif not fits(unit, [v for v in values if v == v], signed="saving" in expr):  # NaN: 0/0
            misfit.append(f"{title} ({unit}): {values[:5]}")
    assert empty == [], "panels without data:\n" + "\n".join(empty)
    assert misfit == [], "values that do not fit the unit:\n" + "\n".join(misfit)


def numbers(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in result if s["value"][1] != "NaN"]


@pytest.mark.parametrize("tenant", ["chat", "research"])
def test_the_tenant_dashboard_behind_a_label_enforcing_store_shows_that_tenant_alone(
    stack: Stack, tenant: str
) -> None:
    """VictoriaMetrics with `extra_label=tenant=X` adds the filter to every selector, as
    prom-label-proxy does: each query of the tenant dashboard still answers, with the
    same series as Prometheus without the filter, all of them the tenant's own."""
    at = f"{time.time() - 10:.0f}"  # what remote write has delivered by now
    board = (REPO / "dashboards" / "tenant.json").read_text()
    for title, _, expr in panel_queries(board, {"tenant": tenant}):
        # NaN (a quantile of no observation) is no data to VictoriaMetrics, as to Grafana
        enforced = numbers(stack.victoria.query(expr, time=at, extra_label=f"tenant={tenant}"))
        plain = numbers(stack.prometheus.query(expr, time=at))
        # research serves no token: its cost per token and its latency have no value
        assert enforced or (tenant == "research" and not plain), f"{title}: no data: {expr}"
        assert {s["metric"].get("tenant", tenant) for s in enforced} <= {tenant}, title
        assert len(enforced) == len(plain), f"{title}: {expr}"
    # a query that would read every tenant answers with this one's share alone
    share = 'sum(gpuwork_device_allocation{job="gpuwork-exporter"})'
    enforced = stack.victoria.query(share, time=at, extra_label=f"tenant={tenant}")
    own = stack.prometheus.query(share.replace("}", f',tenant="{tenant}"}}'), time=at)
    assert float(enforced[0]["value"][1]) == float(own[0]["value"][1]) > 0


# -- alerts and their routes ---------------------------------------------------------------


def delivered(stack: Stack, alertname: str, **labels: str) -> dict[str, list[dict[str, Any]]]:
    """Receiver -> the alerts named `alertname` with `labels` that Alertmanager sent it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for receiver in stack.sink.received:
        for alert in stack.sink.alerts(receiver):
            mine = alert["labels"]
            if mine["alertname"] == alertname and labels.items() <= mine.items():
                found.setdefault(receiver, []).append(alert)
    return found


def test_an_idle_allocation_is_the_tenants_alone(stack: Stack) -> None:
    found = delivered(stack, "GpuworkDeviceAllocatedIdle")
    assert set(found) == {"tenant-research"}, set(found)
    alert = found["tenant-research"][0]
    assert alert["labels"]["namespace"] == "research" and alert["labels"]["pod"] == "research-0"
    # a 3g.40gb slice of a $4.00 H100: 3/7 of it
    assert f"at {4.0 * 3 / 7:.2f} an hour" in alert["annotations"]["description"]


def test_a_lost_gpu_pages_sre_with_the_pods_and_tenants_on_it(stack: Stack) -> None:
    found = delivered(stack, "GpuworkGpuLost")
    assert set(found) == {"sre-pager"}, set(found)
    assert "ads/ads-0 (ads)" in found["sre-pager"][0]["annotations"]["description"]


def test_a_tenants_own_xid_goes_to_the_tenant_not_to_sre(stack: Stack) -> None:
    found = delivered(stack, "GpuworkGpuXidApplication")
    # chat's on its whole GPU; search's on its MIG slice, not research's beside it
    assert set(found) == {"tenant-chat", "tenant-search"}, set(found)
    assert {a["labels"]["pod"] for a in found["tenant-chat"]} == {"chat-0"}
    assert {a["labels"]["pod"] for a in found["tenant-search"]} == {"search-0"}
    assert not [r for r in stack.sink.received if r.startswith("sre-") and
                any("Xid" in a["labels"]["alertname"] for a in stack.sink.alerts(r))]  # fmt: skip
