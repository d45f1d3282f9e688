"""`--simulate`: the simulated node the exporter serves, named, priced and listening."""

from __future__ import annotations

import socket

import pytest

from exporter.cli import parse_args
from exporter.errors import ListenError
from exporter.settings import load_settings
from simulator.engines import SimulatedEngines
from simulator.node import SimulatedNode
from simulator.nvml import SimulatedNvml
from simulator.scenario import load_scenario
from simulator.serving import Simulation, start_engines

# -- node name ---------------------------------------------------------------------------------


def simulation(argv: list[str], environ: dict[str, str] | None = None) -> Simulation:
    return Simulation(load_settings(parse_args(argv), environ or {}))


def nvml_and_node(argv: list[str], environ: dict[str, str] | None = None) -> tuple[object, str]:
    simulated = simulation(argv, environ)
    return simulated.nvml, simulated.name


def test_a_simulated_node_is_named_after_its_scenario() -> None:
    nvml, node = nvml_and_node(["--simulate", "small"])

    assert isinstance(nvml, SimulatedNvml)
    assert nvml.node.scenario.name == "small"
    assert node == "sim-small"


def test_node_name_overrides_the_scenarios_node_name() -> None:
    _, node = nvml_and_node(["--simulate", "small", "--node.name", "foo"])

    assert node == "foo"


def test_node_name_from_the_environment_overrides_the_scenarios_node_name() -> None:
    _, node = nvml_and_node(["--simulate", "mixed"], {"GPUWORK_NODE_NAME": "bar"})

    assert node == "bar"


# -- prices -------------------------------------------------------------------------------------


def prices_of(argv: list[str], environ: dict[str, str] | None = None) -> object:
    return simulation(argv, environ).gpu_prices


def test_a_simulated_node_is_priced_by_its_scenario() -> None:
    assert prices_of(["--simulate", "dense-h100"]) == (("*H100*", 4.10),)
    mixed = dict(load_scenario("mixed").gpu_hourly_cost)
    assert prices_of(["--simulate", "mixed"]) == tuple(mixed.items())
    assert set(mixed) >= {"*H100*", "*H200*", "*L4*"}


def test_the_price_flag_or_variable_wins_over_the_scenario() -> None:
    assert prices_of(["--simulate", "small", "--cost.gpu-hourly", "*H100*=2.5"]) == (
        ("*H100*", 2.5),
    )
    given = {"GPUWORK_COST_GPU_HOURLY": "*=1"}
    assert prices_of(["--simulate", "small"], given) == (("*", 1.0),)
    assert prices_of(["--simulate", "small", "--cost.gpu-hourly", ""]) == ()  # priced off


# -- listen errors ------------------------------------------------------------------------------


async def test_a_taken_engine_address_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    node = SimulatedNode(load_scenario("small"), clock=lambda: 0.0, pod_block=0x7B2D)
    engines = SimulatedEngines(node, poll_seconds=0)
    ip, port, _ = engines.addresses[("search", "search-1")]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((ip, port))
        taken.listen()
        with pytest.raises(ListenError) as raised:
            await start_engines(engines)
    assert str(raised.value) == (
        f"simulated engine search/search-1: cannot listen on {ip}:{port}: Address already in use"
    )
    assert not any(engines.listening(*key) for key in engines.addresses)  # all let go
