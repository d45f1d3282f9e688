"""mixin/autoscaling.py: the autoscaling rules with promtool on a synthetic history, the
examples (KEDA ScaledObject, prometheus-adapter rule and HPA) as their APIs define them,
and their queries run against the real Prometheus of the shared stack
(tests/mixin/conftest.py), compared with the scenario's own demand.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixin import autoscaling
from mixin.config import CONFIG
from simulator.work import engine_stats
from tests.mixin.conftest import INTERVAL, ActionsStack
from tests.support.paths import REPO
from tests.support.programs import promtool

JOB = 'job="gpuwork-exporter"'
MODEL = autoscaling.EXAMPLE_MODEL


def examples() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    keda = yaml.safe_load((REPO / autoscaling.KEDA_PATH).read_text())
    adapter = list(yaml.safe_load_all((REPO / autoscaling.ADAPTER_PATH).read_text()))
    return keda, adapter


def recorded_names() -> set[str]:
    rules = yaml.safe_load((REPO / autoscaling.PATH).read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"]}


def test_the_keda_scaled_object_has_the_fields_keda_defines() -> None:
    keda, _ = examples()
    assert keda["apiVersion"] == "keda.sh/v1alpha1" and keda["kind"] == "ScaledObject"
    assert keda["spec"]["scaleTargetRef"]["name"] == keda["metadata"]["name"]
    (trigger,) = keda["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert set(meta) == {"serverAddress", "query", "threshold", "activationThreshold",
                         "ignoreNullValues"}  # fmt: skip
    # KEDA reads every metadata value as a string
    assert all(isinstance(v, str) for v in meta.values())
    assert float(meta["threshold"]) == CONFIG.autoscaling_target_in_flight
    assert float(meta["activationThreshold"]) == CONFIG.autoscaling_activation_in_flight
    assert meta["query"] == autoscaling.keda_query(autoscaling.EXAMPLE_NAMESPACE, MODEL)
    assert autoscaling.IN_FLIGHT in meta["query"] and autoscaling.IN_FLIGHT in recorded_names()


def test_the_adapter_rule_and_the_hpa_have_the_fields_their_apis_define() -> None:
    _, (config, hpa) = examples()
    (rule,) = config["rules"]
    assert set(rule) == {"seriesQuery", "resources", "name", "metricsQuery"}
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    assert rule["seriesQuery"].startswith(autoscaling.POD_IN_FLIGHT + "{")
    assert autoscaling.POD_IN_FLIGHT in recorded_names()
    assert rule["name"] == {"matches": f"^{autoscaling.POD_IN_FLIGHT}$",
                            "as": autoscaling.ADAPTER_METRIC}  # fmt: skip
    assert rule["metricsQuery"] == autoscaling.ADAPTER_METRICS_QUERY
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["kind"] == "HorizontalPodAutoscaler"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == autoscaling.ADAPTER_METRIC
    assert metric["pods"]["target"] == {
        "type": "AverageValue",
        "averageValue": f"{CONFIG.autoscaling_target_in_flight:g}",
    }


@pytest.mark.integration
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(REPO / autoscaling.PATH)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _series(name: str, **labels: str) -> str:
    return name + "{" + ", ".join([JOB, *(f'{k}="{v}"' for k, v in labels.items())]) + "}"


@pytest.mark.integration
def test_the_signals_on_a_synthetic_history_are_the_hand_computed_ones(tmp_path: Path) -> None:
    """Two replicas of one model in `chat` (one with a queue), one in `ads`; tokens and TTFT
    counters growing at round rates, so every value is worked out by hand below."""
    a = {"namespace": "chat", "pod": "chat-0", "tenant": "chat", "model": "m", "engine": "vllm"}
    b = {**a, "pod": "chat-1"}
    c = {"namespace": "ads", "pod": "ads-0", "tenant": "ads", "model": "m", "engine": "sglang"}
    inputs = []

    def put(name: str, values: str, **labels: str) -> None:
        inputs.append({"series": _series(name, **labels), "values": values})

    put("gpuwork_engine_requests_running", "40x10", **a)
    put("gpuwork_engine_requests_waiting", "6x10", **a)
    put("gpuwork_engine_requests_running", "20x10", **b)
    put("gpuwork_engine_requests_waiting", "0x10", **b)
    put("gpuwork_engine_requests_running", "5x10", **c)
    put("gpuwork_engine_requests_waiting", "0x10", **c)
    for labels, kv in ((a, 0.9), (b, 0.5), (c, 0.1)):
        put("gpuwork_engine_kv_cache_usage_ratio", f"{kv}x10", **labels)
    # one minute apart: 600 prompt and 150 generation tokens a minute per chat replica
    for labels in (a, b):
        put("gpuwork_tokens_total", "0+600x10", type="prompt", series="", **labels)
        put("gpuwork_tokens_total", "0+150x10", type="generation", series="", **labels)
        # 60 first tokens a minute, 54 of them within the SLO threshold (le="1.0")
        put("gpuwork_engine_time_to_first_token_seconds_bucket", "0+54x10", le="1.0",
            series="", **labels)  # fmt: skip
        put("gpuwork_engine_time_to_first_token_seconds_count", "0+60x10", series="", **labels)
    put("gpuwork_engine_cold_start_seconds", "42x10", **{k: a[k] for k in
        ("namespace", "pod", "tenant", "engine")})  # fmt: skip
    names = autoscaling.rate_names(CONFIG)
    chat = '{namespace="chat", model="m"}'
    expect = {  # rule selector: value
        f'{autoscaling.POD_IN_FLIGHT}{{pod="chat-0"}}': 46,
        f'{autoscaling.POD_IN_FLIGHT}{{pod="ads-0"}}': 5,
        autoscaling.IN_FLIGHT + chat: 66,
        autoscaling.REPLICAS + chat: 2,
        autoscaling.RUNNING_PER_REPLICA + chat: 30,
        autoscaling.WAITING_PER_REPLICA + chat: 3,
        autoscaling.KV_MAX + chat: 0.9,
        autoscaling.KV_AVG + chat: 0.7,
        names["prompt"] + chat: 2 * 600 / 60,
        names["generation"] + chat: 2 * 150 / 60,
        names["ttft"] + chat: 54 / 60,
        autoscaling.COLD_START + chat: 42,
        autoscaling.keda_query("chat", "m"): 66,
    }
    tests = [
        {"expr": f"sum({expr})" if "sum(" not in expr else expr, "eval_time": "5m",
         "exp_samples": [{"labels": "{}", "value": value}]}
        for expr, value in expect.items()
    ]  # fmt: skip
    test = tmp_path / "autoscaling.test.yml"
    test.write_text(json.dumps({
        "rule_files": [str(REPO / autoscaling.PATH)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": tests}],
    }))  # fmt: skip
    result = subprocess.run([promtool(), "test", "rules", str(test)], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


# -- the real Prometheus --------------------------------------------------------------------


def in_flight_truth(actions: ActionsStack, t: float) -> float:
    """Requests in flight of the chat deployment at t on the main node, from the scenario."""
    total = 0.0
    for pod in actions.main.scenario.pods:
        if pod.namespace == "chat" and pod.model == MODEL:
            stats = engine_stats(actions.main, pod, t)
            assert stats is not None and stats.requests_running is not None
            total += stats.requests_running + (stats.requests_waiting or 0.0)
    return total


@pytest.mark.slow
@pytest.mark.integration
def test_the_real_prometheus_gives_the_scenarios_demand_to_keda_and_the_adapter(
    actions: ActionsStack,
) -> None:
    """At every evaluation of the rules over the run, the example's KEDA query and the
    adapter's metricsQuery (its template filled as the adapter fills it for the HPA's pods)
    return the chat deployment's requests in flight as the scenario computes them at the
    collection Prometheus last scraped, and are above the threshold exactly when that is.
    Where a scrape lands between a rule's evaluation and its timestamp, the rule saw the
    scrape before: that one's truth is accepted, and counted."""
    keda, (adapter, _) = examples()
    meta = keda["spec"]["triggers"][0]["metadata"]
    threshold = float(meta["threshold"])
    pods = [p.name for p in actions.main.scenario.pods if p.namespace == "chat"]
    metrics_query = autoscaling.adapter_metrics_query(
        autoscaling.POD_IN_FLIGHT, f'namespace="chat",pod=~"{"|".join(pods)}"', "pod"
    )
    assert adapter["rules"][0]["metricsQuery"] == autoscaling.ADAPTER_METRICS_QUERY
    prom = actions.prometheus
    (series,) = prom.query(f'{autoscaling.IN_FLIGHT}{{namespace="chat"}}[10m]',
                           time=f"{actions.ready_at:.3f}")  # fmt: skip
    evaluations = [float(ts) for ts, _ in series["values"]]
    stamps = actions.stamps(actions.main.wall_start)
    exact = 0
    states: list[tuple[bool, bool]] = []  # (query above the threshold, scenario above it)
    for at in evaluations:
        (value,) = (float(s["value"][1]) for s in prom.query(meta["query"], time=f"{at:.3f}"))
        per_pod = prom.query(metrics_query, time=f"{at:.3f}")
        hpa_average = sum(float(s["value"][1]) for s in per_pod) / len(per_pod)
        scraped = [t for ts, t in stamps if ts <= at]
        truths = [in_flight_truth(actions, t) for t in scraped[-2:]]
        assert value in truths, (at, value, truths)
        assert hpa_average * len(pods) == value, (at, per_pod, value)
        exact += value == truths[-1]
        states.append((value > threshold, truths[-1] > threshold))
    assert exact >= 0.8 * len(evaluations), (exact, len(evaluations))
    assert len(evaluations) >= 0.8 * (max(evaluations) - min(evaluations)) / INTERVAL

    def crossings(which: int) -> list[int]:
        return [i for i in range(1, len(states)) if states[i][which] != states[i - 1][which]]

    # the scenario's demand crossed the threshold both ways, and the query crossed it at
    # the same evaluations (one later where the rule ran before that scrape was stored)
    query, scenario = crossings(0), crossings(1)
    assert len(scenario) >= 2 and len(query) == len(scenario), (query, scenario)
    assert all(q - s in (0, 1) for q, s in zip(query, scenario, strict=True)), (query, scenario)
