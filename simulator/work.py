"""Useful work on the simulated node: the tokens each engine produces, exactly.

A pod's engine produces generation tokens at

    activity(t) * PEAK_GENERATION_TOKENS_PER_SECOND * capacity(t)

where activity is the pod's load profile (piecewise constant, see `loads.py`) and
capacity the whole-H100 equivalents it holds: for each of its devices, the device's
GPU fraction * the pod's holding share * the GPU model's speed (`GPU_SPEED`). A lost
GPU, or a MIG slot left empty by a re-partition, gives nothing. Prompt tokens follow at
a fixed ratio, finished requests at a fixed mean output length. Everything else an
engine serves (running and waiting requests, KV-cache usage, latency histograms) is a
deterministic function of the same numbers, so any counter at any moment is exact.

An engine process lives from its start to its death (an `engine_restart` fault) and
serves tokens only after its cold start (`cold_start_seconds`); while down, nothing
listens. A pod's first process started `started_before_seconds` before the node's t = 0
(its load profile runs back then too), so a pod that exists when the node starts is
usually past its cold start, its counters already holding what it made since. Counters
are the process's own: they start at 0 with each process. The true tokens of an interval
are counted across restarts, so they are what the engines really produced, whether or not
a scraper saw it.
"""

from __future__ import annotations

import math
import weakref
from array import array
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from exporter.model import Histogram, ModelStats
from simulator.holdings import tenant_gpu_fractions
from simulator.loads import SEGMENT_SECONDS, LoadProfile, activity, segment_activity
from simulator.node import SimulatedNode, pod_key
from simulator.scenario import (
    EngineRestartFault,
    GpuLostFault,
    MigRepartitionFault,
    PodSpec,
    parse_device_ref,
)

PEAK_GENERATION_TOKENS_PER_SECOND = 2500.0  # one whole H100 at SM activity 1
GPU_SPEED: Mapping[str, float] = {  # generation speed relative to an H100, per GPU model
    "H100-SXM5-80GB": 1.0,
    "H200-SXM5-141GB": 1.3,
    "A100-SXM4-80GB": 0.55,
    "A100-SXM4-40GB": 0.5,
    "L4": 0.15,
}
PROMPT_TOKENS_PER_GENERATION_TOKEN = 4.0
MEAN_OUTPUT_TOKENS = 200.0  # generation tokens per finished request
MAX_RUNNING_REQUESTS = 64.0  # running requests on a whole GPU at activity 1
QUEUEING_ACTIVITY = 0.75  # above this activity requests start to wait
KV_CACHE_AT_FULL_ACTIVITY = 0.9

# Latency observations: (seconds, percent of observations). Every request observes one
# time to first token; every generation token after a request's first one observes one
# inter-token latency. Values sit strictly inside vLLM's buckets.
TTFT_OBSERVATIONS: tuple[tuple[float, int], ...] = (
    (0.03, 10), (0.07, 25), (0.15, 35), (0.35, 20), (0.9, 8), (3.0, 2),
)  # fmt: skip
ITL_OBSERVATIONS: tuple[tuple[float, int], ...] = ((0.018, 35), (0.03, 40), (0.06, 20), (0.12, 5))

# vLLM's bucket bounds (vllm/v1/metrics/loggers.py, as served by vLLM 0.33); +Inf implied.
VLLM_TTFT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
VLLM_ITL_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip

TokenKind = Literal["prompt", "generation", "total"]


@dataclass(frozen=True, slots=True)
class EngineLife:
    """One engine process: it listens over [start, end) and serves tokens from `serving`."""

    start: float  # seconds since the node started; negative: before it
    serving: float  # start + the pod's cold start
    end: float  # when it dies; inf for the last one


# -- per-node caches -----------------------------------------------------------------------


class _Activity:
    """The exact integral of one pod's activity from 0, by prefix sums over segments (on
    both sides of 0: pods run before the node's t = 0)."""

    def __init__(self, load: LoadProfile, key: str, seed: int) -> None:
        self._load, self._key, self._seed = load, key, seed
        self._prefix = array("d", [0.0])  # integral over [0, k * SEGMENT_SECONDS)
        self._before = array("d", [0.0])  # integral over [-k * SEGMENT_SECONDS, 0)
        self._zero = load in (LoadProfile.IDLE, LoadProfile.NEVER_USED)

    def _segment(self, k: int) -> float:
        return segment_activity(self._load, self._key, self._seed, k)

    def integral(self, t: float) -> float:
        """The integral of activity over [0, t]; for t < 0, minus the one over [t, 0]."""
        if self._zero or t == 0:
            return 0.0
        k = math.floor(t / SEGMENT_SECONDS)
        if t > 0:
            while len(self._prefix) <= k:
                n = len(self._prefix) - 1
                self._prefix.append(self._prefix[-1] + self._segment(n) * SEGMENT_SECONDS)
            return self._prefix[k] + self._segment(k) * (t - k * SEGMENT_SECONDS)
        whole = -k - 1  # whole segments in [t, 0]: those after segment k
        while len(self._before) <= whole:
            n = len(self._before)  # segment -n
            self._before.append(self._before[-1] + self._segment(-n) * SEGMENT_SECONDS)
        return -(self._before[whole] + self._segment(k) * ((k + 1) * SEGMENT_SECONDS - t))


