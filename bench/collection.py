"""Collection cycle cost: CPU and wall time of `Collection.collect_once`.

One cycle is what the exporter does every interval: every NVML read (in the
worker thread), the snapshot, and `SnapshotCollector.update` (build_families).
CPU is `time.process_time`, so the worker thread counts. The scaling table runs
1, 8, 56 and 112 MIG devices round-robin, one cycle of each per round.
Run: `python -m bench.collection`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench._common import (
    FakeClock,
    Sim,
    device_count,
    make_sim,
    median,
    mig_scenario,
    percentile,
    quiet_logs,
)
from exporter.collection import Collection, Sources
from exporter.exposition.families import SnapshotCollector
from exporter.model import NodeSnapshot
from exporter.sources.nvml.reader import NvmlReader
from exporter.sources.nvml.source import NvmlSource
from simulator.node import SimulatedNode
from simulator.nvml import SimulatedNvml
from simulator.scenario import load_scenario

CYCLES = 300
WARMUP = 5
PROFILE_CYCLES = 40
SCALING_ROUNDS = 60
SCALING = {  # devices -> 1g.10gb instances per GPU
    1: [1],
    8: [4, 4],
    56: [7] * 8,
    112: [7] * 16,
}


class _TimedNvml:
    """Wraps the simulated NVML and adds up the time spent inside its calls."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._nvml, name)
        if not callable(target):
            return target

        def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return target(*args)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


@dataclass
class Cycle:
    cpu: float
    wall: float
    calls: int


@dataclass
class ScalingRow:
    devices: int
    cpu_ms: float
    wall_ms: float
    calls: int

    @property
    def per_device_us(self) -> float:
        return self.cpu_ms * 1e3 / self.devices


@dataclass
class CollectionResult:
    devices: int
    cycles: int
    cold_cpu_ms: float
    cold_calls: int
    cpu_ms_median: float
    cpu_ms_mean: float
    wall_p50_ms: float
    wall_p99_ms: float
    calls: int
    simulator_share: float  # of a cycle's wall time, spent inside simulated NVML calls
    own_ms: float  # wall ms per cycle outside simulated NVML calls
    build_families_ms: float
    scaling: list[ScalingRow]

    @property
    def per_device_us(self) -> float:
        return self.cpu_ms_median * 1e3 / self.devices


async def _cycle(sim: Sim) -> Cycle:
    cpu, wall = time.process_time(), time.perf_counter()
    snapshot = await sim.cycle()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Cycle(cpu, wall, snapshot.nvml.nvml_calls if snapshot.nvml else 0)


async def _dense() -> tuple[Cycle, list[Cycle], int]:
    sim = make_sim("dense-h100")
    cold = await _cycle(sim)
    for _ in range(WARMUP):
        await sim.cycle()
    cycles = [await _cycle(sim) for _ in range(CYCLES)]
    devices = device_count(await sim.cycle())
    await sim.collection.close()
    return cold, cycles, devices


async def _profile() -> tuple[float, float, float]:
    """Per dense-h100 cycle: share of wall time inside simulated NVML, the rest in
    ms (the exporter's own work, plus this wrapper's), and build_families ms."""
    clock = FakeClock()
    nvml = _TimedNvml(SimulatedNvml(SimulatedNode(load_scenario("dense-h100"), clock=clock)))
    snapshots = SnapshotCollector()
    publish_s = [0.0]

    def publish(snapshot: NodeSnapshot) -> None:
        started = time.perf_counter()
        snapshots.update(snapshot)
        publish_s[0] += time.perf_counter() - started

    nvml_source = NvmlSource(NvmlReader(nvml), timeout=5.0)
    collection = Collection(Sources(nvml_source), node="bench", publish=publish)
    for _ in range(WARMUP):
        await collection.collect_once()
        clock.advance()
    nvml.seconds = publish_s[0] = 0.0
    started = time.perf_counter()
    for _ in range(PROFILE_CYCLES):
        await collection.collect_once()
        clock.advance()
    wall = time.perf_counter() - started
    await collection.close()
    own_ms = (wall - nvml.seconds) / PROFILE_CYCLES * 1e3
    return nvml.seconds / wall, own_ms, publish_s[0] / PROFILE_CYCLES * 1e3


