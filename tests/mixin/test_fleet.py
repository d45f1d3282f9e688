"""Past one cluster: the rules and the fleet's figures across two clusters, end to end.

Two clusters, `east` and `west`, each with one simulated node (the exporter as a real
process, `--simulate`) scraped by its own real Prometheus, which loads the generated
recording rules and remote-writes everything into ONE real VictoriaMetrics under its
`cluster` external label. External labels are added on the way out, so inside each
Prometheus nothing carries `cluster`; in VictoriaMetrics every series does, the recorded
ones included, and the rules' `by (cluster, ...)` keeps the clusters apart there.

The same tenants live in both clusters on different hardware, so a tenant's fleet
figure (the sum of its numerators over the sum of its denominators) is far from the
average of its two clusters' ratios.

What is checked, and against what:
- raw counters in VictoriaMetrics (its increase() over a window, which does not
  extrapolate, equals its own raw deltas) against the two scenarios' truths over the
  same collections, per cluster and fleet-wide;
- the rules, computed in each Prometheus, against that Prometheus's own increase() of
  the same series (same extrapolation), as VictoriaMetrics holds them per cluster, and
  the fleet figure summed over clusters from the recorded parts.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pytest
import yaml

from harness.kube_apiserver import free_port
from harness.monitoring import ProgramMissingError, PromQL, prometheus, victoria_metrics
from mixin.config import CONFIG
from mixin.generate import generated
from simulator.node import SimulatedNode
from simulator.scenario import Scenario
from simulator.truth import tenant_state_seconds
from simulator.work import tenant_gpu_seconds_held, tenant_tokens
from tests.support.exporter_process import exporter

pytestmark = [pytest.mark.slow, pytest.mark.integration]

INTERVAL = 2.0  # the exporters' collections, the scrapes and the rule evaluations
RUN_SECONDS = 50.0  # from the exporters' start to the first query
STATE_WINDOW, BUSY_THRESHOLD = 10.0, 0.05  # the exporter's --state.window, default threshold
WASTE = ("allocated_idle", "allocated_no_process")
SELECTOR = CONFIG.job_selector
STAMPS = f'gpuwork_collector_last_success_timestamp_seconds{{{SELECTOR},collector="engines"}}'
TOKENS = f"gpuwork_tokens_total{{{SELECTOR}}}"
HELD = f'gpuwork_device_state_seconds_total{{{SELECTOR},state!="unallocated"}}'
WASTED = f'gpuwork_device_state_seconds_total{{{SELECTOR},state=~"{"|".join(WASTE)}"}}'
COUNTERS = (("tokens", TOKENS), ("held", HELD), ("wasted", WASTED))

# The same tenants in both clusters, on different hardware: chat holds a 3g.40gb slice of
# an H100 in east and a whole L4 in west, so its two ratios are far apart and so are its
# GPU-seconds; research wastes a whole H100 idle in east, a slice with no process in west.
SCENARIOS: dict[str, dict[str, Any]] = {
    "east": yaml.safe_load("""
name: fleet-east
node: sim-east
gpu_hourly_cost: {"*H100*": 4.0}
gpus:
  - model: H100-SXM5-80GB
  - model: H100-SXM5-80GB
    mig: [3g.40gb, 3g.40gb]
pods:
  - {name: research-0, namespace: research, tenant: research, devices: ["0"], load: idle}
  - {name: chat-0, namespace: chat, tenant: chat, devices: ["1/0"], load: busy}
  - {name: search-0, namespace: search, tenant: search, devices: ["1/1"], load: busy}
"""),
    "west": yaml.safe_load("""
name: fleet-west
node: sim-west
seed: 7
gpu_hourly_cost: {"*H100*": 4.0, "*L4*": 0.8}
gpus:
  - model: L4
  - model: H100-SXM5-80GB
    mig: [3g.40gb, 3g.40gb]
