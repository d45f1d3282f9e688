"""The recording rules that mixin/recording.py generates into alerts/gpuwork.rules.yml,
checked with promtool.

(a) `promtool check rules` accepts the file.
(b) Make both agree: the exporter runs end to end on the simulated `mixed` node, priced,
for an hour and a bit (the real pieces, as in test_truth.py). The samples it serves after
each collection become the input of a promtool unit test, which evaluates every rule at
the end; each must give what an independent Python reading of the same samples gives
(Prometheus's `increase()` extrapolation included). The Python reading in turn matches
the scenario's ground truth: tokens per GPU-hour per tenant within 1%.
(c) The same agreement on a synthetic history with what the mixed node lacks (a pod on
two GPU models serving two models, a counter reset, pods and devices that come and go,
a MIG GPU whose instances report different activity, a time-sliced share, and two
clusters in one store).

Every input series carries the job label of the mixin's `job_selector`, as a scrape of
the exporter would, so the rules' selectors match; the synthetic history's second node
also carries a cluster label, which every rule must keep.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from exporter.exposition.families import build_families
from exporter.model import DeviceState, NodeSnapshot
from mixin.config import CONFIG
from simulator.bodies.faults import BodyFault
from simulator.node import pod_key
from simulator.scenario import (
    EngineBodyFault,
    ExporterRestartFault,
    Fault,
    Scenario,
    load_scenario,
    parse_device_ref,
)
from simulator.truth import pod_energy
from simulator.work import tenant_gpu_seconds_held, tenant_tokens
from simulator.work import true_tokens as pod_true_tokens
from tests.support.exporter_run import INTERVAL, Run, exporter_on_mixed
from tests.support.paths import REPO
from tests.support.programs import promtool

RULES = REPO / "alerts" / "gpuwork.rules.yml"
_job = re.fullmatch(r'(\w+)="([^"]*)"', CONFIG.job_selector)
assert _job, f"the tests give input series a job label from {CONFIG.job_selector!r}"
JOB = {_job[1]: _job[2]}  # the label every input series carries, as a scrape would give
CLUSTER = CONFIG.cluster_label  # every rule keeps it
PRICES = (("*H100*", 4.0), ("*H200*", 5.0), ("*A100*", 2.0), ("*", 1.0))
SERIES = {  # what the rules read
    "gpuwork_tokens_total",
    "gpuwork_engine_requests_finished_total",
    "gpuwork_device_state_seconds_total",
    "gpuwork_device_allocation",
    "gpuwork_device_gpu_fraction",
    "gpuwork_device_hourly_cost",
    "gpuwork_device_info",
    "gpuwork_gpu_info",
    "gpuwork_device_sm_active_ratio",
    "gpuwork_device_energy_joules_total",
    "gpuwork_device_energy_estimated_joules_total",
}
ENERGY = ("gpuwork_device_energy_joules_total", "gpuwork_device_energy_estimated_joules_total")
WASTE = {DeviceState.ALLOCATED_IDLE, DeviceState.ALLOCATED_NO_PROCESS}

# Samples at 0, 10, ..., 3700 s of promtool's time. Rules are evaluated every 65 s, so at
# 3705 s: the hour (105, 3705] lies inside the data and its edges fall between samples,
# where Prometheus 2 (closed range) and 3 (left-open range) select the same samples.
STEPS = 371
EVAL_INTERVAL, EVAL, RANGE, LOOKBACK = 65, 3705, 3600, 300
START = EVAL - RANGE

Labels = tuple[tuple[str, str], ...]  # sorted, without empty values (Prometheus drops them)
Points = list[tuple[float, float]]
Result = dict[Labels, float]


def labelled(**labels: str) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items() if v))


# -- the exporter, priced ------------------------------------------------------------------


@pytest.fixture
async def priced(tmp_path: Path) -> AsyncIterator[Run]:
    """test_truth's `mixed` run, with prices per GPU model."""
    async with exporter_on_mixed(tmp_path, PRICES) as run:
        yield run


def exposed(snapshot: NodeSnapshot) -> dict[tuple[str, Labels], float]:
    """The samples of SERIES the exporter serves for one snapshot, as scraped (job label)."""
    return {
        (s.name, labelled(**s.labels, **JOB)): s.value
        for family in build_families(snapshot)
        for s in family.samples
        if s.name in SERIES
    }


async def record(run: Run) -> dict[tuple[str, Labels], list[float | None]]:
    """Every series over STEPS collections, INTERVAL apart; None where it was not served
    (the exporter down for a restart)."""
    history: defaultdict[tuple[str, Labels], list[float | None]] = defaultdict(
        lambda: [None] * STEPS
    )
    for step in range(STEPS):
        published = len(run.published)
        await run.collect(0)  # one collection, then the clock moves on
        if len(run.published) == published:
            continue
        for key, value in exposed(run.published[-1]).items():
            history[key][step] = value
    return dict(history)


# -- PromQL, the little the rules use, read independently ---------------------------------


def increase(points: Points) -> float | None:
    """`increase(x[RANGE])` at EVAL over a window's points: Prometheus's extrapolatedRate."""
    if len(points) < 2:
        return None
    (first_t, first), (last_t, last) = points[0], points[-1]
    result = last - first + sum(a for (_, a), (_, b) in pairwise(points) if b < a)  # resets
    sampled = last_t - first_t
    average = sampled / (len(points) - 1)
    to_start, to_end = first_t - START, EVAL - last_t
    if result > 0 and first >= 0:  # a counter is never extrapolated below zero
        to_start = min(to_start, sampled * first / result)
    threshold = 1.1 * average
    to_start = to_start if to_start < threshold else average / 2
    to_end = to_end if to_end < threshold else average / 2
    return result * (sampled + to_start + to_end) / sampled


