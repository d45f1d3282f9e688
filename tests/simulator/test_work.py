"""The useful-work model: exact token integrals, cold starts, restarts, tenants."""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import pairwise
from typing import Any

import pytest

from simulator.holdings import tenant_gpu_fractions
from simulator.loads import activity
from simulator.node import SimulatedNode, pod_key
from simulator.scenario import (
    BUILT_IN,
    DEFAULT_STARTED_BEFORE_SECONDS,
    PodSpec,
    Scenario,
    load_scenario,
)
from simulator.work import (
    GPU_SPEED,
    MEAN_OUTPUT_TOKENS,
    PEAK_GENERATION_TOKENS_PER_SECOND,
    PROMPT_TOKENS_PER_GENERATION_TOKEN,
    VLLM_ITL_BUCKETS,
    VLLM_TTFT_BUCKETS,
    capacity,
    engine_down_times,
    engine_life,
    engine_lives,
    engine_process_start,
    engine_process_start_time,
    engine_stats,
    engine_up,
    tenant_gpu_seconds_held,
    tenant_tokens,
    true_tokens,
)

WALL_START = 1_764_000_000.0
STEP = 0.25  # every boundary in these scenarios is a multiple: midpoint sums are exact


def node(scenario: str | dict[str, Any]) -> SimulatedNode:
    loaded = (
        load_scenario(scenario)
        if isinstance(scenario, str)
        else Scenario.model_validate({"name": "t", **scenario})
    )
    return SimulatedNode(loaded, clock=lambda: 0.0, wall_start=WALL_START)


def pod(sim: SimulatedNode, name: str) -> PodSpec:
    (found,) = [p for p in sim.scenario.pods if p.name == name]
    return found


# A node whose capacities change: a MIG re-partition gives p0 the whole GPU and leaves p1
# with nothing; a lost L4 stops q; r restarts twice; s shares a time-sliced GPU. p0, p1 and
# r start with the node (cold at t = 0); the others started 10 minutes before it (warm).
FAULTY: dict[str, Any] = {
    "seed": 5,
    "gpus": [
        {"model": "H100-SXM5-80GB", "mig": ["3g.40gb", "3g.40gb"]},
        {"model": "L4"},
        {"model": "A100-SXM4-80GB"},
        {"model": "H200-SXM5-141GB", "replicas": 4},
    ],
    "pods": [
        {"name": "p0", "namespace": "a", "tenant": "a", "devices": ["0/0"], "load": "busy",
         "started_before_seconds": 0},
        {"name": "p1", "namespace": "a", "tenant": "a", "devices": ["0/1"], "load": "busy",
         "cold_start_seconds": 12.5, "started_before_seconds": 0},
        {"name": "q", "namespace": "b", "tenant": "b", "devices": ["1"], "load": "busy",
         "engine": "tgi", "cold_start_seconds": 0},
        {"name": "r", "namespace": "b", "tenant": "b", "devices": ["2"], "load": "busy",
         "engine": "sglang", "started_before_seconds": 0},
        {"name": "s", "namespace": "c", "tenant": "c", "devices": ["3", "3"], "load": "busy"},
        {"name": "u", "namespace": "c", "tenant": "c", "devices": ["3"], "load": "idle"},
        {"name": "w", "namespace": "d", "tenant": "d", "devices": ["3"], "load": "busy",
         "engine": None},
    ],
    "faults": [
        {"kind": "mig_repartition", "at": 95, "gpu": 0, "mig": ["7g.80gb"]},
        {"kind": "gpu_lost", "at": 123.5, "gpu": 1},
        {"kind": "engine_restart", "at": 200, "pod": "b/r", "down_seconds": 7.5},
        {"kind": "engine_restart", "at": 250, "pod": "b/r"},
    ],
}  # fmt: skip


def expected_capacity(name: str, t: float) -> float:
    """Whole-H100 equivalents of each FAULTY pod, written out by hand."""
    if name == "p0":
        return 3 / 7 if t < 95 else 1.0
    if name == "p1":
        return 3 / 7 if t < 95 else 0.0
    if name == "q":
        return GPU_SPEED["L4"] if t < 123.5 else 0.0
    if name == "r":
        return GPU_SPEED["A100-SXM4-80GB"]
    if name == "s":
        return 2 / 4 * GPU_SPEED["H200-SXM5-141GB"]  # two replicas of four
    return 0.25 * GPU_SPEED["H200-SXM5-141GB"]


def serving(spec: PodSpec, restarts: list[tuple[float, float]], t: float) -> bool:
    """From the scenario's words: a process serves from its start + cold start until it
    dies; the next starts `down_seconds` after. The first started `started_before_seconds`
    before t = 0."""
    if spec.engine is None or t < spec.cold_start_seconds - spec.started_before_seconds:
        return False
    return not any(at <= t < at + down + spec.cold_start_seconds for at, down in restarts)


