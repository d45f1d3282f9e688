"""The simulated node's ground truth: shares, memory, power and energy."""

from __future__ import annotations

import pytest

from exporter.simulation.loads import MODEL_MEMORY_FRACTION
from exporter.simulation.node import SimulatedNode
from exporter.simulation.scenario import load_scenario


def node(name: str) -> SimulatedNode:
    return SimulatedNode(load_scenario(name), clock=lambda: 0.0)


def test_identities_are_stable_and_distinct() -> None:
    first, second = node("dense-h100"), node("dense-h100")
    assert first.gpu_uuids == second.gpu_uuids and len(set(first.gpu_uuids)) == 8
    migs = [d.device for d in first.devices(1.0)]
    assert len(set(migs)) == 56 and all(m.startswith("MIG-") for m in migs)
    assert [d.device for d in second.devices(1.0)] == migs


def test_time_sliced_pods_share_time_and_memory() -> None:
    mixed = node("mixed")
    (shared,) = [d for d in mixed.devices(30.0) if len(d.pods) == 3]
    busy = mixed.device_activity(1, None, 30.0)
    assert 0 < busy <= 1 / 3  # one busy pod out of three gets a third of the time
    # Two of the three pods run a process; each holds a third of 90% of memory.
    assert shared.processes == 2
    assert shared.memory_used_bytes == 2 * int(
        shared.memory_total_bytes * MODEL_MEMORY_FRACTION / 3
    )


def test_free_devices_are_empty() -> None:
    free = [d for d in node("mixed").devices(30.0) if not d.pods]
    assert len(free) == 2  # the spare 3g.40gb and the A100 40GB nobody holds
    assert all(
        d.memory_used_bytes == 0 and d.processes == 0 and d.sm_active_ratio == 0 for d in free
    )


def test_energy_integrates_power() -> None:
    small = node("small")
    steps = [i * 0.5 for i in range(1, 241)]
    energy = 0.0
    for previous, t in zip([0.0, *steps], steps, strict=False):
        energy += small.power_watts(0, (previous + t) / 2) * (t - previous)
    assert small.energy_joules(0, 120.0) == pytest.approx(energy, rel=1e-9)
    assert small.energy_joules(0, 60.0) == small.energy_joules(0, 120.0)  # never goes back


def test_gpu_activity_on_mig_weights_instances_by_slices() -> None:
    small = node("small")
    expected = sum(
        small.device_mean_activity(1, slot, 0, 40) * slices / 7
        for slot, slices in ((0, 3), (1, 2), (3, 1))
    )
    assert small.gpu_mean_activity(1, 0, 40) == pytest.approx(expected)