class Samples:
    """The recorded history, read at EVAL as PromQL reads it."""

    def __init__(self, history: Mapping[tuple[str, Labels], list[float | None]]) -> None:
        self.points: dict[tuple[str, Labels], Points] = {
            key: [(i * INTERVAL, v) for i, v in enumerate(values) if v is not None]
            for key, values in history.items()
        }

    def _select(self, name: str, since: float) -> Iterator[tuple[dict[str, str], Points]]:
        for (n, labels), points in self.points.items():
            inside = [(t, v) for t, v in points if since < t <= EVAL]
            if n == name and inside:
                yield dict(labels), inside

    def window(self, name: str) -> Iterator[tuple[dict[str, str], Points]]:
        """`name[1h]`"""
        return self._select(name, START)

    def last(self, name: str) -> Iterator[tuple[dict[str, str], float]]:
        """`last_over_time(name[1h])`"""
        return ((labels, points[-1][1]) for labels, points in self._select(name, START))

    def now(self, name: str) -> Iterator[tuple[dict[str, str], float]]:
        """`name`, an instant vector (5 minutes' lookback)"""
        return ((labels, points[-1][1]) for labels, points in self._select(name, EVAL - LOOKBACK))


def sum_by(rows: Iterable[tuple[Mapping[str, str], float]], *names: str) -> Result:
    totals: defaultdict[Labels, float] = defaultdict(float)
    for labels, value in rows:
        totals[labelled(**{n: labels.get(n, "") for n in names})] += value
    return dict(totals)


def ratio(numerator: Result, denominator: Result, scale: float = 1.0) -> Result:
    """`numerator / (denominator > 0) * scale`"""
    return {
        k: v / denominator[k] * scale for k, v in numerator.items() if denominator.get(k, 0) > 0
    }


