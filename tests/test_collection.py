"""The collection loop: publishing, timeouts, NVML restarts with backoff."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from exporter.accounting.waste import WasteLedger
from exporter.collection import NVML, Collection, Sources
from exporter.exposition.families import build_families
from exporter.join.tenancy import DEFAULT_TENANT_RULES, parse_tenant_rules
from exporter.model import ContainerDevices, KubeletDevices, NodeSnapshot, NvmlReading
from exporter.sources.kubernetes.source import ClusterSource
from exporter.sources.nvml.reader import NvmlReader
from exporter.sources.nvml.source import NvmlSource
from exporter.sources.podresources.client import PodResourcesClient
from exporter.sources.podresources.source import PodResourcesSource
from exporter.sources.processes import ProcessPods, ProcessSource
from simulator.kubelet import FakeKubelet
from simulator.scenario import Scenario, load_scenario
from tests.support.exporter_run import exporter_on_mixed
from tests.support.sim import Sim, make_sim, scenario_from


class Published:
    def __init__(self) -> None:
        self.snapshots: list[NodeSnapshot] = []

    def __call__(self, snapshot: NodeSnapshot) -> None:
        self.snapshots.append(snapshot)


def nvml_only(reader: NvmlReader, timeout: float = 2.0, sim: Sim | None = None) -> Sources:
    monotonic = sim.clock if sim is not None else time.monotonic
    return Sources(NvmlSource(reader, timeout=timeout, monotonic=monotonic))


def collection_for(sim: Sim, published: Published, timeout: float = 2.0) -> Collection:
    # The simulated node's clock doubles as the loop's monotonic clock.
    return Collection(nvml_only(sim.reader, timeout, sim), node="n1", publish=published,
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

    collection = Collection(nvml_only(sim.reader), node="n1", publish=publish)
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


async def test_energy_holds_while_nvml_is_down_and_counts_on_after_a_driver_reload() -> None:
    sim, published = make_sim(driver_outage(at=25, until=30)), Published()
    collection = collection_for(sim, published)
    gpu = sim.node.gpu_uuids[0]
    joules = []
    for now in (1, 11, 21, 26, 31, 41):  # NVML down at 26; the driver reloaded at 30
        sim.clock.now = now
        snapshot = await collection.collect_once()
        joules.append(snapshot.device_energy[gpu].joules)
        assert not snapshot.device_energy[gpu].estimated
    assert joules[0] == 0 and joules[3] == joules[2]  # held while down
    assert joules == sorted(joules)  # the counter's restart is no fall
    # what NVML counted: 1-21 s, then from the reload on (21-25 s died with the driver)
    truth = sim.node.device_energy_joules(0, None, 1, 21) + sim.node.device_energy_joules(
        0, None, 30, 41
    )
    assert joules[-1] == pytest.approx(truth, rel=1e-6)
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
    collection = Collection(nvml_only(reader, timeout=0.05), node="n1", publish=published)
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


# -- the kubelet's last answer standing in, and churn through the whole loop ----------


KEEP_LAST = 60.0


class Node:
    """The `small` node, a fake kubelet that answers what `answer` holds, and the loop
    reading NVML, the kubelet and /proc."""

    def __init__(self, tmp_path: Path) -> None:
        self.sim: Sim = make_sim("small")
        self.answer = self.sim.node.kubelet_devices(self.sim.clock())
        self.kubelet = FakeKubelet(str(tmp_path / "kubelet.sock"), lambda: self.answer)
        self.kubelet.start()
        client = PodResourcesClient(self.kubelet.socket_path, timeout=1.0,
                                    monotonic=self.sim.clock)  # fmt: skip
        sources = Sources(
            NvmlSource(self.sim.reader, timeout=5.0, monotonic=self.sim.clock),
            kubelet=PodResourcesSource(client, timeout=5.0, keep_last=KEEP_LAST),
            processes=ProcessSource(ProcessPods(str(tmp_path / "no-proc")), timeout=5.0),
            cluster=ClusterSource(self.sim.node.cluster_view),
        )
        self.collection = Collection(
            sources, node="n", publish=lambda _: None,
            rules=parse_tenant_rules(DEFAULT_TENANT_RULES),
            ledger=WasteLedger(window=60.0, busy_threshold=0.05, max_step=30.0),
            monotonic=self.sim.clock,
        )  # fmt: skip

    async def collect(self, advance: float = 10.0) -> NodeSnapshot:
        self.sim.clock.advance(advance)
        return await self.collection.collect_once()

    async def close(self) -> None:
        await self.collection.close()
        self.kubelet.stop()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    node = Node(tmp_path)
    yield node
    await node.close()


def series(snapshot: NodeSnapshot, prefix: str = "gpuwork_device_") -> set[tuple[str, ...]]:
    """Every sample of the attribution families, as (name, label values...)."""
    names = ("allocation", "state", "state_seconds", "state_signal")
    return {
        (s.name, *s.labels.values())
        for f in build_families(snapshot)
        if f.name in {prefix + n for n in names}
        for s in f.samples
    }


async def test_a_kubelet_outage_keeps_the_last_allocations_for_a_while(node: Node) -> None:
    first = await node.collect()
    assert first.attribution is not None and first.attribution.allocations
    assert first.collectors["podresources"].success

    node.kubelet.fail_with = grpc.StatusCode.UNAVAILABLE
    during = await node.collect()
    assert not during.collectors["podresources"].success
    assert during.attribution is not None
    assert during.attribution.allocations == first.attribution.allocations
    assert during.errors_total[("podresources", "unavailable")] == 1

    await node.collect(advance=KEEP_LAST)  # past keep_last since the last answer
    too_old = await node.collect()
    assert too_old.attribution is None and too_old.ledger is None
    assert series(too_old) == set()  # no allocation is better than a wrong one

    node.kubelet.fail_with = None
    node.sim.clock.advance(60.0)  # past the client's backoff
    back = await node.collect()
    assert back.collectors["podresources"].success
    assert back.attribution is not None
    assert back.attribution.allocations == first.attribution.allocations


async def test_a_missing_socket_leaves_device_metrics_alone(node: Node) -> None:
    node.kubelet.stop()
    snapshot = await node.collect()
    assert snapshot.attribution is None
    assert snapshot.errors_total[("podresources", "socket_missing")] == 1
    assert {f.name for f in build_families(snapshot)} >= {"gpuwork_device_info"}
    assert [s for f in build_families(snapshot) if f.name == "gpuwork_device_info"
            for s in f.samples]  # fmt: skip


@pytest.mark.slow
async def test_thousands_of_pods_come_and_go_and_leave_no_series_and_no_memory_behind(
    node: Node,
) -> None:
    devices = node.answer.allocatable["nvidia.com/gpu"]

    async def generation(number: int) -> set[tuple[str, ...]]:
        node.answer = KubeletDevices(
            tuple(
                ContainerDevices(f"ns-{number % 7}", f"pod-{number}-{i}", "main",
                                 "nvidia.com/gpu", (device,))
                for i, device in enumerate(devices)
            ),
            node.answer.allocatable,
        )  # fmt: skip
        return series(await node.collect())

    first = await generation(0)
    for number in range(1, 200):  # warm up: caches, interned strings, gRPC buffers
        await generation(number)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for number in range(200, 2200):
        last = await generation(number)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    assert len(last) == len(first)  # the same number of series, whatever the churn
    pods = {value for sample in last for value in sample if value.startswith("pod-")}
    assert pods == {f"pod-2199-{i}" for i in range(len(devices))}
    assert grown < 256 * 1024, f"{grown} bytes more after 2,000 generations of pods"


# -- one source failing alone costs only its own series ------------------------------


def with_fault(fault: dict[str, Any]) -> Scenario:
    """The `mixed` node with one more fault."""
    mixed = load_scenario("mixed")
    data = mixed.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return scenario_from({**data, "faults": [*data.get("faults", []), fault]})


def sampled(snapshot: NodeSnapshot) -> set[str]:
    """The families that have at least one sample."""
    return {f.name for f in build_families(snapshot) if f.samples}


DEVICE = "gpuwork_device_info"
ALLOCATION = "gpuwork_device_allocation"
TOKENS = "gpuwork_tokens"
ENGINE_UP = "gpuwork_engine_up"
STATE_SECONDS = "gpuwork_device_state_seconds"
EVERY_SOURCE = {DEVICE, ALLOCATION, TOKENS, ENGINE_UP, STATE_SECONDS}


async def test_nvml_down_leaves_attribution_and_engines_flowing(tmp_path: Path) -> None:
    # the driver unloaded for 60 s, as the issue tried it by hand
    outage = with_fault({"kind": "driver_not_loaded", "at": 200, "until": 260})
    async with exporter_on_mixed(tmp_path, scenario=outage) as run:
        before = await run.collect(20)  # to t=201: just into the outage
        down = await run.collect(3)
        assert before.nvml is None and down.nvml is None and not down.nvml_up
        assert not down.collectors[NVML].success
        assert sampled(down) >= EVERY_SOURCE - {DEVICE}
        assert DEVICE not in sampled(down)
        assert down.collectors["podresources"].success and down.collectors["engines"].success
        # what holds which device is still known; what it did is not judged
        assert down.attribution is not None and down.attribution.allocations
        assert down.attribution.signals == {} and down.ledger is not None
        assert down.ledger.device_states == {}
        assert before.ledger is not None and down.ledger.seconds == before.ledger.seconds
        tokens = sum(c for w in down.work for m in w.models for c in m.counters.values())
        later = await run.collect(2)
        assert sum(c for w in later.work for m in w.models for c in m.counters.values()) > tokens
        back = await run.collect(5)  # t=311: NVML initialized again
        assert back.nvml_up and back.nvml is not None and sampled(back) >= EVERY_SOURCE
        assert back.ledger is not None and back.ledger.device_states


async def test_the_kubelet_down_leaves_devices_and_engines_flowing(tmp_path: Path) -> None:
    async with exporter_on_mixed(tmp_path) as run:
        await run.collect(2)
        run.kubelet.fail_with = grpc.StatusCode.UNAVAILABLE
        down = await run.collect(2)
        assert not down.collectors["podresources"].success
        assert down.errors_total[("podresources", "unavailable")] >= 1
        assert sampled(down) >= EVERY_SOURCE  # its last allocations stand in


async def test_proc_failing_leaves_the_rest_flowing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ProcessPods, pids: Any) -> dict[int, str]:
        raise RuntimeError("a bug reading /proc")

    async with exporter_on_mixed(tmp_path) as run:
        await run.collect(2)
        monkeypatch.setattr(ProcessPods, "pod_uids", broken)
        down = await run.collect(2)
        assert not down.collectors["processes"].success
        assert down.errors_total[("processes", "internal")] == 3
        assert sampled(down) >= EVERY_SOURCE


async def test_the_api_server_view_failing_leaves_the_rest_flowing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("a bug in the watch")

    async with exporter_on_mixed(tmp_path) as run:
        await run.collect(2)
        monkeypatch.setattr(run.sim.node, "cluster_view", broken)
        down = await run.collect(2)
        assert not down.collectors["kubernetes"].success and down.metadata_stale
        assert down.errors_total[("kubernetes", "internal")] == 3
        assert sampled(down) >= EVERY_SOURCE  # the last view stands in


async def test_every_engine_down_leaves_the_rest_flowing(tmp_path: Path) -> None:
    async with exporter_on_mixed(tmp_path) as run:
        up = await run.collect(2)
        await run.engines.stop()
        down = await run.collect(1)
        assert not down.collectors["engines"].success
        assert all(not w.up for w in down.work)
        assert sampled(down) >= EVERY_SOURCE  # the tokens hold their values
        assert {w.pod for w in down.work} == {w.pod for w in up.work}
