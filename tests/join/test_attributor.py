"""Attribution across collections: a kubelet that goes away, comes back, and churn."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from exporter.accounting.waste import WasteLedger
from exporter.exposition.families import build_families
from exporter.join.attributor import Attributor
from exporter.join.tenancy import DEFAULT_TENANT_RULES, parse_tenant_rules
from exporter.model import ContainerDevices, KubeletDevices, NodeSnapshot
from exporter.sources.podresources.client import PodResourcesClient
from exporter.sources.processes import ProcessPods
from simulator.kubelet import FakeKubelet
from tests.support.sim import Sim, make_sim

KEEP_LAST = 60.0


class Node:
    """The `small` node, a fake kubelet that answers what `answer` holds, and the attributor."""

    def __init__(self, tmp_path: Path) -> None:
        self.sim: Sim = make_sim("small")
        self.sim.reader.start()
        self.answer = self.sim.node.kubelet_devices(self.sim.clock())
        self.kubelet = FakeKubelet(str(tmp_path / "kubelet.sock"), lambda: self.answer)
        self.kubelet.start()
        self.attributor = Attributor(
            PodResourcesClient(self.kubelet.socket_path, timeout=1.0, monotonic=self.sim.clock),
            ProcessPods(str(tmp_path / "no-proc")),
            parse_tenant_rules(DEFAULT_TENANT_RULES),
            keep_last=KEEP_LAST,
            monotonic=self.sim.clock,
        )
        self.ledger = WasteLedger(window=60.0, busy_threshold=0.05, max_step=30.0)

    def collect(self, advance: float = 10.0) -> NodeSnapshot:
        self.sim.clock.advance(advance)
        reading = self.sim.reader.read()
        result = self.attributor.collect(reading, self.sim.node.cluster_view())
        ledger = (
            self.ledger.update(reading, result.attribution, self.sim.clock())
            if result.attribution is not None
            else None
        )
        return NodeSnapshot(
            node="n", nvml_up=True, nvml=reading, collectors={"podresources": result.kubelet},
            errors_total=result.errors, dropped_series_total=result.dropped_series,
            attribution=result.attribution, ledger=ledger,
        )  # fmt: skip

    def close(self) -> None:
        self.attributor.close()
        self.kubelet.stop()
        self.sim.reader.stop()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(tmp_path)
    yield node
    node.close()


def series(snapshot: NodeSnapshot, prefix: str = "gpuwork_device_") -> set[tuple[str, ...]]:
    """Every sample of the attribution families, as (name, label values...)."""
    names = ("allocation", "state", "state_seconds", "state_signal")
    return {
        (s.name, *s.labels.values())
        for f in build_families(snapshot)
        if f.name in {prefix + n for n in names}
        for s in f.samples
    }


def test_a_kubelet_outage_keeps_the_last_allocations_for_a_while(node: Node) -> None:
    first = node.collect()
    assert first.attribution is not None and first.attribution.allocations
    assert first.collectors["podresources"].success

    node.kubelet.fail_with = grpc.StatusCode.UNAVAILABLE
    during = node.collect()
    assert not during.collectors["podresources"].success
    assert during.attribution is not None
    assert during.attribution.allocations == first.attribution.allocations
    assert during.errors_total[("podresources", "unavailable")] == 1

    node.collect(advance=KEEP_LAST)  # past keep_last since the last answer
    too_old = node.collect()
    assert too_old.attribution is None and too_old.ledger is None
    assert series(too_old) == set()  # no allocation is better than a wrong one

    node.kubelet.fail_with = None
    node.sim.clock.advance(60.0)  # past the client's backoff
    back = node.collect()
    assert back.collectors["podresources"].success
    assert back.attribution is not None
    assert back.attribution.allocations == first.attribution.allocations


def test_a_missing_socket_leaves_device_metrics_alone(node: Node) -> None:
    node.kubelet.stop()
    snapshot = node.collect()
    assert snapshot.attribution is None
    assert snapshot.errors_total[("podresources", "socket_missing")] == 1
    assert {f.name for f in build_families(snapshot)} >= {"gpuwork_device_info"}
    assert [s for f in build_families(snapshot) if f.name == "gpuwork_device_info"
            for s in f.samples]  # fmt: skip


def test_thousands_of_pods_come_and_go_and_leave_no_series_and_no_memory_behind(
    node: Node,
) -> None:
    devices = node.answer.allocatable["nvidia.com/gpu"]

    def generation(number: int) -> set[tuple[str, ...]]:
        node.answer = KubeletDevices(
            tuple(
                ContainerDevices(f"ns-{number % 7}", f"pod-{number}-{i}", "main",
                                 "nvidia.com/gpu", (device,))
                for i, device in enumerate(devices)
            ),
            node.answer.allocatable,
        )  # fmt: skip
        return series(node.collect())

    first = generation(0)
    for number in range(1, 200):  # warm up: caches, interned strings, gRPC buffers
        generation(number)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for number in range(200, 2200):
        last = generation(number)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    assert len(last) == len(first)  # the same number of series, whatever the churn
    pods = {value for sample in last for value in sample if value.startswith("pod-")}
    assert pods == {f"pod-2199-{i}" for i in range(len(devices))}
    assert grown < 256 * 1024, f"{grown} bytes more after 2,000 generations of pods"
