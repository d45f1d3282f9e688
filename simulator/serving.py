"""`gpuwork-exporter --simulate SCENARIO`: the exporter on a simulated node.

The simulated node serves what a real one would: NVML answered by `SimulatedNvml`, a
kubelet pod-resources server on a temporary socket, a temporary /proc, the pods'
metadata, and each engine as an HTTP server on a loopback address of its own. The
exporter reads them through its real sources; only the GPU is simulated. The product
imports this module only when `--simulate` is given.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from exporter.errors import ListenError, os_reason
from exporter.node import NodeInputs
from exporter.settings import Settings
from exporter.sources.kubernetes.source import ClusterSource
from exporter.sources.nvml.library import Nvml
from simulator.engines import SimulatedEngines
from simulator.kubelet import FakeKubelet
from simulator.node import PodAddressError, SimulatedNode, probe_listen
from simulator.nvml import SimulatedNvml
from simulator.proc import write_proc_root
from simulator.scenario import exporter_restarts, load_scenario


class Simulation:
    """A simulated node as `--simulate` and the settings describe it. Loading it raises
    `ScenarioError` for a scenario that cannot be loaded."""

    def __init__(self, settings: Settings) -> None:
        assert settings.simulate is not None
        scenario = load_scenario(settings.simulate)
        self.node = SimulatedNode(scenario)
        self.nvml: Nvml = SimulatedNvml(self.node)  # checked against the reader's Protocol
        named = "node_name" in settings.model_fields_set
        self.name = settings.node_name if named else scenario.node
        # --cost.gpu-hourly when given (as a flag or variable, even empty), else the
        # scenario's `gpu_hourly_cost`
        priced = "cost_gpu_hourly" in settings.model_fields_set
        self.gpu_prices = settings.gpu_prices if priced else scenario.gpu_prices
        # the scenario's `engine_catalog` file ("": none): --engines.catalog's default
        self.engine_catalog = scenario.engine_catalog_path()

    def exporter_restarts(self) -> list[float]:
        """Seconds from now to each restart of the exporter the scenario holds
        (`exporter_restart` faults still ahead), each counted from the one before."""
        now = previous = self.node.clock()
        waits = []
        for at in exporter_restarts(self.node.scenario):
            if at > now:
                waits.append(at - previous)
                previous = at
        return waits

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[NodeInputs]:
        """The simulated node's kubelet, /proc and engines, served until the end of the
        context. An engine address that cannot be listened on raises `ListenError`."""
        node = self.node
        with tempfile.TemporaryDirectory(prefix="gpuwork-sim-") as scratch:
            proc = Path(scratch, "proc")
            write_proc_root(node, proc)
            socket_path = os.path.join(scratch, "kubelet.sock")
            kubelet = FakeKubelet(socket_path, lambda: node.kubelet_devices(node.clock()))
            kubelet.start()
            try:
                engines = SimulatedEngines(node)
                await start_engines(engines)
                try:
                    yield NodeInputs(self.name, self.nvml, socket_path, str(proc),
                                     ClusterSource(node.cluster_view), self.gpu_prices)  # fmt: skip
                finally:
                    await engines.stop()
            finally:
                kubelet.stop()


async def start_engines(engines: SimulatedEngines) -> None:
    """Starts the engines; an address that cannot be listened on raises a `ListenError`
    that names the pod and its address."""
    try:
        await engines.start()
    except OSError as error:
        await engines.stop()  # let go of what did open, then find the address that did not
        for (namespace, name), (ip, port, _) in engines.addresses.items():
            try:
                probe_listen(ip, port)
            except PodAddressError as taken:
                raise ListenError(f"simulated engine {namespace}/{name}: {taken}") from error
        raise ListenError(f"simulated engines cannot listen: {os_reason(error)}") from error