def brute_generation(sim: SimulatedNode, spec: PodSpec, t0: float, t1: float) -> float:
    restarts = [
        (f.at, f.down_seconds)
        for f in sim.scenario.faults
        if f.kind == "engine_restart" and f.pod == pod_key(spec)
    ]
    total, t = 0.0, t0
    while t < t1 - 1e-9:
        mid = t + STEP / 2
        if serving(spec, restarts, mid):
            rate = activity(spec.load, pod_key(spec), sim.scenario.seed, mid)
            total += rate * PEAK_GENERATION_TOKENS_PER_SECOND * expected_capacity(spec.name, mid)
        t += STEP
    return total * STEP


@pytest.mark.parametrize(
    ("t0", "t1"), [(0, 400), (13.25, 96.75), (120, 260.5), (249.75, 301), (-700, 40)]
)
def test_tokens_are_the_exact_integral_of_the_load(t0: float, t1: float) -> None:
    sim = node(FAULTY)
    for spec in sim.scenario.pods:
        prompt, generation = true_tokens(sim, spec, t0, t1)
        assert generation == pytest.approx(brute_generation(sim, spec, t0, t1), rel=1e-9, abs=1e-6)
        assert prompt == pytest.approx(generation * PROMPT_TOKENS_PER_GENERATION_TOKEN)


def test_tokens_add_up_over_consecutive_intervals() -> None:
    sim = node("mixed")
    spec = pod(sim, "chat-llama-0")
    cuts = [0.0, 7.3, 59.9, 61.0, 599.99, 600.0, 603.1, 700.0, 3600.0]
    parts = [true_tokens(sim, spec, a, b)[1] for a, b in pairwise(cuts)]
    assert sum(parts) == pytest.approx(true_tokens(sim, spec, 0, 3600)[1], rel=1e-12)
    assert true_tokens(sim, spec, 50, 50) == (0.0, 0.0)
    assert true_tokens(sim, spec, 90, 80) == (0.0, 0.0)


def test_rates_look_like_a_real_engine() -> None:
    sim = node("mixed")
    whole = true_tokens(sim, pod(sim, "chat-llama-0"), 100, 200)[1] / 100
    assert 0.55 * 2500 <= whole <= 0.95 * 2500  # a busy whole H100
    small = true_tokens(sim, pod(sim, "chat-small-0"), 100, 200)[1] / 100  # a 1g.10gb
    assert 0.55 * 2500 / 7 <= small <= 0.95 * 2500 / 7


def test_nothing_before_the_cold_start_nor_without_an_engine() -> None:
    sim = node(FAULTY)
    p0, p1, w, u = (pod(sim, name) for name in ("p0", "p1", "w", "u"))
    assert true_tokens(sim, p0, 0, 30) == (0.0, 0.0)  # default cold start: 30 s
    assert true_tokens(sim, p0, 30, 30.5)[1] > 0  # busy from the first second after
    assert true_tokens(sim, p1, 0, 12.5) == (0.0, 0.0)
    assert true_tokens(sim, pod(sim, "q"), 0, 0.5)[1] > 0  # no cold start at all
    stats = engine_stats(sim, p0, 29.9)
    assert stats is not None  # up and answering, but serving nothing yet
    assert (stats.generation_tokens, stats.requests_running, stats.kv_cache_usage_ratio) == (
        0.0, 0.0, 0.0,
    )  # fmt: skip
    assert engine_stats(sim, w, 100) is None and true_tokens(sim, w, 0, 1000) == (0.0, 0.0)
    assert not engine_up(sim, w, 100)
    assert true_tokens(sim, u, 0, 1000) == (0.0, 0.0)  # idle: up, no requests
    idle = engine_stats(sim, u, 100)
    assert idle is not None and idle.requests_running == 0 and idle.generation_tokens == 0


