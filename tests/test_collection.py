"""The collection loop: publishing, timeouts, NVML restarts with backoff."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from exporter.collection import NVML, Collection
from exporter.model import NodeSnapshot, NvmlReading
from exporter.sources.nvml.reader import NvmlReader
from simulator.scenario import Scenario
from tests.support.sim import Sim, make_sim, scenario_from


class Published:
    def __init__(self) -> None:
        self.snapshots: list[NodeSnapshot] = []

    def __call__(self, snapshot: NodeSnapshot) -> None:
        self.snapshots.append(snapshot)


def collection_for(sim: Sim, published: Published, timeout: float = 2.0) -> Collection:
    # The simulated node's clock doubles as the loop's monotonic clock.
    return Collection(sim.reader, node="n1", publish=published, timeout=timeout,
                      monotonic=sim.clock, wall_clock=lambda: 1_700_000_000.0)  # fmt: skip


def driver_outage(at: float, until: float) -> Scenario:
    """One H100 whose driver is unloaded from `at` to `until`."""
    faults = [{"kind": "driver_not_loaded", "at": at, "until": until}]
    return scenario_from({"name": "t", "gpus": [{"model": "H100-SXM5-80GB"}], "faults": faults})


async def test_publishes_a_snapshot_per_cycle() -> None:
    sim, published = make_sim("small"), Published()
    collection = collection_for(sim, published)
    assert not collection.ready
    snapshot = await collection.collect_once()
    assert collection.ready and published.snapshots == [snapshot]
    assert snapshot.nvml_up and snapshot.node == "n1"
    assert snapshot.nvml is not None and len(snapshot.nvml.gpus) == 2
    health = snapshot.collectors[NVML]
    assert health.success and health.last_success_timestamp == 1_700_000_000.0
    await collection.close()
    assert sim.nvml.gpm_samples_outstanding == 0
    await collection.close()  # a second close is harmless


async def test_run_collects_until_stopped() -> None:
    sim, published = make_sim("small"), Published()
    three = asyncio.Event()

    def publish(snapshot: NodeSnapshot) -> None:
        published(snapshot)
        if len(published.snapshots) == 3:
            three.set()

    collection = Collection(sim.reader, node="n1", publish=publish, timeout=2.0)
    stop = asyncio.Event()
    task = asyncio.create_task(collection.run(0.01, stop))
    await asyncio.wait_for(three.wait(), 5.0)
    stop.set()
    await asyncio.wait_for(task, 2.0)
    assert all(s.nvml_up for s in published.snapshots)
    await collection.close()


async def test_driver_missing_retries_with_backoff_and_recovers() -> None:
    scenario = driver_outage(at=0, until=9)
    sim, published = make_sim(scenario, start=0.5), Published()
    collection = collection_for(sim, published)
    attempts: list[float] = []
    real_init = sim.nvml.nvmlInit

    def counted_init() -> None:
        attempts.append(sim.clock())
        real_init()

    sim.nvml.nvmlInit = counted_init  # type: ignore[method-assign]
    for _ in range(12):  # one cycle a second
        snapshot = await collection.collect_once()
        sim.clock.advance(1)
    # Down: tried at 0.5, then after 1 s, 2 s, 4 s of backoff; up again at 9.5.
    assert attempts == [0.5, 1.5, 3.5, 7.5]
    assert not published.snapshots[0].nvml_up and published.snapshots[0].nvml is None
    assert published.snapshots[0].errors_total[(NVML, "nvml_init")] == 1
    assert not published.snapshots[0].collectors[NVML].success
    # 7.5 still fails (driver back at 9); the next try, 8 s later, succeeds.
    assert not snapshot.nvml_up
    sim.clock.now = 15.5
    snapshot = await collection.collect_once()
    assert snapshot.nvml_up and snapshot.nvml is not None
    assert snapshot.errors_total[(NVML, "nvml_init")] == 4
    await collection.close()


async def test_nvml_going_away_mid_run_is_reported_and_recovered() -> None:
    scenario = driver_outage(at=5, until=6)
    sim, published = make_sim(scenario), Published()
    collection = collection_for(sim, published)
    assert (await collection.collect_once()).nvml_up
    sim.clock.now = 5.5
    down = await collection.collect_once()
    assert not down.nvml_up and down.errors_total[(NVML, "nvml_down")] == 1
    sim.clock.now = 7
    up = await collection.collect_once()
    assert up.nvml_up and up.nvml is not None and len(up.nvml.gpus) == 1
    await collection.close()


class BlockingReader(NvmlReader):
    """A reader whose read hangs until released, as a wedged driver call would."""

    def __init__(self, nvml: Any) -> None:
        super().__init__(nvml)
        self.release = threading.Event()
        self.block = True

    def read(self) -> NvmlReading:
        if self.block:
            self.release.wait(10)
        return super().read()


async def test_a_hung_read_times_out_and_is_not_piled_up() -> None:
    sim, published = make_sim("small"), Published()
    reader = BlockingReader(sim.nvml)
    collection = Collection(reader, node="n1", publish=published, timeout=0.05)
    timed_out = await collection.collect_once()
    assert timed_out.nvml is None and not timed_out.collectors[NVML].success
    assert timed_out.errors_total[(NVML, "timeout")] == 1
    skipped = await collection.collect_once()  # the hung call still holds the thread
    assert skipped.errors_total[(NVML, "still_running")] == 1
    reader.block = False
    reader.release.set()
    for _ in range(100):
        snapshot = await collection.collect_once()
        if snapshot.nvml is not None:
            break
        await asyncio.sleep(0.01)
    assert snapshot.nvml is not None and snapshot.collectors[NVML].success
    await collection.close()


async def test_a_bug_in_the_reader_does_not_stop_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    sim, published = make_sim("small"), Published()
    collection = collection_for(sim, published)

    def broken() -> NvmlReading:
        raise RuntimeError("boom")

    await collection.collect_once()
    monkeypatch.setattr(sim.reader, "read", broken)
    failed = await collection.collect_once()
    assert failed.nvml is None and failed.errors_total[(NVML, "internal")] == 1
    monkeypatch.undo()
    sim.clock.advance(1)
    assert (await collection.collect_once()).nvml is not None
    await collection.close()


async def test_reader_error_counts_reach_the_snapshot() -> None:
    faults = [{"kind": "gpu_lost", "at": 2, "gpu": 0}]
    scenario = scenario_from({"name": "t", "gpus": [{"model": "L4"}], "faults": faults})
    sim, published = make_sim(scenario), Published()
    collection = collection_for(sim, published)
    await collection.collect_once()
    sim.clock.advance(5)
    snapshot = await collection.collect_once()
    assert snapshot.errors_total == {(NVML, "gpu_lost"): 1}
    await collection.close()