class _NodeWork:
    def __init__(self, node: SimulatedNode) -> None:
        self.node = node
        faults = node.scenario.faults
        self.breaks = sorted(
            {f.at for f in faults if isinstance(f, GpuLostFault | MigRepartitionFault)}
        )
        self.lives: dict[str, tuple[EngineLife, ...]] = {}
        self.activity: dict[str, _Activity] = {}
        for pod in node.scenario.pods:
            key = pod_key(pod)
            self.activity[key] = _Activity(pod.load, key, node.scenario.seed)
            if pod.engine is None:
                self.lives[key] = ()
                continue
            restarts = sorted(
                (f for f in faults if isinstance(f, EngineRestartFault) and f.pod == key),
                key=lambda f: f.at,
            )
            starts = [-pod.started_before_seconds, *(f.at + f.down_seconds for f in restarts)]
            ends = [*(f.at for f in restarts), math.inf]
            self.lives[key] = tuple(
                EngineLife(start, start + pod.cold_start_seconds, end)
                for start, end in zip(starts, ends, strict=True)
            )


_CACHE: weakref.WeakKeyDictionary[SimulatedNode, _NodeWork] = weakref.WeakKeyDictionary()


def _work(node: SimulatedNode) -> _NodeWork:
    work = _CACHE.get(node)
    if work is None:
        work = _CACHE[node] = _NodeWork(node)
    return work


# -- engine lives ----------------------------------------------------------------------------


def engine_lives(node: SimulatedNode, pod: PodSpec) -> tuple[EngineLife, ...]:
    """Every process the pod's engine runs, in order; () for a pod without an engine."""
    return _work(node).lives[pod_key(pod)]


def engine_life(node: SimulatedNode, pod: PodSpec, t: float) -> EngineLife | None:
    """The engine process running at t; None while it is down (or the pod has none). Before
    the first process started, that first one."""
    lives = engine_lives(node, pod)
    for life in lives:
        if life.start <= t < life.end or (t < life.start and life is lives[0]):
            return life
    return None


def engine_up(node: SimulatedNode, pod: PodSpec, t: float) -> bool:
    """Whether the pod's engine process is alive (listening) at t."""
    return engine_life(node, pod, t) is not None


def engine_process_start(node: SimulatedNode, pod: PodSpec, t: float) -> float:
    """When the engine process at t started, in seconds since the node started; while the
    engine is down, when the process that died had started."""
    lives = engine_lives(node, pod)
    if not lives:
        raise ValueError(f"pod {pod_key(pod)} runs no engine")
    started = [life for life in lives if life.start <= t]
    return (started[-1] if started else lives[0]).start


def engine_down_times(node: SimulatedNode, pod: PodSpec) -> list[tuple[float, float]]:
    """[from, until) intervals in which the pod's engine is down."""
    lives = engine_lives(node, pod)
    return [(a.end, b.start) for a, b in pairwise(lives)]


# -- capacity --------------------------------------------------------------------------------


def _held(node: SimulatedNode, pod: PodSpec, t: float) -> list[tuple[int, float]]:
    """(GPU index, GPU fraction * holding share) of each device the pod holds at t."""
    key = pod_key(pod)
    held = []
    for index, slot in dict.fromkeys(map(parse_device_ref, pod.devices)):
        if node.lost(index, t):
            continue
        if slot is None:
            (tenancy,) = [ten for ten in node.tenants_of(index, None) if pod_key(ten.pod) == key]
            held.append((index, node.holding_share(index, tenancy)))
            continue
        layout = node.layout(index, t) or ()
        instance = layout[slot] if slot < len(layout) else None
        if instance is not None:
            held.append((index, instance.slices / node.models[index].mig_slices))
    return held


def gpu_share(node: SimulatedNode, pod: PodSpec, t: float) -> float:
    """GPUs the pod holds at t: device fraction * holding share, summed over its devices."""
    return sum(share for _, share in _held(node, pod, t))


def capacity(node: SimulatedNode, pod: PodSpec, t: float) -> float:
    """Whole-H100 equivalents the pod's engine can use at t (0 on lost GPUs)."""
    return sum(share * GPU_SPEED[node.specs[index].model] for index, share in _held(node, pod, t))


def _pieces(breaks: Sequence[float], t0: float, t1: float) -> list[tuple[float, float]]:
    """[t0, t1] cut at the breaks inside it."""
    inside = breaks[bisect_right(breaks, t0) :]
    edges = [t0, *(b for b in inside if b < t1), t1]
    return [(a, b) for a, b in pairwise(edges) if b > a]


# -- tokens ----------------------------------------------------------------------------------


