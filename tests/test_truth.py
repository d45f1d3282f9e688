"""Accuracy: what the exporter says per tenant matches the scenario's ground truth.

The real pieces run end to end on the simulated `mixed` node: the NVML reader on the
simulated NVML, the kubelet client against the fake kubelet's gRPC server, /proc
cgroup files, the engine scraper against the simulated engines' HTTP servers (one of
which restarts mid-run), the join, the ledgers and the metric families; the truth
comes from the scenario alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from exporter.exposition.families import build_families
from exporter.model import DeviceState, NodeSnapshot
from simulator.holdings import tenant_gpu_fractions
from simulator.truth import device_energy, tenant_state_seconds
from simulator.work import (
    engine_down_times,
    tenant_gpu_seconds_held,
    tenant_tokens,
)
from simulator.work import (
    true_tokens as pod_tokens,
)
from tests.support.exporter_run import INTERVAL, STEPS, THRESHOLD, WINDOW, Run, exporter_on_mixed

pytestmark = pytest.mark.slow  # 30 simulated minutes end to end, 10-15 s each


@pytest.fixture
async def mixed(tmp_path: Path) -> AsyncIterator[Run]:
    async with exporter_on_mixed(tmp_path) as run:
        yield run


def samples(snapshot: NodeSnapshot, name: str) -> list[tuple[dict[str, str], float]]:
    (family,) = [f for f in build_families(snapshot) if f.name == name]
    return [(s.labels, s.value) for s in family.samples]


def by_tenant(snapshot: NodeSnapshot, name: str, **only: str) -> defaultdict[str, float]:
    totals: defaultdict[str, float] = defaultdict(float)
    for labels, value in samples(snapshot, name):
        if all(labels[k] == v for k, v in only.items()):
            totals[labels["tenant"]] += value
    return totals


def increase_by_tenant(snapshots: Sequence[NodeSnapshot], name: str) -> defaultdict[str, float]:
    """Prometheus's `increase()` of each series from the first snapshot to the last, by
    tenant: what the counters moved, a drop counting as a reset to 0."""
    moved: defaultdict[str, float] = defaultdict(float)
    last: dict[tuple[tuple[str, str], ...], float] = {}
    for snapshot in snapshots:
        for labels, value in samples(snapshot, name):
            key = tuple(sorted(labels.items()))
            if key in last:
                moved[labels["tenant"]] += value - last[key] if value >= last[key] else value
            last[key] = value
    return moved


async def test_tenant_fractions_and_state_seconds_match_the_truth(mixed: Run) -> None:
    last = await mixed.collect(STEPS)
    sim, times = mixed.sim, mixed.times

    # GPU fractions per tenant: allocation share * the device's GPU fraction
    fraction = {labels["device"]: value for labels, value in
                samples(last, "gpuwork_device_gpu_fraction")}  # fmt: skip
    held: defaultdict[str, float] = defaultdict(float)
    for labels, share in samples(last, "gpuwork_device_allocation"):
        held[labels["tenant"]] += share * fraction[labels["device"]]
    truth = tenant_gpu_fractions(sim.node, times[-1])
    assert held.keys() == truth.keys()
    for tenant, value in truth.items():
        assert held[tenant] == pytest.approx(value, rel=0.01), tenant

    # GPU-seconds per tenant and state
    seconds: defaultdict[tuple[str, str], float] = defaultdict(float)
    for labels, value in samples(last, "gpuwork_device_state_seconds"):
        seconds[(labels["tenant"], labels["state"])] += value
    expected = tenant_state_seconds(sim.node, times, window=WINDOW, busy_threshold=THRESHOLD)
    for (tenant, state), value in expected.items():
        assert seconds[(tenant, state)] == pytest.approx(value, rel=0.01), (tenant, state)
    assert {k for k, v in seconds.items() if v > 0} == {k for k, v in expected.items() if v > 0}
    # every state shows up somewhere on this node, or the test proves little
    assert {state for _, state in expected} == set(DeviceState)
    # nothing lost: every device's time is somewhere (a MIG slice in no instance is no device)
    gpus = sum(fraction.values())
    assert sum(seconds.values()) == pytest.approx(gpus * STEPS * INTERVAL, rel=1e-6)


async def test_tokens_per_gpu_hour_per_tenant_match_the_truth_through_a_restart(
    mixed: Run,
) -> None:
    last = await mixed.collect(STEPS)
    sim, start, end = mixed.sim, mixed.times[0], mixed.times[-1]
    restarted = [p for p in sim.node.scenario.pods if engine_down_times(sim.node, p)]
    assert restarted and all(start < down < end for p in restarted
                             for down, _ in engine_down_times(sim.node, p))  # fmt: skip

    # what a recording rule computes: tokens / (GPU-seconds held / 3600), by tenant; the
    # engines ran before the node's t = 0, so the tokens are what the counters moved
    tokens = increase_by_tenant(mixed.published, "gpuwork_tokens")
    held: defaultdict[str, float] = defaultdict(float)
    for (tenant, state), value in _state_seconds(last).items():
        if state != DeviceState.UNALLOCATED:
            held[tenant] += value
    true_tokens = tenant_tokens(sim.node, start, end, kind="total")
    true_held = tenant_gpu_seconds_held(sim.node, start, end)
    served = {t for t, n in true_tokens.items() if n > 0}
    assert served >= {"chat", "ads", "search"}
    for tenant in served:
        ours = tokens[tenant] / (held[tenant] / 3600)
        truth = true_tokens[tenant] / (true_held[tenant] / 3600)
        assert ours == pytest.approx(truth, rel=0.01), tenant
    # the restarted engine's series mirrors its counter: it resets once, at the restart,
    # to what the new process counted, and grows otherwise
    pod = restarted[0]
    generation = [v for snapshot in mixed.published
                  for labels, v in samples(snapshot, "gpuwork_tokens")
                  if labels["pod"] == pod.name and labels["type"] == "generation"]  # fmt: skip
    falls = [i for i in range(1, len(generation)) if generation[i] < generation[i - 1]]
    assert len(falls) == len(engine_down_times(sim.node, pod)) == 1
    (back,) = falls
    process_start = sim.node.wall_start + engine_down_times(sim.node, pod)[0][1]
    assert generation[back] == pytest.approx(
        pod_tokens(sim.node, pod, process_start - sim.node.wall_start, mixed.times[back])[1]
    )


async def test_energy_per_device_matches_the_truth(mixed: Run) -> None:
    await mixed.collect(STEPS)
    sim, times, published = mixed.sim, mixed.times, mixed.published

    def exported(snapshot: NodeSnapshot, name: str) -> dict[str, float]:
        return {labels["device"]: value for labels, value in samples(snapshot, name)}

    measured, estimated = "gpuwork_device_energy_joules", "gpuwork_device_energy_estimated_joules"
    # whole GPUs: NVML's counter, exact
    truth = device_energy(sim.node, times[0], times[-1])
    whole = exported(published[-1], measured)
    assert set(whole) == {sim.node.gpu_uuids[i] for i in (0, 1, 5, 6)}
    for device, joules in whole.items():
        assert joules == pytest.approx(truth[device], rel=1e-6), device
    # MIG instances of Hopper GPUs: split; none on the A100 (no GPM, nothing to split by)
    split = exported(published[-1], estimated)
    a100 = {m.uuid for m in sim.node.layout(4, times[-1]) or () if m is not None}
    assert a100 and set(split) == set(truth) - set(whole) - a100
    # exact once each GPU's idle power is fitted (within two minutes), and within 3 %
    # from the exporter's start: the lowest power seen stands in for idle power at first
    warm = 12
    since_warm = device_energy(sim.node, times[warm], times[-1])
    at_warm = exported(published[warm], estimated)
    for device, joules in split.items():
        assert joules - at_warm[device] == pytest.approx(since_warm[device], rel=1e-4), device
        assert joules == pytest.approx(truth[device], rel=0.03), device


async def test_every_engine_kind_exports_each_pods_tokens_within_1_percent_of_the_truth(
    mixed: Run,
) -> None:
    """Per pod, whatever its engine: vLLM, SGLang, TGI, trtllm-serve, Triton (tokens from
    its backend's histograms, requests at its ensemble), llama.cpp (six significant
    digits) and the in-house server only the scenario's user catalog describes."""
    await mixed.collect(STEPS)
    sim, start, end = mixed.sim, mixed.times[0], mixed.times[-1]
    moved = increase_by_pod(mixed.published, "gpuwork_tokens")
    engines = {p.engine for p in sim.node.scenario.pods}
    assert {"triton", "llamacpp", "inhouse"} <= engines
    checked: dict[str, float] = {}
    for pod in sim.node.scenario.pods:
        if pod.engine is None or engine_down_times(sim.node, pod):
            continue  # the restarted engine is checked above
        truths = pod_tokens(sim.node, pod, start, end)
        for kind, truth in zip(("prompt", "generation"), truths, strict=True):
            if truth == 0:
                continue
            ours = moved[(pod.name, kind)]
            assert ours == pytest.approx(truth, rel=0.01), (pod.name, pod.engine, kind)
            checked[f"{pod.engine}/{kind}"] = ours / truth - 1
    assert {e.split("/")[0] for e in checked} == engines - {None}
    # what the run measured, for people: relative error of each engine kind's tokens
    print({key: f"{error:+.2e}" for key, error in sorted(checked.items())})


def increase_by_pod(
    snapshots: Sequence[NodeSnapshot], name: str
) -> defaultdict[tuple[str, str], float]:
    """`increase()` of each series from the first snapshot to the last, by (pod, type)."""
    moved: defaultdict[tuple[str, str], float] = defaultdict(float)
    last: dict[tuple[tuple[str, str], ...], float] = {}
    for snapshot in snapshots:
        for labels, value in samples(snapshot, name):
            key = tuple(sorted(labels.items()))
            if key in last:
                step = value - last[key] if value >= last[key] else value
                moved[(labels["pod"], labels["type"])] += step
            last[key] = value
    return moved


def _state_seconds(snapshot: NodeSnapshot) -> dict[tuple[str, str], float]:
    seconds: defaultdict[tuple[str, str], float] = defaultdict(float)
    for labels, value in samples(snapshot, "gpuwork_device_state_seconds"):
        seconds[(labels["tenant"], labels["state"])] += value
    return seconds