def expected_rules(samples: Samples) -> dict[str, Result]:
    """What each rule should record at EVAL, computed here from the same samples."""
    C = CLUSTER  # noqa: N806  (kept in every aggregation)

    def key(labels: Mapping[str, str], *names: str) -> Labels:
        return labelled(**{n: labels.get(n, "") for n in (C, *names)})

    model_of_gpu = {lb["gpu_uuid"]: lb["model_name"] for lb, _ in samples.last("gpuwork_gpu_info")}
    cluster_of = {lb["device"]: lb.get(C, "") for lb, _ in samples.last("gpuwork_device_info")}
    where = {  # device -> (node, GPU model)
        lb["device"]: (lb["node"], model_of_gpu[lb["gpu_uuid"]])
        for lb, _ in samples.last("gpuwork_device_info")
        if lb["gpu_uuid"] in model_of_gpu
    }
    fraction = {lb["device"]: v for lb, v in samples.last("gpuwork_device_gpu_fraction")}
    gpu_hour = {  # price of one GPU-hour of each device's GPU model
        lb["device"]: v / fraction[lb["device"]]
        for lb, v in samples.last("gpuwork_device_hourly_cost")
        if lb["device"] in fraction
    }

    # per pod
    tokens: list[tuple[dict[str, str], float]] = []
    for labels, points in samples.window("gpuwork_tokens_total"):
        if (n := increase(points)) is not None:
            tokens.append((labels, n))
    held: list[tuple[dict[str, str], float]] = []  # GPU-seconds, with node and model_name
    spent: list[tuple[dict[str, str], float]] = []  # their cost
    for labels, points in samples.window("gpuwork_device_state_seconds_total"):
        device = labels["device"]
        if labels["state"] == DeviceState.UNALLOCATED or (n := increase(points)) is None:
            continue
        if device in where:
            node, model_name = where[device]
            held.append(({**labels, "node": node, "model_name": model_name}, n))
        if device in gpu_hour:
            spent.append((labels, n * gpu_hour[device] / 3600))
    wasted_held = [(labels, v) for labels, v in held if labels["state"] in WASTE]
    wasted_spent = [(labels, v) for labels, v in spent if labels["state"] in WASTE]
    requests = [
        (labels, n)
        for labels, points in samples.window("gpuwork_engine_requests_finished_total")
        if (n := increase(points)) is not None
    ]

    pod = (C, "namespace", "pod", "tenant")
    pod_tokens, pod_held = sum_by(tokens, *pod), sum_by(held, *pod)
    tenant_tokens, tenant_held = sum_by(tokens, C, "tenant"), sum_by(held, C, "tenant")
    tenant_cost = sum_by(spent, C, "tenant")
    tenant_requests = sum_by(requests, C, "tenant")

    # by the engine's model (and by tenant and model): each pod's GPU-seconds split evenly
    # among its models
    pod_models: defaultdict[Labels, set[str]] = defaultdict(set)
    serving_pods: defaultdict[Labels, set[Labels]] = defaultdict(set)  # (tenant, model): pods
    for labels, _ in tokens:
        pod_models[key(labels, "namespace", "pod")].add(labels.get("model", ""))
        serving_pods[key(labels, "tenant", "model")].add(key(labels, "namespace", "pod"))
    seconds_of_pod = sum_by(held, C, "namespace", "pod")

    def held_for_model(of_pods: Mapping[Labels, set[Labels]]) -> Result:
        return {
            k: sum(seconds_of_pod[p] / len(pod_models[p]) for p in pods if p in seconds_of_pod)
            for k, pods in of_pods.items()
        }

    by_model: defaultdict[Labels, set[Labels]] = defaultdict(set)
    for k, pods in serving_pods.items():
        by_model[key(dict(k), "model")] |= pods
    model_ratio = ratio(sum_by(tokens, C, "model"), held_for_model(by_model), 3600)

    # by GPU model and by node: each pod's tokens split as its GPU-seconds were
    def where_tokens_went(label: str) -> Result:
        tokens_of_pod = sum_by(tokens, C, "namespace", "pod")
        whole = sum_by(held, C, "namespace", "pod")
        parts = sum_by(held, C, "namespace", "pod", label)
        out: defaultdict[Labels, float] = defaultdict(float)
        for k, seconds in parts.items():
            labels = dict(k)
            of_pod = key(labels, "namespace", "pod")
            if of_pod in tokens_of_pod and seconds > 0:  # then whole[of_pod] > 0 too
                share = seconds / whole[of_pod]
                out[key(labels, label)] += tokens_of_pod[of_pod] * share
        return ratio(dict(out), sum_by(held, C, label), 3600)

    hourly_cost = {lb["device"]: v for lb, v in samples.now("gpuwork_device_hourly_cost")}
    fraction_now = {lb["device"]: v for lb, v in samples.now("gpuwork_device_gpu_fraction")}
    allocation = list(samples.now("gpuwork_device_allocation"))
    holding = [
        (labels, share * hourly_cost[labels["device"]])
        for labels, share in allocation
        if labels["device"] in hourly_cost
    ]
    holding_gpus = [
        (labels, share * fraction_now[labels["device"]])
        for labels, share in allocation
        if labels["device"] in fraction_now
    ]

    # a GPU's SM activity: its devices' activity, weighted by GPU fraction
    gpu_of = {lb["device"]: lb for lb, _ in samples.now("gpuwork_device_info")}
    active: defaultdict[Labels, float] = defaultdict(float)
    reporting: defaultdict[Labels, float] = defaultdict(float)
    for labels, value in samples.now("gpuwork_device_sm_active_ratio"):
        device = labels["device"]
        if device in gpu_of and device in fraction_now:
            gpu = key(gpu_of[device], "node", "gpu_uuid")
            active[gpu] += value * fraction_now[device]
            reporting[gpu] += fraction_now[device]

    energy = energy_rules(samples, tokens, held)
    return {
        **energy,
        "device:gpuwork_device_gpu_model:last1h": {
            labelled(**{C: cluster_of[d]}, device=d, node=node, model_name=m): 1.0
            for d, (node, m) in where.items()
        },
        "device:gpuwork_gpu_hourly_cost:last1h": {
            labelled(**{C: cluster_of.get(d, "")}, device=d): v for d, v in gpu_hour.items()
        },
        "namespace_pod_model:gpuwork_tokens:increase1h": sum_by(tokens, *pod, "model"),
        "namespace_pod_state:gpuwork_device_state_seconds:increase1h": sum_by(
            held, *pod, "state", "node", "model_name"
        ),
        "namespace_pod_state:gpuwork_cost:increase1h": sum_by(spent, *pod, "state"),
        "namespace_pod:gpuwork_tokens_per_gpu_hour:ratio_rate1h": ratio(pod_tokens, pod_held, 3600),
        "tenant:gpuwork_tokens:increase1h": tenant_tokens,
        "tenant:gpuwork_gpu_seconds_held:increase1h": tenant_held,
        "tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h": ratio(tenant_tokens, tenant_held, 3600),
        "model:gpuwork_tokens_per_gpu_hour:ratio_rate1h": model_ratio,
        "model_name:gpuwork_tokens_per_gpu_hour:ratio_rate1h": where_tokens_went("model_name"),
        "node:gpuwork_tokens_per_gpu_hour:ratio_rate1h": where_tokens_went("node"),
        "tenant_model:gpuwork_tokens_per_gpu_hour:ratio_rate1h": ratio(
            sum_by(tokens, C, "tenant", "model"), held_for_model(serving_pods), 3600
        ),
        "tenant_model:gpuwork_fleet_tokens_per_gpu_hour:ratio_rate1h": {
            k: model_ratio[key(dict(k), "model")]
            for k in serving_pods
            if key(dict(k), "model") in model_ratio
        },
        "tenant:gpuwork_gpu_seconds_wasted:increase1h": sum_by(wasted_held, C, "tenant"),
        "tenant:gpuwork_gpu_fraction_held:sum": sum_by(holding_gpus, C, "tenant"),
        "tenant:gpuwork_hourly_cost:sum": sum_by(holding, C, "tenant"),
        "tenant:gpuwork_cost:increase1h": tenant_cost,
        "tenant:gpuwork_cost_wasted:increase1h": sum_by(wasted_spent, C, "tenant"),
        "tenant:gpuwork_cost_per_million_tokens:ratio_rate1h": ratio(
            tenant_cost, tenant_tokens, 1e6
        ),
        "tenant:gpuwork_engine_requests_finished:increase1h": tenant_requests,
        "tenant:gpuwork_cost_per_request:ratio_rate1h": ratio(tenant_cost, tenant_requests),
        "gpu_uuid:gpuwork_device_sm_active_ratio:fraction_weighted": ratio(
            dict(active), dict(reporting)
        ),
    }


