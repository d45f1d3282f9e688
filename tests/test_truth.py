"""Accuracy: what the exporter says per tenant matches the scenario's ground truth.

The real pieces run end to end on the simulated `mixed` node: the NVML reader on the
simulated NVML, the kubelet client against the fake kubelet's gRPC server, /proc
cgroup files, the join, the ledger and the metric families; the truth comes from the
scenario's load profiles alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.attributor import Attributor
from exporter.collection import Collection
from exporter.kubelet import PodResourcesClient
from exporter.ledger import WasteLedger
from exporter.metrics import build_families
from exporter.model import DeviceState, NodeSnapshot
from exporter.processes import ProcessPods
from exporter.simulation.fake_kubelet import FakeKubelet
from exporter.simulation.proc import write_proc_root
from exporter.simulation.truth import tenant_gpu_fractions, tenant_state_seconds
from exporter.tenancy import DEFAULT_TENANT_RULES, parse_tenant_rules
from tests.conftest import Sim, make_sim

WINDOW, THRESHOLD, INTERVAL = 60.0, 0.05, 10.0
STEPS = 180  # 30 minutes: every load profile goes through its phases


@pytest.fixture
def mixed(tmp_path: Path) -> Iterator[tuple[Sim, Collection, list[NodeSnapshot]]]:
    sim = make_sim("mixed", start=1.0)
    write_proc_root(sim.node, tmp_path / "proc")
    kubelet = FakeKubelet(str(tmp_path / "kubelet.sock"),
                          lambda: sim.node.kubelet_devices(sim.clock()))  # fmt: skip
    kubelet.start()
    attributor = Attributor(
        PodResourcesClient(kubelet.socket_path, timeout=2.0, monotonic=sim.clock),
        ProcessPods(str(tmp_path / "proc")),
        parse_tenant_rules(DEFAULT_TENANT_RULES),
        keep_last=300.0,
        monotonic=sim.clock,
    )
    published: list[NodeSnapshot] = []
    collection = Collection(sim.reader, node="sim-mixed", publish=published.append,
                            timeout=5.0, attributor=attributor,
                            ledger=WasteLedger(window=WINDOW, busy_threshold=THRESHOLD,
                                               max_step=3 * INTERVAL),
                            cluster=sim.node.cluster_view, monotonic=sim.clock)  # fmt: skip
    yield sim, collection, published
    kubelet.stop()


def samples(snapshot: NodeSnapshot, name: str) -> list[tuple[dict[str, str], float]]:
    (family,) = [f for f in build_families(snapshot) if f.name == name]
    return [(s.labels, s.value) for s in family.samples]


async def test_tenant_fractions_and_state_seconds_match_the_truth(
    mixed: tuple[Sim, Collection, list[NodeSnapshot]],
) -> None:
    sim, collection, published = mixed
    times = []
    for _ in range(STEPS + 1):
        times.append(sim.clock())
        await collection.collect_once()
        sim.clock.advance(INTERVAL)
    await collection.close()
    last = published[-1]

    # GPU fractions per tenant: allocation share * the device's GPU fraction
    fraction = {labels["device"]: value for labels, value in
                samples(last, "gpuwork_device_gpu_fraction")}  # fmt: skip
    held: defaultdict[str, float] = defaultdict(float)
    for labels, share in samples(last, "gpuwork_device_allocation"):
        held[labels["tenant"]] += share * fraction[labels["device"]]
    truth = tenant_gpu_fractions(sim.node, times[-1])
    assert held.keys() == truth.keys()
    for tenant, value in truth.items():
        assert held[tenant] == pytest.approx(value, rel=0.01), tenant

    # GPU-seconds per tenant and state
    seconds: defaultdict[tuple[str, str], float] = defaultdict(float)
    for labels, value in samples(last, "gpuwork_device_state_seconds"):
        seconds[(labels["tenant"], labels["state"])] += value
    expected = tenant_state_seconds(sim.node, times, window=WINDOW, busy_threshold=THRESHOLD)
    for (tenant, state), value in expected.items():
        assert seconds[(tenant, state)] == pytest.approx(value, rel=0.01), (tenant, state)
    assert {k for k, v in seconds.items() if v > 0} == {k for k, v in expected.items() if v > 0}
    # every state shows up somewhere on this node, or the test proves little
    assert {state for _, state in expected} == set(DeviceState)
    # nothing lost: every device's time is somewhere (a MIG slice in no instance is no device)
    gpus = sum(fraction.values())
    assert sum(seconds.values()) == pytest.approx(gpus * STEPS * INTERVAL, rel=1e-6)
