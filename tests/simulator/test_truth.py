"""The simulation's ground truth of each device's energy (`simulator.truth.device_energy`)."""

from __future__ import annotations

import pytest

from simulator.node import SimulatedNode
from simulator.scenario import load_scenario
from simulator.truth import device_energy


def test_device_energy_is_each_device_under_the_power_model() -> None:
    node = SimulatedNode(load_scenario("small"), clock=lambda: 0.0)
    counter_at_5 = [node.energy_joules(i, 5.0) for i in (0, 1)]  # the counters move forward
    truth = device_energy(node, 5.0, 125.0)
    layout = [m for m in node.layout(1, 125.0) or () if m is not None]
    assert set(truth) == {node.gpu_uuids[0], *(m.uuid for m in layout)}
    for m in layout:
        assert truth[m.uuid] == pytest.approx(node.device_energy_joules(1, m.slot, 5.0, 125.0))
    assert truth[node.gpu_uuids[0]] == pytest.approx(node.energy_joules(0, 125.0) - counter_at_5[0])
    # the instances and the free slice's idle power: the GPU's counter
    idle = node.models[1].idle_watts / 7 * 120.0
    counted = node.energy_joules(1, 125.0) - counter_at_5[1]
    assert sum(truth[m.uuid] for m in layout) + idle == pytest.approx(counted)


def test_a_device_gone_by_the_end_has_no_truth() -> None:
    data = load_scenario("small").model_dump(mode="json")
    data["faults"] = [{"kind": "gpu_lost", "at": 50, "gpu": 0}]
    node = SimulatedNode(load_scenario("small").model_validate(data), clock=lambda: 0.0)
    assert node.gpu_uuids[0] not in device_energy(node, 0.0, 100.0)
    assert node.gpu_uuids[0] in device_energy(node, 0.0, 40.0)
