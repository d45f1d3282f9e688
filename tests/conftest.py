"""Fixtures shared by the test modules: a controllable clock and simulated nodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from exporter.nvml_reader import NvmlReader
from exporter.simulation.fake_nvml import SimulatedNvml
from exporter.simulation.node import ManualClock as Clock
from exporter.simulation.node import SimulatedNode
from exporter.simulation.scenario import Scenario, load_scenario


@dataclass
class Sim:
    clock: Clock
    node: SimulatedNode
    nvml: SimulatedNvml
    reader: NvmlReader


def make_sim(scenario: Scenario | str, start: float = 1.0) -> Sim:
    if isinstance(scenario, str):
        scenario = load_scenario(scenario)
    clock = Clock(start)
    node = SimulatedNode(scenario, clock=clock)
    nvml = SimulatedNvml(node)
    return Sim(clock, node, nvml, NvmlReader(nvml))


@pytest.fixture
def sim_factory() -> Callable[..., Sim]:
    return make_sim


def scenario_from(data: dict[str, object]) -> Scenario:
    return Scenario.model_validate(data)
