"""Shared pieces of the benchmarks: a fake clock, simulated nodes, statistics."""

from __future__ import annotations

import importlib
import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.collection import Collection
from exporter.logs import configure_logging
from exporter.metrics import SnapshotCollector
from exporter.model import NodeSnapshot
from exporter.nvml_reader import NvmlReader
from exporter.simulation.fake_nvml import SimulatedNvml
from exporter.simulation.node import ManualClock, SimulatedNode
from exporter.simulation.scenario import Scenario, load_scenario

CYCLE_SECONDS = 10.0  # simulated time between collections, like a 10 s scrape interval


def quiet_logs() -> None:
    """Warnings and errors only, on stderr: benchmark output stays readable."""
    configure_logging("warning", "logfmt")


class FakeClock(ManualClock):
    """The simulation's manual clock, moving one collection interval by default."""

    def advance(self, seconds: float = CYCLE_SECONDS) -> None:
        super().advance(seconds)


@dataclass
class Sim:
    """One simulated node wired to the exporter's collection loop."""

    clock: FakeClock
    nvml: SimulatedNvml
    reader: NvmlReader
    snapshots: SnapshotCollector
    collection: Collection

    async def cycle(self) -> NodeSnapshot:
        """One collection, then the simulated clock moves to the next one."""
        snapshot = await self.collection.collect_once()
        self.clock.advance()
        return snapshot


def make_sim(scenario: Scenario | str) -> Sim:
    if isinstance(scenario, str):
        scenario = load_scenario(scenario)
    clock = FakeClock()
    nvml = SimulatedNvml(SimulatedNode(scenario, clock=clock))
    reader = NvmlReader(nvml)
    snapshots = SnapshotCollector()
    collection = Collection(reader, node=scenario.node, publish=snapshots.update, timeout=5.0)
    return Sim(clock, nvml, reader, snapshots, collection)


def mig_scenario(devices_per_gpu: Sequence[int], name: str = "bench") -> Scenario:
    """GPUs split into 1g.10gb MIG instances, one busy pod on every instance."""
    gpus = [{"model": "H100-SXM5-80GB", "mig": ["1g.10gb"] * n} for n in devices_per_gpu]
    pods = [
        {"name": f"p{g}-{s}", "namespace": "bench", "tenant": "bench",
         "devices": [f"{g}/{s}"], "load": "busy"}
        for g, n in enumerate(devices_per_gpu)
        for s in range(n)
    ]  # fmt: skip
    return Scenario.model_validate({"name": name, "gpus": gpus, "pods": pods})


def device_count(snapshot: NodeSnapshot) -> int:
    return sum(len(gpu.devices) for gpu in snapshot.nvml.gpus) if snapshot.nvml else 0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in 0-100."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux) or psutil."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    psutil = importlib.import_module("psutil")  # not Linux: psutil (no type stubs here)
    return int(psutil.Process().memory_info().rss)


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "nproc": str(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
