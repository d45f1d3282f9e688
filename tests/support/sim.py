"""Simulated nodes for tests: a node on a clock that the test moves, its NVML and a reader."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.sources.nvml.reader import NvmlReader
from simulator.node import ManualClock as Clock
from simulator.node import SimulatedNode
from simulator.nvml import SimulatedNvml
from simulator.scenario import Scenario, load_scenario


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


def scenario_from(data: dict[str, object]) -> Scenario:
    return Scenario.model_validate(data)