def test_a_restart_drops_the_counters_and_nothing_listens_while_down() -> None:
    sim = node(FAULTY)
    r = pod(sim, "r")
    assert engine_down_times(sim, r) == [(200.0, 207.5), (250.0, 255.0)]
    before = engine_stats(sim, r, 199.99)
    assert before is not None and before.generation_tokens
    assert before.generation_tokens == pytest.approx(true_tokens(sim, r, 0, 199.99)[1])
    for t in (200.0, 203.0, 207.49, 250.0, 254.99):
        assert engine_stats(sim, r, t) is None and not engine_up(sim, r, t)
        assert engine_life(sim, r, t) is None
    assert true_tokens(sim, r, 200, 237.5) == (0.0, 0.0)  # down, then cold again
    back = engine_stats(sim, r, 207.5)
    assert back is not None and back.generation_tokens == 0 and back.prompt_tokens == 0
    later = engine_stats(sim, r, 249.0)
    assert later is not None
    assert later.generation_tokens == pytest.approx(true_tokens(sim, r, 237.5, 249)[1])
    assert later.generation_tokens == pytest.approx(true_tokens(sim, r, 0, 249)[1]
                                                    - true_tokens(sim, r, 0, 200)[1])  # fmt: skip
    # Process start times: when each process started, in node seconds and unix seconds.
    assert [engine_process_start(sim, r, t) for t in (0, 199, 200, 208, 260)] == [
        0.0, 0.0, 0.0, 207.5, 255.0,
    ]  # fmt: skip
    assert engine_process_start_time(sim, r, 260) == WALL_START + 255.0


def test_gauges_follow_the_activity_now() -> None:
    sim = node("mixed")
    for spec in sim.scenario.pods:
        for t in (100.0, 455.0, 1234.0):
            stats = engine_stats(sim, spec, t)
            if spec.engine is None:
                assert stats is None
                continue
            assert stats is not None and stats.model == spec.model
            now = activity(spec.load, pod_key(spec), sim.scenario.seed, t)
            assert (stats.requests_running or 0) > 0 if now > 0.6 else True
            if now == 0:
                assert (stats.requests_running, stats.requests_waiting) == (0, 0)
                assert stats.kv_cache_usage_ratio == 0
            assert 0 <= (stats.kv_cache_usage_ratio or 0) <= 1
            assert stats.requests_waiting is not None and stats.requests_running is not None
            assert stats.requests_waiting <= stats.requests_running
            assert float(stats.requests_running).is_integer()


def test_counters_and_histograms_agree() -> None:
    sim = node("mixed")
    spec = pod(sim, "chat-h200-0")
    stats = engine_stats(sim, spec, 1800.0)
    assert stats is not None and stats.generation_tokens and stats.requests_finished
    assert stats.prompt_tokens == pytest.approx(4 * stats.generation_tokens)
    assert stats.requests_finished == pytest.approx(stats.generation_tokens / MEAN_OUTPUT_TOKENS)
    ttft, itl = stats.time_to_first_token_seconds, stats.inter_token_latency_seconds
    assert ttft is not None and itl is not None
    assert ttft.count == stats.requests_finished  # one first token per request
    assert itl.count == pytest.approx(stats.generation_tokens - stats.requests_finished)
    for histogram, bounds in ((ttft, VLLM_TTFT_BUCKETS), (itl, VLLM_ITL_BUCKETS)):
        assert tuple(le for le, _ in histogram.buckets) == (*bounds, math.inf)
        counts = [count for _, count in histogram.buckets]
        assert counts == sorted(counts) and counts[-1] == histogram.count
        assert 0 < histogram.sum / histogram.count < 1
    assert 0.1 < ttft.sum / ttft.count < 0.5 and 0.01 < itl.sum / itl.count < 0.06
    # Engine counters grow with time, within one process.
    earlier = engine_stats(sim, spec, 900.0)
    assert earlier is not None and earlier.generation_tokens is not None
    assert earlier.generation_tokens < stats.generation_tokens


def test_tenant_tokens_sum_the_pods_of_each_tenant() -> None:
    sim = node("mixed")
    generation: defaultdict[str, float] = defaultdict(float)
    for spec in sim.scenario.pods:
        generation[spec.tenant] += true_tokens(sim, spec, 10, 1800)[1]
    assert tenant_tokens(sim, 10, 1800) == pytest.approx(dict(generation))
    prompt = tenant_tokens(sim, 10, 1800, "prompt")
    total = tenant_tokens(sim, 10, 1800, "total")
    assert set(prompt) == set(total) == {p.tenant for p in sim.scenario.pods}
    for tenant, tokens in generation.items():
        assert prompt[tenant] == pytest.approx(4 * tokens)
        assert total[tenant] == pytest.approx(5 * tokens)
    assert prompt["research"] == 0 and prompt["batch"] == 0  # idle, never-used, no engine


