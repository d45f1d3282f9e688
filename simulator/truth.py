"""Ground truth for attribution (who holds what, and the state seconds that follow) and
for each device's energy.

Computed from the scenario alone, never from NVML or the exporter: at each
collection, a pod whose engine is up is busy when its engine served a token or ran a
request within the state window (as the engine's own counters show them, restarts
included); any other pod by its true mean activity over the window on its own share
of its device. Time between collections is charged as the exporter documents it
(GPU fraction * share, the unallocated rest with no tenant). Devices without any
activity signal (MIG on a GPU without GPM) count a running process as busy.

A device's true energy comes from the node's power model (`SimulatedNode`): a whole
GPU's is what its energy counter counts; a MIG instance's is its slices' share of the
GPU's idle power plus its own activity's part of the rest, the physics the simulated
GPU's power and counter follow.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from itertools import pairwise

from exporter.model import DeviceState
from exporter.sources.engines.catalog import load_catalog
from exporter.sources.engines.parser import EngineParser
from simulator.bodies.exposition import render_exposition
from simulator.holdings import device_fraction, live_devices
from simulator.loads import mean_activity, runs_process
from simulator.node import SimulatedNode
from simulator.scenario import PodSpec
from simulator.work import engine_process_start, engine_stats


def tenant_state_seconds(
    node: SimulatedNode, times: Sequence[float], *, window: float, busy_threshold: float
) -> dict[tuple[str, DeviceState], float]:
    """GPU-seconds per (tenant, state) charged by collections at `times`; tenant "" is
    the unallocated rest."""
    seconds: defaultdict[tuple[str, DeviceState], float] = defaultdict(float)
    seed = node.scenario.seed
    worked = {
        f"{pod.namespace}/{pod.name}": engine_worked(node, pod, times)
        for pod in node.scenario.pods
        if pod.engine
    }
    for k, (previous, t) in enumerate(pairwise(times), start=1):
        since = max(t - window, times[0])
        for device in live_devices(node, t):
            index, slot = device
            fraction = device_fraction(node, device, t)
            no_signal = slot is not None and not node.models[index].gpm
            held = 0.0
            for tenancy in node.tenants_of(index, slot):
                share = node.holding_share(index, tenancy)
                held += share
                pod = tenancy.pod
                if not runs_process(pod.load):
                    state = DeviceState.ALLOCATED_NO_PROCESS
                elif _engine_up(worked, pod, k):
                    judged = worked[f"{pod.namespace}/{pod.name}"]
                    recent = [w for t_j, w in zip(times, judged, strict=True)
                              if t - window < t_j <= t]  # fmt: skip
                    busy = any(w for w in recent if w is not None)
                    state = DeviceState.BUSY if busy else DeviceState.ALLOCATED_IDLE
                elif no_signal:
                    state = DeviceState.BUSY
                else:
                    key = f"{pod.namespace}/{pod.name}"
                    own = mean_activity(pod.load, key, seed, since, t) / tenancy.share
                    busy = min(own / share, 1.0) >= busy_threshold
                    state = DeviceState.BUSY if busy else DeviceState.ALLOCATED_IDLE
                seconds[(pod.tenant, state)] += (t - previous) * fraction * share
            free = max(1.0 - held, 0.0)
            seconds[("", DeviceState.UNALLOCATED)] += (t - previous) * fraction * free
    return dict(seconds)


def _engine_up(worked: dict[str, list[bool | None]], pod: PodSpec, k: int) -> bool:
    judged = worked.get(f"{pod.namespace}/{pod.name}")
    return judged is not None and judged[k] is not None


def _served(node: SimulatedNode, pod: PodSpec, t: float) -> tuple[float, float, float] | None:
    """(prompt, generation, running) the engine serves at t, as its own exposition says
    them, over all its models (Triton: its ensemble and steps); a field it lacks: 0."""
    stats = engine_stats(node, pod, t)
    if stats is None or pod.engine is None:
        return None
    body = render_exposition(pod.engine, stats, process_start_time=0.0)
    models = _parser(node.scenario.engine_catalog_path()).parse(body).models
    return (
        sum(m.total("prompt_tokens") or 0.0 for m in models),
        sum(m.total("generation_tokens") or 0.0 for m in models),
        sum(m.requests_running or 0.0 for m in models),
    )


@functools.cache
def _parser(catalog: str) -> EngineParser:
    """The exporter's parser with the scenario's engine catalog, as `--simulate` runs it."""
    return EngineParser(load_catalog(catalog))


def engine_worked(node: SimulatedNode, pod: PodSpec, times: Sequence[float]) -> list[bool | None]:
    """Per collection: whether the engine took in or generated a token since the last
    collection it answered, or runs a request now; None while it is down."""
    worked: list[bool | None] = []
    last: tuple[float, float, float] | None = None  # (process start, prompt, generation)
    for t in times:
        served = _served(node, pod, t)
        if served is None:
            worked.append(None)
            continue
        started = engine_process_start(node, pod, t)
        prompt, generation, running = served
        grew = False
        if last is not None:
            restarted = started != last[0] or prompt < last[1] or generation < last[2]
            grew = (prompt > 0 or generation > 0) if restarted else (
                prompt > last[1] or generation > last[2])  # fmt: skip
        worked.append(grew or running > 0)
        last = (started, prompt, generation)
    return worked


def device_energy(
    node: SimulatedNode, t0: float, t1: float, step: float = 10.0
) -> dict[str, float]:
    """True joules each device present at `t1` drew over [t0, t1], by device UUID (a whole
    GPU's UUID, or a MIG instance's), integrated in `step`s as the MIG layout may change."""
    joules: defaultdict[str, float] = defaultdict(float)
    for a, b in _steps(t0, t1, step):
        for index, slot in live_devices(node, b):
            joules[_uuid(node, index, slot, b)] += node.device_energy_joules(index, slot, a, b)
    present = {_uuid(node, index, slot, t1) for index, slot in live_devices(node, t1)}
    return {device: value for device, value in joules.items() if device in present}


def pod_energy(node: SimulatedNode, t0: float, t1: float, step: float = 10.0) -> dict[str, float]:
    """True joules of each pod over [t0, t1], by `namespace/name`: each device it holds
    drew, times the share of it the pod holds (a time-slicing replica's), as the
    recording rules charge it."""
    joules: defaultdict[str, float] = defaultdict(float)
    for a, b in _steps(t0, t1, step):
        for index, slot in live_devices(node, b):
            used = node.device_energy_joules(index, slot, a, b)
            for tenancy in node.tenants_of(index, slot):
                share = node.holding_share(index, tenancy)
                joules[f"{tenancy.pod.namespace}/{tenancy.pod.name}"] += used * share
    return dict(joules)


def _steps(t0: float, t1: float, step: float) -> list[tuple[float, float]]:
    """[t0, t1] cut into intervals of `step` seconds, the last one shorter where it must."""
    edges = [t0 + i * step for i in range(int((t1 - t0) // step) + 1)]
    if edges[-1] < t1:
        edges.append(t1)
    return list(pairwise(edges))


def _uuid(node: SimulatedNode, index: int, slot: int | None, t: float) -> str:
    if slot is None:
        return node.gpu_uuids[index]
    instance = (node.layout(index, t) or ())[slot]
    assert instance is not None  # live_devices lists only slots with an instance
    return instance.uuid