pods:
  - {name: chat-0, namespace: chat, tenant: chat, devices: ["0"], load: busy}
  - {name: search-0, namespace: search, tenant: search, devices: ["1/0"], load: busy}
  - {name: research-0, namespace: research, tenant: research, devices: ["1/1"],
     load: never-used, engine: null}
"""),
}
CLUSTERS = tuple(SCENARIOS)
TENANTS = ("chat", "research", "search")
SERVING = ("chat", "search")  # the tenants whose engines serve tokens


@dataclass
class Fleet:
    victoria: PromQL
    prometheus: dict[str, PromQL]  # by cluster
    wall_start: dict[str, float]  # each node's time 0
    until: float  # every query looks at samples up to here, all delivered


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    scratch = tmp_path_factory.mktemp("fleet")
    rules = scratch / "gpuwork.rules.yml"
    rules.write_text(generated(CONFIG)["alerts/gpuwork.rules.yml"])
    try:
        with contextlib.ExitStack() as running:
            vm = running.enter_context(victoria_metrics(scratch))
            proms, starts = {}, {}
            for cluster, scenario in SCENARIOS.items():
                own = scratch / cluster
                own.mkdir()
                (own / "node.yaml").write_text(yaml.safe_dump(scenario))
                port = free_port()
                starts[cluster] = running.enter_context(
                    exporter(own / "node.yaml", port, own, interval=INTERVAL)
                )
                proms[cluster] = running.enter_context(
                    prometheus(
                        own,
                        targets=[f"127.0.0.1:{port}"],
                        rule_files=[rules],
                        remote_write=f"{vm.base}/api/v1/write",
                        interval=f"{INTERVAL:g}s",
                        job=job_of(SELECTOR),
                        external_labels={"cluster": cluster},
                    )
                )
            time.sleep(max(RUN_SECONDS - (time.time() - min(starts.values())), 0))
            until = time.time()
            time.sleep(3.0)  # remote write sends within a second (batch_send_deadline)
            yield Fleet(vm, proms, starts, until)
    except ProgramMissingError as missing:
        pytest.fail(str(missing))


# -- helpers ---------------------------------------------------------------------------------


def job_of(selector: str) -> str:
    match = re.fullmatch(r'job="([^"]+)"', selector)
    assert match, f"the test scrapes one job: {selector}"
    return match[1]


def where(selector: str, **labels: str) -> str:
    """`selector` (`name{...}`) with `labels` added."""
    more = "".join(f',{name}="{value}"' for name, value in labels.items())
    return f"{selector[:-1]}{more}}}"


Samples = dict[int, float]  # one series' raw samples: millisecond timestamp -> value


def raw(store: PromQL, selector: str, until: float) -> list[tuple[dict[str, str], Samples]]:
    """Every series of `selector` with its raw samples of the last 10 minutes to `until`."""
    result = store.query(f"{selector}[10m]", time=f"{until:.3f}")
    return [
        (s["metric"], {round(float(ts) * 1000): float(v) for ts, v in s["values"]}) for s in result
    ]


def by_tenant(series: list[tuple[dict[str, str], Samples]], at: int) -> dict[str, float]:
    """The series' raw values at the scrape at `at` (ms), summed by tenant."""
    sums: defaultdict[str, float] = defaultdict(float)
    for metric, samples in series:
        if at in samples:
            sums[metric.get("tenant", "")] += samples[at]
    return dict(sums)


def values(store: PromQL, expr: str, when: float, label: str = "tenant") -> dict[str, float]:
    """`expr` at `when`, by `label` (the only label the expression keeps)."""
    result = store.query(expr, time=f"{when:.3f}")
    answer = {s["metric"].get(label, ""): float(s["value"][1]) for s in result}
    assert len(answer) == len(result), f"{expr}: several series per {label}: {result}"
    return answer