def energy_rules(
    samples: Samples,
    tokens: list[tuple[dict[str, str], float]],
    held: list[tuple[dict[str, str], float]],
) -> dict[str, Result]:
    """The energy rules, computed here: each device's energy split among its
    holders as its GPU-seconds were; joules per 1,000 tokens of engine pods whose energy
    is known."""
    C = CLUSTER  # noqa: N806

    def key(labels: Mapping[str, str], *names: str) -> Labels:
        return labelled(**{n: labels.get(n, "") for n in (C, *names)})

    model_of_gpu = {lb["gpu_uuid"]: lb["model_name"] for lb, _ in samples.last("gpuwork_gpu_info")}
    where = {
        lb["device"]: (lb["node"], model_of_gpu[lb["gpu_uuid"]])
        for lb, _ in samples.last("gpuwork_device_info")
        if lb["gpu_uuid"] in model_of_gpu
    }
    used: defaultdict[Labels, float] = defaultdict(float)  # (cluster, device) -> joules
    for name in ENERGY:
        for labels, points in samples.window(name):
            if (n := increase(points)) is not None:
                used[key(labels, "device")] += n
    device_seconds: defaultdict[Labels, float] = defaultdict(float)  # every state, unallocated too
    pod_seconds: defaultdict[Labels, float] = defaultdict(float)  # (cluster, pod..., device)
    for labels, points in samples.window("gpuwork_device_state_seconds_total"):
        if (n := increase(points)) is None:
            continue
        device_seconds[key(labels, "device")] += n
        if labels["state"] != DeviceState.UNALLOCATED:
            pod_seconds[key(labels, "namespace", "pod", "tenant", "device")] += n
    rows: list[tuple[dict[str, str], float]] = []  # a pod's joules on one device
    for k, seconds in pod_seconds.items():
        labels = dict(k)
        device = key(labels, "device")
        if device_seconds[device] > 0 and device in used and labels["device"] in where:
            node, model_name = where[labels["device"]]
            share = seconds / device_seconds[device]
            rows.append(({**labels, "node": node, "model_name": model_name}, share * used[device]))

    pod = (C, "namespace", "pod", "tenant")
    with_tokens = {key(labels, "namespace", "pod") for labels, _ in tokens}
    with_energy = {key(labels, "namespace", "pod") for labels, _ in rows}
    engine_energy = [(lb, v) for lb, v in rows if key(lb, "namespace", "pod") in with_tokens]
    known_tokens = [(lb, v) for lb, v in tokens if key(lb, "namespace", "pod") in with_energy]

    # by model: each pod's energy split evenly among the models it serves
    energy_of_pod = sum_by(rows, C, "namespace", "pod")
    models_of_pod: defaultdict[Labels, set[str]] = defaultdict(set)
    for labels, _ in tokens:
        models_of_pod[key(labels, "namespace", "pod")].add(labels.get("model", ""))
    model_energy: defaultdict[Labels, float] = defaultdict(float)
    for p, models in models_of_pod.items():
        if p in energy_of_pod:
            for model in models:
                model_energy[key({**dict(p), "model": model}, "model")] += energy_of_pod[p] / len(
                    models
                )
    # by engine: a pod's one engine, from its token series
    engine_of_pod = {key(lb, "namespace", "pod"): lb["engine"] for lb, _ in tokens}
    by_engine: defaultdict[Labels, float] = defaultdict(float)
    for p, joules in energy_of_pod.items():
        if p in engine_of_pod:
            by_engine[key({**dict(p), "engine": engine_of_pod[p]}, "engine")] += joules
    # by GPU model: each pod's tokens split as its GPU-seconds were, where there is energy
    tokens_of_pod = sum_by(tokens, C, "namespace", "pod")
    whole = sum_by(held, C, "namespace", "pod")
    parts = sum_by(held, C, "namespace", "pod", "model_name")
    energy_at = {key(lb, "namespace", "pod", "model_name") for lb, _ in rows}
    gpu_model_tokens: defaultdict[Labels, float] = defaultdict(float)
    for k, seconds in parts.items():
        labels = dict(k)
        of_pod = key(labels, "namespace", "pod")
        if of_pod in tokens_of_pod and seconds > 0 and k in energy_at:
            gpu_model_tokens[key(labels, "model_name")] += (
                tokens_of_pod[of_pod] * seconds / whole[of_pod]
            )

    return {
        "namespace_pod:gpuwork_energy_joules:increase1h": sum_by(rows, *pod, "node", "model_name"),
        "tenant:gpuwork_energy_joules:increase1h": sum_by(rows, C, "tenant"),
        "tenant:gpuwork_joules_per_1k_tokens:ratio_rate1h": ratio(
            sum_by(engine_energy, C, "tenant"), sum_by(known_tokens, C, "tenant"), 1000
        ),
        "model:gpuwork_joules_per_1k_tokens:ratio_rate1h": ratio(
            {k: v for k, v in model_energy.items() if v > 0},
            sum_by(known_tokens, C, "model"),
            1000,
        ),
        "engine:gpuwork_joules_per_1k_tokens:ratio_rate1h": ratio(
            dict(by_engine), sum_by(known_tokens, C, "engine"), 1000
        ),
        "model_name:gpuwork_joules_per_1k_tokens:ratio_rate1h": ratio(
            sum_by(engine_energy, C, "model_name"), dict(gpu_model_tokens), 1000
        ),
    }


# -- promtool's side -------------------------------------------------------------------------


def series(name: str, labels: Labels) -> str:
    return name + "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in labels) + "}"


def number(value: float) -> str:
    assert math.isfinite(value), value
    return repr(value)  # the shortest text that reads back as the same float


def agrees(rule: str) -> str:
    """A PromQL expression that is empty when the rule recorded exactly the expected series,
    each within 1e-9 of its expected value (relative, or absolute near 0)."""
    want = f'gpuwork_test_expected{{rule="{rule}"}}'
    return (
        f"(abs({rule} - ignoring (rule) {want}) > ignoring (rule) 1e-9 * (abs({want}) + 1))"
        f" or ({rule} unless ignoring (rule) {want})"
        f" or ({want} unless ignoring (rule) {rule})"
    )


def unit_test(
    history: Mapping[tuple[str, Labels], list[float | None]], expected: Mapping[str, Result]
) -> dict[str, object]:
    inputs = [
        {"series": series(name, labels),
         "values": " ".join("_" if v is None else number(v) for v in values)}
        for (name, labels), values in sorted(history.items())
    ]  # fmt: skip
    at_the_end = f"_x{STEPS - 1} "  # promtool reads it at EVAL, within its lookback
    inputs += [
        {"series": series("gpuwork_test_expected", (("rule", rule), *labels)),
         "values": at_the_end + number(value)}
        for rule, results in expected.items()
        for labels, value in results.items()
    ]  # fmt: skip
    return {
        "rule_files": [str(RULES)],
        "evaluation_interval": f"{EVAL_INTERVAL}s",
        "tests": [
            {
                "interval": f"{INTERVAL:g}s",
                "input_series": inputs,
                "promql_expr_test": [
                    {"expr": agrees(rule), "eval_time": f"{EVAL}s", "exp_samples": []}
                    for rule in expected
                ],
            }
        ],
    }


