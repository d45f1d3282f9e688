"""The simulation's ground truth of each device's energy (`simulator.truth.device_energy`)."""

from __future__ import annotations

import pytest

from simulator.node import SimulatedNode
from simulator.scenario import load_scenario
from simulator.truth import device_energy, pod_energy


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


def test_pod_energy_is_each_held_device_times_the_share_held() -> None:
    node = SimulatedNode(load_scenario("mixed"), clock=lambda: 0.0)
    pods = pod_energy(node, 0.0, 60.0)
    gpu1 = node.device_energy_joules(1, None, 0.0, 60.0)  # time-sliced: 4 replicas, 3 pods
    for pod in ("ads/ads-ranker-0", "research/research-nb-0", "ads-batch/ads-batch-0"):
        assert pods[pod] == pytest.approx(gpu1 / 4)
    chat_small = node.device_energy_joules(3, 3, 0.0, 60.0)  # a 1g.10gb instance, held whole
    assert pods["chat/chat-small-0"] == pytest.approx(chat_small) and chat_small > 0