def quiet_moment(stamps: list[int], after: int, before: int) -> int:
    """The middle of the widest gap between scrapes (ms) in (after, before): a window edge
    there is at least half that gap from any sample, whichever side an edge includes."""
    points = sorted(t for t in stamps if after <= t <= before)
    gaps = [(b - a, (a + b) // 2) for a, b in pairwise(points)]
    width, middle = max(gaps)
    assert width >= INTERVAL * 1000 / 2 - 50, f"no quiet moment: {gaps}"
    return middle


def last_before(samples: Samples, at: int) -> int:
    return max(t for t in samples if t <= at)


def waste(seconds: dict[tuple[str, Any], float]) -> dict[str, float]:
    wasted: defaultdict[str, float] = defaultdict(float)
    for (tenant, state), value in seconds.items():
        if state in WASTE:
            wasted[tenant] += value
    return dict(wasted)


def ratio(tokens: float, held: float) -> float:
    return tokens / held * 3600


# -- what the test checks -----------------------------------------------------------------------


def test_each_prometheus_scrapes_its_own_node_and_victoria_metrics_holds_both(
    fleet: Fleet,
) -> None:
    for cluster, prom in fleet.prometheus.items():
        assert [float(s["value"][1]) for s in prom.query(f"up{{{SELECTOR}}}")] == [1.0]
        nodes = values(prom, "count by (node) (gpuwork_device_info)", fleet.until, "node")
        assert set(nodes) == {f"sim-{cluster}"}
        # external labels are added on the way out: nothing inside Prometheus has them,
        # not the recorded series either
        assert prom.query('count({cluster!=""})', time=f"{fleet.until:.3f}") == []
    vm, at = fleet.victoria, f"{fleet.until:.3f}"
    devices = vm.query("count by (cluster, node) (gpuwork_device_info)", time=at)
    pairs = {(s["metric"].get("cluster"), s["metric"].get("node")) for s in devices}
    assert pairs == {("east", "sim-east"), ("west", "sim-west")}
    # the rules' results arrive with their cluster's label, the same tenants in both
    recorded = vm.query("count by (cluster, tenant) (tenant:gpuwork_gpu_seconds_held:increase1h)",
                        time=at)  # fmt: skip
    pairs = {(s["metric"].get("cluster"), s["metric"].get("tenant")) for s in recorded}
    assert pairs == {(c, t) for c in CLUSTERS for t in TENANTS}


@dataclass
class Window:
    """One cluster's part of a window (start, end] of VictoriaMetrics: the scrapes at its
    edges, and what the exporter had collected at each (node seconds)."""

    first: int  # the last scrape at or before the window's start (ms)
    last: int  # the last scrape at or before its end (ms)
    collections: list[float]  # node seconds of the collections scraped from first to last


def test_fleet_and_cluster_figures_from_raw_counters_match_the_truth(fleet: Fleet) -> None:
    """Over one window of VictoriaMetrics, per cluster and for the fleet: its increase()
    is exactly its raw deltas (no extrapolation), and tokens per GPU-hour per tenant and
    overall, and the GPU-seconds wasted per tenant, are the scenarios' truth over the same
    collections within 1%. The fleet's tokens per GPU-hour is the sum of the clusters'
    tokens over the sum of their GPU-seconds, nowhere near the average of their ratios."""
    vm = fleet.victoria
    stamps = {c: raw(vm, where(STAMPS, cluster=c), fleet.until) for c in CLUSTERS}
    for cluster, series in stamps.items():
        assert len(series) == 1, (cluster, series)
    everything = [t for c in CLUSTERS for t in stamps[c][0][1]]
    begun, until = max(min(stamps[c][0][1]) for c in CLUSTERS), round(fleet.until * 1000)
    start = quiet_moment(everything, begun + 1_000, begun + 7_000)
    end = quiet_moment(everything, until - 6_000, until)
    span = f"[{end - start}ms]"
    windows: dict[str, Window] = {}
    for cluster in CLUSTERS:
        samples = stamps[cluster][0][1]
        first, last = last_before(samples, start), last_before(samples, end)
        collected = sorted({samples[t] for t in samples if first <= t <= last})
        windows[cluster] = Window(first, last, [t - fleet.wall_start[cluster] for t in collected])

    # what VictoriaMetrics answers, per cluster and for the fleet
    def increases(selector: str, by: str) -> dict[tuple[str, ...], float]:
        result = vm.query(f"sum by ({by}) (increase({selector}{span}))", time=f"{end / 1000:.3f}")
        return {tuple(s["metric"].get(k, "") for k in by.split(", ")): float(s["value"][1])
                for s in result}  # fmt: skip

    answered = {name: increases(selector, "cluster, tenant") for name, selector in COUNTERS}
    fleet_answer = {name: increases(selector, "tenant") for name, selector in COUNTERS}

    # ... is its own raw deltas
    counted: dict[str, dict[str, dict[str, float]]] = {}  # name -> cluster -> tenant -> delta
    for name, selector in COUNTERS:
        counted[name] = {}
        for cluster in CLUSTERS:
            series = raw(vm, where(selector, cluster=cluster), fleet.until)
            window = windows[cluster]
            at_first, at_last = by_tenant(series, window.first), by_tenant(series, window.last)
            counted[name][cluster] = {t: at_last[t] - at_first.get(t, 0.0) for t in at_last}
            for tenant, delta in counted[name][cluster].items():
                got = answered[name].get((cluster, tenant))
                assert got == pytest.approx(delta, rel=1e-9, abs=1e-9), (name, cluster, tenant)

    # ... and the truth over the same collections
    truths: dict[str, dict[str, dict[str, float]]] = {"tokens": {}, "held": {}, "wasted": {}}
    seen: dict[str, dict[str, float]] = {}
    for cluster in CLUSTERS:
        node = SimulatedNode(Scenario.model_validate(SCENARIOS[cluster]),
                             wall_start=fleet.wall_start[cluster])  # fmt: skip
        times = windows[cluster].collections
        t0, t1 = times[0], times[-1]
        truths["tokens"][cluster] = tenant_tokens(node, t0, t1, "total")
        truths["held"][cluster] = tenant_gpu_seconds_held(node, t0, t1)
        states = tenant_state_seconds(node, times, window=STATE_WINDOW,
                                      busy_threshold=BUSY_THRESHOLD)  # fmt: skip
        truths["wasted"][cluster] = waste(states)
        tokens, held = counted["tokens"][cluster], counted["held"][cluster]
        seen[cluster] = {}
        for tenant in SERVING:
            truth = ratio(truths["tokens"][cluster][tenant], truths["held"][cluster][tenant])
            seen[cluster][tenant] = ratio(tokens[tenant], held[tenant])
            assert seen[cluster][tenant] == pytest.approx(truth, rel=0.01), (cluster, tenant)
        overall = ratio(sum(tokens.values()), sum(held.values()))
        truth = ratio(sum(truths["tokens"][cluster].values()),
                      sum(truths["held"][cluster].values()))  # fmt: skip
        assert overall == pytest.approx(truth, rel=0.01), (cluster, overall, truth)
        for tenant in TENANTS:
            wasted = counted["wasted"][cluster].get(tenant, 0.0)
            truth = truths["wasted"][cluster].get(tenant, 0.0)
            assert wasted == pytest.approx(truth, rel=0.01, abs=1e-6), (cluster, tenant)
        assert truths["wasted"][cluster]["research"] > 0

    # the fleet: sums over clusters, divided last
    def fleet_sum(parts: dict[str, dict[str, float]], tenant: str | None = None) -> float:
        return sum(v for c in CLUSTERS for t, v in parts[c].items() if tenant in (None, t))

    for tenant in TENANTS:
        for name in ("tokens", "held", "wasted"):
            assert fleet_answer[name].get((tenant,), 0.0) == pytest.approx(
                fleet_sum(counted[name], tenant), rel=1e-9, abs=1e-9), (name, tenant)  # fmt: skip
        wasted, truth = fleet_sum(counted["wasted"], tenant), fleet_sum(truths["wasted"], tenant)
        assert wasted == pytest.approx(truth, rel=0.01, abs=1e-6), ("fleet waste", tenant)
    for tenant in SERVING:
        pooled = ratio(fleet_answer["tokens"][(tenant,)], fleet_answer["held"][(tenant,)])
        truth = ratio(fleet_sum(truths["tokens"], tenant), fleet_sum(truths["held"], tenant))
        assert pooled == pytest.approx(truth, rel=0.01), (tenant, pooled, truth)
    pooled = ratio(fleet_sum(counted["tokens"]), fleet_sum(counted["held"]))
    truth = ratio(fleet_sum(truths["tokens"]), fleet_sum(truths["held"]))
    assert pooled == pytest.approx(truth, rel=0.01), ("fleet", pooled, truth)
    # chat: the average of its clusters' ratios would be off by far more than 1%
    chat = ratio(fleet_answer["tokens"][("chat",)], fleet_answer["held"][("chat",)])
    average = sum(seen[c]["chat"] for c in CLUSTERS) / len(CLUSTERS)
    assert abs(average / chat - 1) > 0.2, (chat, average)


def last_sample(store: PromQL, selector: str, until: float) -> tuple[int, dict[str, float]]:
    """The latest evaluation of a recorded series in the store: (ms, value by tenant)."""
    series = raw(store, selector, until)
    assert series, f"nothing recorded: {selector}"
    at = max(max(samples) for _, samples in series)
    return at, by_tenant(series, at)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_the_rules_computed_in_each_prometheus_reach_victoria_metrics_per_cluster(
    fleet: Fleet, cluster: str
) -> None:
    """VictoriaMetrics holds each Prometheus's recorded series, the same values, with
    the cluster's label; each is the same series' increase() in that Prometheus (its
    extrapolation and all) within 1%, per tenant and over the cluster."""
    vm, prom = fleet.victoria, fleet.prometheus[cluster]
    mine = f'{{cluster="{cluster}"}}'
    recorded: dict[str, tuple[int, dict[str, float]]] = {}
    for rule in ("tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h",
                 "tenant:gpuwork_tokens:increase1h", "tenant:gpuwork_gpu_seconds_held:increase1h",
                 "tenant:gpuwork_gpu_seconds_wasted:increase1h"):  # fmt: skip
        at, stored = recorded[rule] = last_sample(vm, rule + mine, fleet.until)
        # the same samples (VictoriaMetrics keeps about 12 significant digits of a value)
        assert stored == pytest.approx(values(prom, rule, at / 1000), rel=1e-9), (rule, at)

    def increase(selector: str, at: int) -> dict[str, float]:
        return values(prom, f"sum by (tenant) (increase({selector}[1h]))", at / 1000)

    at, ratios = recorded["tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h"]
    tokens, held = increase(TOKENS, at), increase(HELD, at)
    # a rule may run before its evaluation time's last scrape is stored: one sample less
    for tenant in SERVING:
        assert ratios[tenant] == pytest.approx(ratio(tokens[tenant], held[tenant]), rel=0.01)
    at, wasted = recorded["tenant:gpuwork_gpu_seconds_wasted:increase1h"]
    expected = increase(WASTED, at)
    assert wasted["research"] > 0
    for tenant in TENANTS:
        assert wasted.get(tenant, 0.0) == pytest.approx(expected.get(tenant, 0.0), rel=0.01,
                                                         abs=1e-6), tenant  # fmt: skip
    # over the cluster: the sum of the tenants' parts, divided last
    at, tokens_recorded = recorded["tenant:gpuwork_tokens:increase1h"]
    held_at, held_recorded = recorded["tenant:gpuwork_gpu_seconds_held:increase1h"]
    assert held_at == at
    overall = vm.query(
        f"sum(tenant:gpuwork_tokens:increase1h{mine}) / sum(tenant:gpuwork_gpu_seconds_held"
        f":increase1h{mine}) * 3600", time=f"{at / 1000:.3f}")  # fmt: skip
    expected_overall = ratio(sum(increase(TOKENS, at).values()), sum(increase(HELD, at).values()))
    assert float(overall[0]["value"][1]) == pytest.approx(
        ratio(sum(tokens_recorded.values()), sum(held_recorded.values())), rel=1e-9
    )
    assert float(overall[0]["value"][1]) == pytest.approx(expected_overall, rel=0.01)


def test_the_fleet_figure_from_the_recorded_rules_sums_over_clusters(fleet: Fleet) -> None:
    """On VictoriaMetrics, over both clusters' recorded parts: tokens per GPU-hour per
    tenant and overall is the sum of the numerators over the sum of the denominators
    (within 1% of the same from each Prometheus's increase()), and waste per tenant is
    the sum of the clusters' waste; never an average of ratios."""
    vm = fleet.victoria
    tokens_rule, held_rule = (
        "tenant:gpuwork_tokens:increase1h",
        "tenant:gpuwork_gpu_seconds_held:increase1h",
    )
    wasted_rule = "tenant:gpuwork_gpu_seconds_wasted:increase1h"
    parts: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)  # rule -> cluster -> tenant
    expected: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)  # Prometheus's increase()
    when = 0
    for cluster in CLUSTERS:
        prom, mine = fleet.prometheus[cluster], f'{{cluster="{cluster}"}}'
        for rule, selector in ((tokens_rule, TOKENS), (held_rule, HELD), (wasted_rule, WASTED)):
            at, parts[rule][cluster] = last_sample(vm, rule + mine, fleet.until)
            when = max(when, at)
            expected[rule][cluster] = values(
                prom, f"sum by (tenant) (increase({selector}[1h]))", at / 1000
            )
    # the latest evaluation of both clusters: VictoriaMetrics looks back to each one's
    now = when / 1000
    pooled = values(
        vm, f"sum by (tenant) ({tokens_rule}) / sum by (tenant) ({held_rule}) * 3600", now
    )
    overall = values(vm, f"sum({tokens_rule}) / sum({held_rule}) * 3600", now)[""]
    wasted = values(vm, f"sum by (tenant) ({wasted_rule})", now)
    average = values(vm, "avg by (tenant) (tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h)", now)

    def total(
        source: dict[str, dict[str, dict[str, float]]], rule: str, tenant: str | None = None
    ) -> float:
        return sum(v for c in CLUSTERS for t, v in source[rule][c].items() if tenant in (None, t))

    for tenant in SERVING:
        assert pooled[tenant] == pytest.approx(
            ratio(total(parts, tokens_rule, tenant), total(parts, held_rule, tenant)), rel=1e-9
        )
        assert pooled[tenant] == pytest.approx(
            ratio(total(expected, tokens_rule, tenant), total(expected, held_rule, tenant)),
            rel=0.01,
        )
    assert overall == pytest.approx(
        ratio(total(parts, tokens_rule), total(parts, held_rule)), rel=1e-9
    )
    assert overall == pytest.approx(
        ratio(total(expected, tokens_rule), total(expected, held_rule)), rel=0.01
    )
    for tenant in TENANTS:
        assert wasted.get(tenant, 0.0) == pytest.approx(total(parts, wasted_rule, tenant), rel=1e-9)
        assert wasted.get(tenant, 0.0) == pytest.approx(
            total(expected, wasted_rule, tenant), rel=0.01, abs=1e-6
        )
    assert wasted["research"] > 0
    assert abs(average["chat"] / pooled["chat"] - 1) > 0.2, (pooled, average)