def promtool_agrees(
    tool: str,
    history: Mapping[tuple[str, Labels], list[float | None]],
    expected: Mapping[str, Result],
    where: Path,
) -> None:
    """promtool evaluates every rule on `history`; each gives the expected series."""
    recorded = [
        r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
    ]
    assert sorted(recorded) == sorted(expected)  # every rule is checked...
    assert all(expected.values()), [r for r, results in expected.items() if not results]
    test_file = where / "useful-work.test.yml"  # ... on something
    test_file.write_text(json.dumps(unit_test(history, expected)))  # JSON is YAML
    result = subprocess.run(
        [tool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-6000:]


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.integration
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.slow
async def test_the_rules_give_what_the_samples_and_the_truth_give(
    priced: Run, tmp_path: Path
) -> None:
    tool = promtool()
    history = await record(priced)
    expected = expected_rules(Samples(history))

    await asyncio.to_thread(promtool_agrees, tool, history, expected, tmp_path)

    # the Python side agrees with the truth over the same hour of the simulation
    sim = priced.sim
    t0 = priced.times[0]  # promtool's time 0
    true_tokens = tenant_tokens(sim.node, t0 + START, t0 + EVAL, kind="total")
    true_held = tenant_gpu_seconds_held(sim.node, t0 + START, t0 + EVAL)
    ours = {dict(k)["tenant"]: v for k, v in
            expected["tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h"].items()}  # fmt: skip
    truth = {t: true_tokens.get(t, 0.0) / (held / 3600) for t, held in true_held.items()}
    assert {t for t, v in ours.items() if v > 0} >= {"chat", "ads", "search"}
    for tenant, value in ours.items():
        assert value == pytest.approx(truth[tenant], rel=0.01), (tenant, ours, truth)
    assert ours["research"] == truth["research"] == 0  # engines that never served
    assert "batch" not in ours  # no engine: no tokens per GPU-hour, rather than 0
    (node,) = expected["node:gpuwork_tokens_per_gpu_hour:ratio_rate1h"].values()
    whole = sum(true_tokens.values()) / (sum(true_held.values()) / 3600)
    assert node == pytest.approx(whole, rel=0.01)

    # joules per 1,000 tokens per tenant: engine pods whose devices have an energy figure
    # (not the A100's MIG instances, which have no GPM), against their true energy
    true_energy = pod_energy(sim.node, t0 + START, t0 + EVAL)
    blind = {  # pods on a MIG instance of a GPU without GPM: no energy to split
        pod_key(pod)
        for pod in sim.node.scenario.pods
        for index, slot in map(parse_device_ref, pod.devices)
        if slot is not None and not sim.node.models[index].gpm
    }
    engine_pods = [pod for pod in sim.node.scenario.pods
                   if pod.engine is not None and pod_key(pod) not in blind]  # fmt: skip
    joules: defaultdict[str, float] = defaultdict(float)
    served: defaultdict[str, float] = defaultdict(float)
    for pod in engine_pods:
        joules[pod.tenant] += true_energy[pod_key(pod)]
        served[pod.tenant] += sum(pod_true_tokens(sim.node, pod, t0 + START, t0 + EVAL))
    per_1k = {dict(k)["tenant"]: v for k, v in
              expected["tenant:gpuwork_joules_per_1k_tokens:ratio_rate1h"].items()}  # fmt: skip
    truth_1k = {t: joules[t] / served[t] * 1000 for t in served if served[t] > 0}
    assert set(per_1k) == set(truth_1k) >= {"chat", "ads", "search"}
    for tenant, value in per_1k.items():
        assert value == pytest.approx(truth_1k[tenant], rel=0.01), (tenant, per_1k, truth_1k)

    # two roads to a tenant's cost agree: GPU-seconds held x price per GPU-hour over the
    # hour, and allocation x device price now (nobody came or went in the hour)
    cost = expected["tenant:gpuwork_cost:increase1h"]
    for key, per_hour in expected["tenant:gpuwork_hourly_cost:sum"].items():
        assert cost[key] == pytest.approx(per_hour, rel=0.005), key
    wasted = expected["tenant:gpuwork_cost_wasted:increase1h"]
    assert wasted[labelled(tenant="research")] == pytest.approx(cost[labelled(tenant="research")])
    assert 0 < sum(wasted.values()) < sum(cost.values())


# The synthetic history's second node is in another cluster of the same store.
CLUSTER_OF_NODE = {"n1": "", "n2": "east"}


def synthetic() -> dict[tuple[str, Labels], list[float | None]]:
    """What the mixed node lacks: a pod on two GPU models serving two models, a counter
    reset, a pod and its device gone mid-hour, a pod come mid-hour, two nodes in two
    clusters, a MIG GPU whose instances report different activity (one none), a pod
    holding half of a time-sliced MIG instance."""
    history: dict[tuple[str, Labels], list[float | None]] = {}

    def put(name: str, value: Callable[[int], float], since: int = 0, until: int = STEPS,
            **labels: str) -> None:  # fmt: skip
        history[(name, labelled(**labels, **JOB))] = [
            value(i) if since <= i < until else None for i in range(STEPS)
        ]

    gpus = {  # device: (gpu, model, node, fraction, price per GPU-hour, steps it lives)
        "GPU-a": ("GPU-a", "NVIDIA H100 80GB HBM3", "n1", 1.0, 4.0, (0, STEPS)),
        "MIG-b": ("GPU-b", "NVIDIA A100-SXM4-80GB", "n1", 3 / 7, 2.0, (0, STEPS)),
        "GPU-c": ("GPU-c", "NVIDIA L4", "n2", 1.0, 1.0, (0, 200)),
        "GPU-d": ("GPU-d", "NVIDIA H200", "n2", 1.0, 5.0, (0, STEPS)),
        "MIG-e1": ("GPU-e", "NVIDIA H200", "n2", 1 / 7, 5.0, (0, STEPS)),
        "MIG-e2": ("GPU-e", "NVIDIA H200", "n2", 3 / 7, 5.0, (0, STEPS)),
        "MIG-e3": ("GPU-e", "NVIDIA H200", "n2", 2 / 7, 5.0, (0, STEPS)),
    }
    for device, (gpu, model, node, fraction, price, (since, until)) in gpus.items():
        cluster = {CLUSTER: CLUSTER_OF_NODE[node]}
        put("gpuwork_gpu_info", lambda i: 1, since, until, gpu_uuid=gpu, model_name=model,
            node=node, mig_mode="enabled" if device[0] == "M" else "disabled",
            **cluster)  # fmt: skip
        put("gpuwork_device_info", lambda i: 1, since, until, device=device, gpu_uuid=gpu,
            node=node, **cluster)  # fmt: skip
        put("gpuwork_device_gpu_fraction", lambda i, f=fraction: f, since, until, device=device,
            **cluster)  # fmt: skip
        put("gpuwork_device_hourly_cost", lambda i, c=price * fraction: c, since, until,
            device=device, **cluster)  # fmt: skip

    def active(device: str, value: Callable[[int], float]) -> None:
        since, until = gpus[device][5]
        put("gpuwork_device_sm_active_ratio", value, since, until, device=device,
            **{CLUSTER: CLUSTER_OF_NODE[gpus[device][2]]})  # fmt: skip

    active("GPU-a", lambda i: 0.6)
    active("GPU-c", lambda i: 0.5)  # gone by the end: no figure
    active("GPU-d", lambda i: 0.1 + i / 1000)
    active("MIG-e1", lambda i: 0.9 if i > STEPS // 2 else 0.1)  # read now: 0.9
    active("MIG-e2", lambda i: 0.2)
    # MIG-b and MIG-e3 report no activity (an A100's instances have no GPM)

    def uses(device: str, watts: float, name: str = ENERGY[0], restart: int = STEPS) -> None:
        """The device's energy counter at `watts`, from 0 when the exporter starts and again
        at step `restart` (the exporter restarted)."""
        since, until = gpus[device][5]
        put(name, lambda i: watts * INTERVAL * (i - since if i < restart else i - restart),
            since, until, device=device,
            **{CLUSTER: CLUSTER_OF_NODE[gpus[device][2]]})  # fmt: skip

    uses("GPU-a", 500.0, restart=250)
    uses("GPU-c", 60.0)  # gone mid-hour
    uses("GPU-d", 300.0)
    uses("MIG-e1", 90.0, ENERGY[1])
    uses("MIG-e2", 150.0, ENERGY[1])
    # MIG-b has no energy (an A100 has no GPM to split by); MIG-e3 neither (no activity)

    def holds(pod: str, tenant: str, device: str, since: int = 0, until: int = STEPS,
              idle: range = range(0), no_process: range = range(0),
              share: float = 1.0) -> None:  # fmt: skip
        """The pod holds `share` of the device from step `since` to `until`: busy but in
        those steps."""
        gpu_seconds = INTERVAL * gpus[device][3] * share
        ids = {"namespace": tenant, "pod": pod, "tenant": tenant,
               CLUSTER: CLUSTER_OF_NODE[gpus[device][2]]}  # fmt: skip
        put("gpuwork_device_allocation", lambda i: share, since, until, device=device,
            container="main", **ids)  # fmt: skip

        def charged(steps: range) -> Callable[[int], float]:  # GPU-seconds up to step i
            return lambda i: gpu_seconds * sum(since < j <= i for j in steps)

        waiting, absent = charged(idle), charged(no_process)
        states = {
            "busy": lambda i: gpu_seconds * (i - since) - waiting(i) - absent(i),
            "allocated_idle": waiting,
            "allocated_no_process": absent,
        }
        for state, seconds in states.items():
            put("gpuwork_device_state_seconds_total", seconds, since, until, device=device,
                state=state, **ids)  # fmt: skip

    def serves(pod: str, tenant: str, model: str, tokens: Callable[[int], float],
               since: int = 0, until: int = STEPS, node: str = "n1") -> None:  # fmt: skip
        ids = {"namespace": tenant, "pod": pod, "tenant": tenant, "model": model,
               CLUSTER: CLUSTER_OF_NODE[node]}  # fmt: skip
        for kind, scale in (("generation", 1.0), ("prompt", 4.0)):
            put("gpuwork_tokens_total", lambda i, s=scale: s * tokens(i), since, until, type=kind,
                engine="vllm", **ids)  # fmt: skip
        put("gpuwork_engine_requests_finished_total", lambda i: tokens(i) / 200, since, until,
            engine="vllm", **ids)  # fmt: skip

    holds("p1", "t1", "GPU-a", idle=range(100, 130))
    holds("p1", "t1", "MIG-b")
    serves("p1", "t1", "m1", lambda i: 50.0 * (i if i < 250 else i - 250))  # reset at 250
    serves("p1", "t1", "m2", lambda i: 30.0 * i)
    holds("p2", "t2", "GPU-c", until=200, no_process=range(40, 90))
    serves("p2", "t2", "m1", lambda i: 40.0 * i, until=200, node="n2")
    holds("p3", "t2", "GPU-d", since=150, idle=range(150, 200))
    serves("p3", "t2", "", lambda i: 1000 + 20.0 * (i - 150), since=150, node="n2")  # TGI
    put("gpuwork_device_state_seconds_total", lambda i: INTERVAL * min(i, 150),
        device="GPU-d", state="unallocated", **{CLUSTER: "east"})  # fmt: skip
    holds("p4", "t3", "MIG-e1")
    serves("p4", "t3", "m1", lambda i: 25.0 * i, node="n2")
    holds("p5", "t3", "MIG-e2", share=0.5, idle=range(STEPS))  # a notebook, half the instance
    put("gpuwork_device_state_seconds_total", lambda i: INTERVAL * 3 / 7 * 0.5 * i,
        device="MIG-e2", state="unallocated", **{CLUSTER: "east"})  # its free half  # fmt: skip
    return history


@pytest.mark.integration
def test_the_rules_split_and_join_as_python_does(tmp_path: Path) -> None:
    tool = promtool()
    history = synthetic()
    expected = expected_rules(Samples(history))
    promtool_agrees(tool, history, expected, tmp_path)
    east = {CLUSTER: "east"}

    # p1 alone ran on GPU-a and MIG-b: both GPU models show its tokens per GPU-hour
    per_pod = expected["namespace_pod:gpuwork_tokens_per_gpu_hour:ratio_rate1h"]
    p1 = per_pod[labelled(namespace="t1", pod="p1", tenant="t1")]
    by_gpu = expected["model_name:gpuwork_tokens_per_gpu_hour:ratio_rate1h"]
    assert by_gpu[labelled(model_name="NVIDIA H100 80GB HBM3")] == pytest.approx(p1)
    assert by_gpu[labelled(model_name="NVIDIA A100-SXM4-80GB")] == pytest.approx(p1)
    # p1 serves m1 and m2: each model is charged half of p1's GPU time
    by_model = expected["model:gpuwork_tokens_per_gpu_hour:ratio_rate1h"]
    m2_tokens = expected["namespace_pod_model:gpuwork_tokens:increase1h"][
        labelled(namespace="t1", pod="p1", tenant="t1", model="m2")
    ]
    pod_seconds: defaultdict[str, float] = defaultdict(float)
    for k, v in expected["namespace_pod_state:gpuwork_device_state_seconds:increase1h"].items():
        pod_seconds[dict(k)["pod"]] += v
    p1_seconds = pod_seconds["p1"]
    assert by_model[labelled(model="m2")] == pytest.approx(m2_tokens / (p1_seconds / 2) * 3600)
    # the L4 left mid-hour: its GPU-seconds are still priced and placed
    assert labelled(model_name="NVIDIA L4", **east) in by_gpu
    # every aggregation kept the cluster: n2's figures are east's
    assert set(expected["node:gpuwork_tokens_per_gpu_hour:ratio_rate1h"]) == {
        labelled(node="n1"),
        labelled(node="n2", **east),
    }
    assert set(expected["tenant:gpuwork_tokens:increase1h"]) == {
        labelled(tenant="t1"),
        labelled(tenant="t2", **east),
        labelled(tenant="t3", **east),
    }

    # per tenant and model: t1 is m2's only server, with half of p1's GPU time
    per_tenant_model = expected["tenant_model:gpuwork_tokens_per_gpu_hour:ratio_rate1h"]
    fleet = expected["tenant_model:gpuwork_fleet_tokens_per_gpu_hour:ratio_rate1h"]
    assert per_tenant_model[labelled(tenant="t1", model="m2")] == pytest.approx(
        by_model[labelled(model="m2")]
    )
    # t3's figure for m1 counts p4 alone, not its notebook p5: above t3's own figure
    tokens = expected["namespace_pod_model:gpuwork_tokens:increase1h"]
    p4_tokens = tokens[labelled(namespace="t3", pod="p4", tenant="t3", model="m1", **east)]
    p2_tokens = tokens[labelled(namespace="t2", pod="p2", tenant="t2", model="m1", **east)]
    t3_m1 = per_tenant_model[labelled(tenant="t3", model="m1", **east)]
    assert t3_m1 == pytest.approx(p4_tokens / pod_seconds["p4"] * 3600)
    per_tenant = expected["tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h"]
    assert t3_m1 > per_tenant[labelled(tenant="t3", **east)]
    # the fleet's figure for m1 in east (p2 and p4), on each tenant of east serving m1;
    # n1's m1 (p1, half its time) is another cluster's fleet
    east_m1 = (p2_tokens + p4_tokens) / (pod_seconds["p2"] + pod_seconds["p4"]) * 3600
    assert fleet == {
        labelled(tenant="t1", model="m1"): by_model[labelled(model="m1")],
        labelled(tenant="t1", model="m2"): by_model[labelled(model="m2")],
        labelled(tenant="t2", model="m1", **east): pytest.approx(east_m1),
        labelled(tenant="t3", model="m1", **east): pytest.approx(east_m1),
        labelled(tenant="t2", **east): by_model[labelled(**east)],  # TGI: no model
    }

    # GPUs held now: t1 a whole GPU and a 3g instance; t2 the H200 (the L4 is gone);
    # t3 a 1g instance and half a 3g one
    assert expected["tenant:gpuwork_gpu_fraction_held:sum"] == {
        labelled(tenant="t1"): pytest.approx(1 + 3 / 7),
        labelled(tenant="t2", **east): pytest.approx(1.0),
        labelled(tenant="t3", **east): pytest.approx(1 / 7 + 3 / 14),
    }
    # energy: p5 holds half of MIG-e2 (the other half is free), so half its joules; p1's
    # are GPU-a's alone (MIG-b has no figure), its counter's restart at 250 a reset
    samples = Samples(history)
    used = {
        labels["device"]: increase(points)
        for name in ENERGY
        for labels, points in samples.window(name)
    }
    pods_energy = {dict(k)["pod"]: v for k, v in
                   expected["namespace_pod:gpuwork_energy_joules:increase1h"].items()}  # fmt: skip
    assert pods_energy["p5"] == pytest.approx(used["MIG-e2"] / 2)  # type: ignore[operator]
    assert pods_energy["p1"] == pytest.approx(used["GPU-a"])
    assert used["GPU-a"] == pytest.approx(500 * RANGE, rel=0.01)
    # joules per 1,000 tokens count engine pods: t3's is p4's alone, not its notebook's
    p4 = labelled(namespace="t3", pod="p4", tenant="t3", model="m1", **east)
    per_1k = expected["tenant:gpuwork_joules_per_1k_tokens:ratio_rate1h"]
    assert per_1k[labelled(tenant="t3", **east)] == pytest.approx(
        pods_energy["p4"] / tokens[p4] * 1000
    )
    assert set(expected["engine:gpuwork_joules_per_1k_tokens:ratio_rate1h"]) == {
        labelled(engine="vllm"),
        labelled(engine="vllm", **east),
    }

    # SM activity per GPU: a whole GPU's own; GPU-e's two reporting instances weighted
    # by their fraction, the silent one left out: (0.9 x 1/7 + 0.2 x 3/7) / (4/7)
    assert expected["gpu_uuid:gpuwork_device_sm_active_ratio:fraction_weighted"] == {
        labelled(node="n1", gpu_uuid="GPU-a"): pytest.approx(0.6),
        labelled(node="n2", gpu_uuid="GPU-d", **east): pytest.approx(0.1 + (STEPS - 1) / 1000),
        labelled(node="n2", gpu_uuid="GPU-e", **east): pytest.approx(0.375),
    }


# -- the headline through hostile engines and an exporter restart --------------------------

# (pod, at, seconds, what its engine serves wrong), on the node's clock, inside the hour.
# Dips only where the engine serves a process start time (vLLM): elsewhere a fall is
# taken as a restart, as docs/useful-work.md says.
HOSTILE = (
    ("chat/chat-llama-0", 900, 30, BodyFault.COUNTER_DIP),
    ("chat/chat-llama-0", 1500, 20, BodyFault.DUPLICATE_SERIES),
    ("chat/chat-llama-0", 2500, 20, BodyFault.TRUNCATED),
    ("chat/chat-h200-0", 1100, 20, BodyFault.NEGATIVE_VALUE),
    ("chat/chat-h200-0", 2800, 30, BodyFault.INVALID_UTF8),
    ("chat/chat-h200-0", 3300, 30, BodyFault.COUNTER_DIP),
    ("ads/ads-ranker-0", 1000, 30, BodyFault.INVALID_UTF8),
    ("ads/ads-ranker-0", 1800, 20, BodyFault.NAN_VALUE),
    ("ads/ads-a100-0", 1300, 20, BodyFault.TRUNCATED),
    ("ads/ads-a100-0", 2600, 30, BodyFault.DUPLICATE_SERIES),
    ("search/search-0", 1200, 20, BodyFault.NEGATIVE_VALUE),
    ("search/search-0", 2400, 20, BodyFault.HTML_200),
    ("search/search-l4-0", 3000, 20, BodyFault.NAN_VALUE),
    ("search/search-l4-0", 3100, 20, BodyFault.HTML_200),
)


def hostile_mixed() -> Scenario:
    """`mixed` with every hostile body the simulated engines can serve, and the exporter
    restarting after the engine restart at 600 s."""
    scenario = load_scenario("mixed")
    faults: list[Fault] = [
        EngineBodyFault(kind="engine_body", pod=pod, at=at, seconds=seconds, body=body)
        for pod, at, seconds, body in HOSTILE
    ]
    faults.append(ExporterRestartFault(kind="exporter_restart", at=2000))
    return scenario.model_copy(update={"faults": [*scenario.faults, *faults]})


def within(rule: str, truth: str, tolerance: float) -> str:
    """A PromQL expression that is empty when `rule` has exactly the tenants of `truth`,
    each within `tolerance` of it (relative)."""
    return (
        f"(abs({rule} - ignoring (rule) {truth}) > ignoring (rule) {tolerance} * {truth} + 1)"
        f" or ({rule} unless ignoring (rule) {truth}) or ({truth} unless ignoring (rule) {rule})"
    )


@pytest.mark.integration
@pytest.mark.slow
async def test_tokens_per_gpu_hour_stay_true_through_hostile_engines_and_an_exporter_restart(
    tmp_path: Path,
) -> None:
    tool = promtool()
    async with exporter_on_mixed(tmp_path, PRICES, hostile_mixed()) as run:
        history = await record(run)
        errors = run.published[-1].errors_total
    # the exporter was down for one collection, and no token series had any other gap
    gaps = {i for (name, _), values in history.items() if name == "gpuwork_tokens_total"
            for i, value in enumerate(values) if value is None}  # fmt: skip
    assert len(gaps) == 1 and 0 < min(gaps) * INTERVAL < EVAL
    # the faults were met and counted (by the second exporter, for those after its start)
    seen = {kind for (collector, kind), n in errors.items() if collector == "engines" and n}
    assert seen >= {"counter_dip", "invalid_utf8", "duplicate_series", "invalid_value"}

    sim, t0 = run.sim, run.times[0]
    true_tokens = tenant_tokens(sim.node, t0 + START, t0 + EVAL, kind="total")
    true_held = tenant_gpu_seconds_held(sim.node, t0 + START, t0 + EVAL)
    serving = {pod.tenant for pod in sim.node.scenario.pods if pod.engine is not None}
    per_gpu_hour = {t: true_tokens[t] / (true_held[t] / 3600) for t in serving}
    assert {t for t, v in per_gpu_hour.items() if v > 0} == {"chat", "ads", "search"}
    assert per_gpu_hour["research"] == 0  # engines that never served: 0, not absent
    checks = {
        "tenant:gpuwork_tokens:increase1h": {t: true_tokens[t] for t in serving},
        "tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h": per_gpu_hour,
    }
    inputs = [
        {"series": series(name, labels),
         "values": " ".join("_" if v is None else number(v) for v in values)}
        for (name, labels), values in sorted(history.items())
    ]  # fmt: skip
    for rule, truth in checks.items():
        inputs += [
            {"series": series("gpuwork_test_truth", labelled(rule=rule, tenant=tenant)),
             "values": f"_x{STEPS - 1} {number(value)}"}
            for tenant, value in truth.items()
        ]  # fmt: skip
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": f"{EVAL_INTERVAL}s",
        "tests": [{
            "interval": f"{INTERVAL:g}s",
            "input_series": inputs,
            "promql_expr_test": [
                {"expr": within(rule, f'gpuwork_test_truth{{rule="{rule}"}}', 0.01),
                 "eval_time": f"{EVAL}s", "exp_samples": []}
                for rule in checks
            ],
        }],
    }  # fmt: skip
    test_file = tmp_path / "hostile.test.yml"
    test_file.write_text(json.dumps(test))
    result = await asyncio.to_thread(
        subprocess.run, [tool, "test", "rules", str(test_file)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-6000:]