def test_held_gpu_seconds_integrate_the_held_fractions() -> None:
    sim = node(FAULTY)
    held = tenant_gpu_seconds_held(sim, 50, 300)
    brute: defaultdict[str, float] = defaultdict(float)
    t = 50.0
    while t < 300:
        for tenant, fraction in tenant_gpu_fractions(sim, t + STEP / 2).items():
            brute[tenant] += fraction * STEP
        t += STEP
    assert held == pytest.approx(dict(brute))
    # By hand: tenant a holds 6/7 of GPU 0 until 95 s, then the whole of it via p0;
    # b holds the L4 until it is lost at 123.5 s and the A100 all along.
    assert held["a"] == pytest.approx(45 * 6 / 7 + 205)
    assert held["b"] == pytest.approx(73.5 + 250)
    assert held["c"] == pytest.approx(250 * 3 / 4)  # s: 2 replicas of 4, u: 1
    assert held["d"] == pytest.approx(250 / 4)
    # Tokens per GPU-hour, the accuracy test's figure, comes out of the two.
    mixed = node("mixed")
    tokens, gpu_seconds = tenant_tokens(mixed, 0, 3600), tenant_gpu_seconds_held(mixed, 0, 3600)
    per_gpu_hour = tokens["chat"] / (gpu_seconds["chat"] / 3600)
    assert 0 < per_gpu_hour < 2500 * 1.3 * 3600


# -- pods that exist when the node starts --------------------------------------------------------


def test_pods_started_before_the_node_serve_from_its_first_second() -> None:
    """Steady state from the first scrape: past the cold start, busy, counters already full."""
    for name in BUILT_IN:
        sim = node(name)
        for spec in sim.scenario.pods:
            if spec.engine is None:
                continue
            assert spec.started_before_seconds == DEFAULT_STARTED_BEFORE_SECONDS
            assert engine_process_start(sim, spec, 0.0) == -DEFAULT_STARTED_BEFORE_SECONDS
            assert engine_process_start_time(sim, spec, 1.0) == WALL_START - 600
            stats = engine_stats(sim, spec, 0.0)
            assert stats is not None and stats.generation_tokens is not None
            assert stats.generation_tokens == pytest.approx(true_tokens(sim, spec, -600, 0)[1])
            if spec.load != "busy":
                continue
            # a busy engine: tokens made in its 10 minutes before the node, running requests
            # from the first second, tokens in the first 10 seconds
            speed = 0.55 * PEAK_GENERATION_TOKENS_PER_SECOND * capacity(sim, spec, 0.0)
            assert stats.generation_tokens >= (600 - spec.cold_start_seconds) * speed * 0.999
            assert (stats.requests_running or 0) > 0, (name, spec.name)
            assert true_tokens(sim, spec, 0, 10)[1] >= 10 * speed * 0.999


@pytest.mark.parametrize("name", BUILT_IN)
def test_counters_move_by_the_true_tokens_of_each_interval(name: str) -> None:
    sim = node(name)
    cuts = [0.0, 0.5, 10.0, 59.9, 61.0, 599.99, 600.0, 607.0, 700.0, 1800.0]
    for spec in sim.scenario.pods:
        for t0, t1 in pairwise(cuts):
            before, after = engine_stats(sim, spec, t0), engine_stats(sim, spec, t1)
            if before is None or after is None:
                continue
            if engine_process_start(sim, spec, t0) != engine_process_start(sim, spec, t1):
                continue  # restarted in between: the counters started again at 0
            assert before.generation_tokens is not None and after.generation_tokens is not None
            moved = after.generation_tokens - before.generation_tokens
            assert moved == pytest.approx(true_tokens(sim, spec, t0, t1)[1], rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_scenario_shows_a_cold_start_during_the_run(name: str) -> None:
    """Warm at t = 0, a cold start comes later: after a restart, engines up, no tokens yet."""
    sim = node(name)
    cold = [
        (spec, life)
        for spec in sim.scenario.pods
        for life in engine_lives(sim, spec)
        if life.start >= 0 and life.serving > life.start
    ]
    assert cold, f"{name}: no engine cold-starts after t = 0"
    for spec, life in cold:
        during = engine_stats(sim, spec, (life.start + life.serving) / 2)
        assert during is not None and during.generation_tokens == 0
        assert during.requests_running == 0
        assert true_tokens(sim, spec, life.start, life.serving) == (0.0, 0.0)
        if spec.load == "busy":
            assert true_tokens(sim, spec, life.serving, life.serving + 10)[1] > 0


def test_a_pod_younger_than_its_cold_start_is_still_cold_at_first() -> None:
    sim = node(
        {"gpus": [{"model": "L4"}],
         "pods": [{"name": "y", "namespace": "a", "tenant": "a", "devices": ["0"],
                   "cold_start_seconds": 60, "started_before_seconds": 20}]}
    )  # fmt: skip
    (spec,) = sim.scenario.pods
    assert engine_lives(sim, spec)[0].serving == 40.0
    assert true_tokens(sim, spec, 0, 40) == (0.0, 0.0)
    assert true_tokens(sim, spec, 40, 41)[1] > 0
    assert sim.cluster_view().pods[("a", "y")].start_time == WALL_START - 20