def _generation(node: SimulatedNode, pod: PodSpec, t0: float, t1: float) -> float:
    """Generation tokens produced in (t0, t1], across restarts."""
    work = _work(node)
    key = pod_key(pod)
    integral = work.activity[key].integral
    total = 0.0
    for life in work.lives[key]:
        a, b = max(t0, life.serving), min(t1, life.end)
        for lo, hi in _pieces(work.breaks, a, b):
            rate = capacity(node, pod, (lo + hi) / 2)
            if rate:
                total += rate * (integral(hi) - integral(lo))
    return total * PEAK_GENERATION_TOKENS_PER_SECOND


def true_tokens(node: SimulatedNode, pod: PodSpec, t0: float, t1: float) -> tuple[float, float]:
    """(prompt, generation) tokens the pod's engine produced in (t0, t1], exactly."""
    generation = _generation(node, pod, t0, t1)
    return generation * PROMPT_TOKENS_PER_GENERATION_TOKEN, generation


def _of_kind(prompt: float, generation: float, kind: TokenKind) -> float:
    if kind == "prompt":
        return prompt
    if kind == "generation":
        return generation
    return prompt + generation


def tenant_tokens(
    node: SimulatedNode, t0: float, t1: float, kind: TokenKind = "generation"
) -> dict[str, float]:
    """Tokens of `kind` each tenant's engines produced in (t0, t1]; every tenant appears."""
    tokens: defaultdict[str, float] = defaultdict(float)
    for pod in node.scenario.pods:
        tokens[pod.tenant] += _of_kind(*true_tokens(node, pod, t0, t1), kind)
    return dict(tokens)


def tenant_gpu_seconds_held(node: SimulatedNode, t0: float, t1: float) -> dict[str, float]:
    """GPU-seconds each tenant held over (t0, t1]: device GPU fraction * share * seconds,
    as `truth.tenant_gpu_fractions` counts them (lost GPUs are held by no one).

    Tokens per GPU-hour: tokens / (held / 3600).
    """
    held: defaultdict[str, float] = defaultdict(float)
    for a, b in _pieces(_work(node).breaks, t0, t1):
        for tenant, fraction in tenant_gpu_fractions(node, (a + b) / 2).items():
            held[tenant] += fraction * (b - a)
    return dict(held)


# -- what an engine serves --------------------------------------------------------------------


def _histogram(
    bounds: Sequence[float], observations: Sequence[tuple[float, int]], count: float
) -> Histogram:
    buckets = []
    for bound in bounds:
        percent = sum(weight for value, weight in observations if value <= bound)
        buckets.append((bound, count * percent / 100))
    mean = sum(value * weight for value, weight in observations) / 100
    return Histogram(buckets=(*buckets, (math.inf, count)), count=count, sum=count * mean)


def engine_stats(node: SimulatedNode, pod: PodSpec, t: float) -> ModelStats | None:
    """What the pod's engine serves at t: its counters since its process started, gauges
    now. None while the engine is down, and for a pod without an engine."""
    life = engine_life(node, pod, t)
    if life is None:
        return None
    prompt, generation = true_tokens(node, pod, life.start, t)
    requests = generation / MEAN_OUTPUT_TOKENS
    running = waiting = kv_cache = 0.0
    if t >= life.serving:
        now = activity(pod.load, pod_key(pod), node.scenario.seed, t)
        share = gpu_share(node, pod, t)
        running = float(round(now * MAX_RUNNING_REQUESTS * share))
        waiting = float(round(running * max(now - QUEUEING_ACTIVITY, 0.0) * 2))
        kv_cache = KV_CACHE_AT_FULL_ACTIVITY * now if share else 0.0
    return ModelStats(
        model=pod.model,
        prompt_tokens=prompt,
        generation_tokens=generation,
        requests_running=running,
        requests_waiting=waiting,
        requests_finished=requests,
        kv_cache_usage_ratio=kv_cache,
        preemptions=0.0,
        time_to_first_token_seconds=_histogram(VLLM_TTFT_BUCKETS, TTFT_OBSERVATIONS, requests),
        inter_token_latency_seconds=_histogram(
            VLLM_ITL_BUCKETS, ITL_OBSERVATIONS, generation - requests
        ),
    )


def engine_process_start_time(node: SimulatedNode, pod: PodSpec, t: float) -> float:
    """The engine's `process_start_time_seconds` at t: unix seconds."""
    return node.wall_start + engine_process_start(node, pod, t)


__all__ = [
    "GPU_SPEED",
    "MEAN_OUTPUT_TOKENS",
    "PEAK_GENERATION_TOKENS_PER_SECOND",
    "PROMPT_TOKENS_PER_GENERATION_TOKEN",
    "EngineLife",
    "capacity",
    "engine_down_times",
    "engine_life",
    "engine_lives",
    "engine_process_start",
    "engine_process_start_time",
    "engine_stats",
    "engine_up",
    "gpu_share",
    "tenant_gpu_seconds_held",
    "tenant_tokens",
    "true_tokens",
]
