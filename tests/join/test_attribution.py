"""The join: allocations, shares, tenants, and what each holder's processes did."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from exporter.join.attribution import attribute, gpu_pids
from exporter.join.tenancy import parse_tenant_rules
from exporter.model import (
    ActivitySource,
    ClusterView,
    ContainerDevices,
    DeviceStats,
    GpuStats,
    KubeletDevices,
    MigMode,
    NamespaceMeta,
    NvmlReading,
    PodMeta,
    ProcessStats,
    StateSignal,
)

WHOLE = "GPU-11111111-1111-4111-8111-111111111111"
SLICED = "GPU-22222222-2222-4222-8222-222222222222"
A100 = "GPU-33333333-3333-4333-8333-333333333333"
MIG = "MIG-44444444-4444-4444-8444-444444444444"
RULES = parse_tenant_rules("namespace-label:gpuwork.io/tenant,namespace")


def whole_gpu(uuid: str, index: int, activity: float | None, *processes: ProcessStats) -> GpuStats:
    device = DeviceStats(uuid, uuid, "", None, None, 1.0, 0, 80, activity,
                         ActivitySource.GPM, len(processes), tuple(processes))  # fmt: skip
    return GpuStats(uuid, index, "H100", f"0:{index}", MigMode.DISABLED, devices=(device,))


def a100_mig(*processes: ProcessStats) -> GpuStats:
    device = DeviceStats(MIG, A100, "3g.40gb", 2, 0, 3 / 7, 0, 40, None,
                         ActivitySource.NONE, len(processes), tuple(processes))  # fmt: skip
    return GpuStats(A100, 2, "A100", "0:2", MigMode.ENABLED, devices=(device,))


def proc(pid: int, activity: float | None = None) -> ProcessStats:
    return ProcessStats(pid, 1 << 30, activity)


def node(*gpus: GpuStats) -> NvmlReading:
    return NvmlReading("570", gpus, 0)


def held(
    namespace: str, pod: str, resource: str, *ids: str, container: str = "main"
) -> ContainerDevices:
    return ContainerDevices(namespace, pod, container, resource, ids)


def pod(namespace: str, name: str) -> PodMeta:
    return PodMeta(f"uid-{name}", namespace, name, {}, {}, {}, "Running", "10.0.0.1", None)


def cluster(*pods: PodMeta, tenants: dict[str, str] | None = None) -> ClusterView:
    namespaces = {p.namespace for p in pods}
    labels = tenants or {}
    return ClusterView(
        MappingProxyType({(p.namespace, p.name): p for p in pods}),
        MappingProxyType({
            ns: NamespaceMeta(ns, {"gpuwork.io/tenant": labels[ns]} if ns in labels else {})
            for ns in namespaces
        }),
        synced=True,
        stale=False,
    )  # fmt: skip


REPLICAS = {"nvidia.com/gpu.shared": tuple(f"{SLICED}::{r}" for r in range(4))}
SHARED = node(
    whole_gpu(SLICED, 1, 0.6, proc(101, 0.5), proc(102, 0.0), proc(103, 0.1), proc(999, 0.0))
)
SHARED_PODS = cluster(pod("a", "serve"), pod("b", "notebook"), pod("c", "batch"), pod("d", "new"))
SHARED_ALLOCATED = (
    held("a", "serve", "nvidia.com/gpu.shared", f"{SLICED}::0"),
    held("b", "notebook", "nvidia.com/gpu.shared", f"{SLICED}::1"),
    held("c", "batch", "nvidia.com/gpu.shared", f"{SLICED}::2", f"{SLICED}::3"),
)
PID_PODS = {101: "uid-serve", 102: "uid-notebook", 103: "uid-batch", 999: "uid-elsewhere"}


def test_a_dedicated_gpu_is_judged_by_its_own_activity() -> None:
    kubelet = KubeletDevices(
        (held("chat", "llama", "nvidia.com/gpu", WHOLE),), {"nvidia.com/gpu": (WHOLE,)}
    )
    result = attribute(
        node(whole_gpu(WHOLE, 0, 0.8, proc(7))), kubelet,
        cluster(pod("chat", "llama"), tenants={"chat": "team-chat"}), RULES, {},
    )  # fmt: skip

    (allocation,) = result.allocations
    assert (allocation.device, allocation.pod, allocation.tenant, allocation.share) == (
        WHOLE, "llama", "team-chat", 1.0,
    )  # fmt: skip
    (holding,) = result.holdings
    assert (holding.processes, holding.activity) == (1, 0.8)
    assert result.signals == {WHOLE: StateSignal.ACTIVITY}
    assert result.host_pids is False  # PID 7 is in no pod
    assert result.unmapped_device_ids == 0


def test_time_sliced_replicas_give_shares_and_each_pod_is_judged_by_its_own_processes() -> None:
    kubelet = KubeletDevices(SHARED_ALLOCATED, REPLICAS)
    result = attribute(SHARED, kubelet, SHARED_PODS, RULES, PID_PODS)

    assert {(a.pod, a.share) for a in result.allocations} == {
        ("serve", 0.25), ("notebook", 0.25), ("batch", 0.5),
    }  # fmt: skip
    assert result.signals == {SLICED: StateSignal.PROCESS_ACTIVITY}
    by_pod = {h.pod: (h.processes, h.activity) for h in result.holdings}
    # activity is over the pod's own share: 0.5 of the device's time in a quarter of it
    assert by_pod == {"serve": (1, 1.0), "notebook": (1, 0.0), "batch": (1, pytest.approx(0.2))}
    assert result.host_pids is True


def test_without_host_pids_a_shared_device_falls_back_to_the_device_and_says_so() -> None:
    result = attribute(SHARED, KubeletDevices(SHARED_ALLOCATED, REPLICAS), SHARED_PODS, RULES, {})

    assert result.signals == {SLICED: StateSignal.DEVICE_FALLBACK}
    assert result.host_pids is False
    assert {h.pod: h.processes for h in result.holdings} == {"serve": 4, "notebook": 4, "batch": 4}
    # the device's activity, over each pod's share and capped at 1
    assert {h.pod: h.activity for h in result.holdings} == {
        "serve": 1.0, "notebook": 1.0, "batch": 1.0,
    }  # fmt: skip


def test_without_pod_metadata_pids_cannot_be_mapped_and_tenants_fall_back_to_namespaces() -> None:
    result = attribute(SHARED, KubeletDevices(SHARED_ALLOCATED, REPLICAS), None, RULES, PID_PODS)

    assert result.signals == {SLICED: StateSignal.DEVICE_FALLBACK}
    assert {a.tenant for a in result.allocations} == {"a", "b", "c"}


def test_without_allocatable_data_the_ids_handed_out_stand_in() -> None:
    result = attribute(SHARED, KubeletDevices(SHARED_ALLOCATED[:2], {}), SHARED_PODS, RULES, {})

    assert {a.share for a in result.allocations} == {0.5}


def test_a100_mig_has_no_activity_signal_and_is_judged_by_processes() -> None:
    kubelet = KubeletDevices((held("ads", "ranker", "nvidia.com/mig-3g.40gb", MIG),), {})
    result = attribute(node(a100_mig(proc(5))), kubelet, None, RULES, {5: "uid-ranker"})

    assert result.signals == {MIG: StateSignal.PROCESSES}
    (holding,) = result.holdings
    assert (holding.processes, holding.activity, holding.share) == (1, None, 1.0)


def test_containers_of_one_pod_sum_into_one_holding_and_unknown_ids_are_counted() -> None:
    kubelet = KubeletDevices(
        (
            held("a", "serve", "nvidia.com/gpu.shared", f"{SLICED}::0", container="main"),
            held("a", "serve", "nvidia.com/gpu.shared", f"{SLICED}::1", container="sidecar"),
            held("a", "serve", "nvidia.com/gpu", "GPU-99999999-9999-4999-8999-999999999999"),
        ),
        REPLICAS,
    )
    result = attribute(SHARED, kubelet, SHARED_PODS, RULES, PID_PODS)

    assert [(a.container, a.share) for a in result.allocations] == [
        ("main", 0.25), ("sidecar", 0.25),
    ]  # fmt: skip
    (holding,) = result.holdings
    assert holding.share == 0.5
    assert result.unmapped_device_ids == 1
    assert result.signals == {SLICED: StateSignal.ACTIVITY}  # one pod holds it: its activity


def test_devices_nobody_holds_still_have_a_signal_and_no_holding() -> None:
    result = attribute(node(whole_gpu(WHOLE, 0, 0.0)), KubeletDevices((), {}), None, RULES, {})

    assert result.holdings == ()
    assert result.signals == {WHOLE: StateSignal.ACTIVITY}
    assert result.host_pids is None  # no GPU process: nothing to judge by


def test_gpu_pids() -> None:
    assert gpu_pids(SHARED) == {101, 102, 103, 999}