async def _scaling() -> list[ScalingRow]:
    sims = {n: make_sim(mig_scenario(layout, f"bench-{n}")) for n, layout in SCALING.items()}
    for sim in sims.values():
        for _ in range(WARMUP):
            snapshot = await sim.cycle()
    samples: dict[int, list[Cycle]] = {n: [] for n in sims}
    for _ in range(SCALING_ROUNDS):
        for n, sim in sims.items():
            samples[n].append(await _cycle(sim))
    rows = []
    for n, sim in sims.items():
        snapshot = await sim.cycle()
        if device_count(snapshot) != n:
            raise AssertionError(f"scenario for {n} devices reads {device_count(snapshot)}")
        await sim.collection.close()
        rows.append(
            ScalingRow(
                devices=n,
                cpu_ms=median([c.cpu for c in samples[n]]) * 1e3,
                wall_ms=median([c.wall for c in samples[n]]) * 1e3,
                calls=samples[n][-1].calls,
            )
        )
    return rows


def run() -> CollectionResult:
    quiet_logs()
    cold, cycles, devices = asyncio.run(_dense())
    share, own_ms, build_ms = asyncio.run(_profile())
    scaling = asyncio.run(_scaling())
    cpu = [c.cpu for c in cycles]
    wall = [c.wall for c in cycles]
    return CollectionResult(
        devices=devices,
        cycles=len(cycles),
        cold_cpu_ms=cold.cpu * 1e3,
        cold_calls=cold.calls,
        cpu_ms_median=median(cpu) * 1e3,
        cpu_ms_mean=sum(cpu) / len(cpu) * 1e3,
        wall_p50_ms=percentile(wall, 50) * 1e3,
        wall_p99_ms=percentile(wall, 99) * 1e3,
        calls=cycles[-1].calls,
        simulator_share=share,
        own_ms=own_ms,
        build_families_ms=build_ms,
        scaling=scaling,
    )


def scaling_table(rows: list[ScalingRow]) -> str:
    base = next((r for r in rows if r.devices == 56), rows[-1])
    lines = [
        "| devices | CPU ms / cycle | wall ms / cycle | CPU µs / device | per-device vs 56 "
        "| NVML calls / cycle | calls / device |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.devices} | {r.cpu_ms:.2f} | {r.wall_ms:.2f} | {r.per_device_us:.0f} "
            f"| {r.per_device_us / base.per_device_us:.2f} | {r.calls} "
            f"| {r.calls / r.devices:.2f} |"
        )
    return "\n".join(lines)


def summary(r: CollectionResult) -> str:
    return "\n".join(
        [
            f"collection cycle, dense-h100 ({r.devices} devices), {r.cycles} cycles",
            f"  CPU per cycle: {r.cpu_ms_median:.2f} ms median, {r.cpu_ms_mean:.2f} ms mean; "
            f"{r.per_device_us:.0f} µs per device",
            f"  wall per cycle: p50 {r.wall_p50_ms:.2f} ms, p99 {r.wall_p99_ms:.2f} ms",
            f"  NVML calls per cycle: {r.calls} steady, {r.cold_calls} on the first "
            f"({r.cold_cpu_ms:.2f} ms CPU)",
            f"  inside simulated NVML: {r.simulator_share:.0%} of cycle wall time; outside it "
            f"{r.own_ms:.2f} ms per cycle, of which build_families {r.build_families_ms:.2f} ms",
            f"scaling ({SCALING_ROUNDS} round-robin rounds, medians):",
            scaling_table(r.scaling),
        ]
    )


def main() -> None:
    print(summary(run()))


if __name__ == "__main__":
    main()
