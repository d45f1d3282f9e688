"""The join: which pod and tenant holds each device, and what its own processes did.

A pure function of one collection's inputs: the NVML reading, the kubelet's
allocations, the cluster metadata and the PID-to-pod map from /proc. It decides,
per device, what the device's state can be judged from (`StateSignal`):

- one holder and an activity counter: the device's activity is the holder's;
- several holders (time-slicing, MPS) and per-process utilization with host PIDs:
  each pod is judged by its own processes, never by the whole device's activity;
- several holders without host PIDs (or without pod metadata to map UIDs): every
  holder gets the device's state, and the exporter says it fell back;
- no activity counter at all (A100 MIG has no GPM): a running process is all we know.

The share of a device a container holds is the ids it was given over the ids the
device advertises (`GetAllocatableResources`): 1 for a dedicated device, 1/N per
time-slicing replica. Without allocatable data the ids handed out stand in for it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from exporter.join.device_ids import DeviceIndex
from exporter.join.tenancy import TenantRule, resolve_tenant
from exporter.model import (
    Allocation,
    Attribution,
    ClusterView,
    DeviceStats,
    Holding,
    KubeletDevices,
    NvmlReading,
    StateSignal,
)

_PodKey = tuple[str, str]  # (namespace, pod)
_PER_POD_SIGNALS = (StateSignal.PROCESS_ACTIVITY, StateSignal.PROCESSES)


def gpu_pids(reading: NvmlReading) -> set[int]:
    """Every PID NVML saw on a device: the ones to look up in /proc."""
    return {p.pid for gpu in reading.gpus for d in gpu.devices for p in d.process_list}


def attribute(
    reading: NvmlReading,
    kubelet: KubeletDevices,
    cluster: ClusterView | None,
    rules: Sequence[TenantRule],
    pid_pods: Mapping[int, str],
) -> Attribution:
    """Joins one collection. `pid_pods` maps host PIDs to pod UIDs (empty: none seen)."""
    index = DeviceIndex.of(reading)
    advertised = _advertised(index, kubelet.allocatable.values())

    held: Counter[tuple[str, str, str, str]] = Counter()  # (device, ns, pod, container) -> ids
    handed_out: Counter[str] = Counter()  # device -> ids allocated to any container
    unmapped = 0
    for entry in kubelet.allocated:
        for device_id in entry.device_ids:
            resolved = index.resolve(device_id)
            if resolved is None:
                unmapped += 1
                continue
            held[(resolved.device, entry.namespace, entry.pod, entry.container)] += 1
            handed_out[resolved.device] += 1

    tenants: dict[_PodKey, str] = {}
    allocations = []
    pod_shares: defaultdict[str, dict[_PodKey, float]] = defaultdict(dict)
    for (device_key, namespace, pod, container), ids in sorted(held.items()):
        key = (namespace, pod)
        if key not in tenants:
            tenants[key] = _tenant(rules, namespace, pod, cluster)
        share = ids / max(advertised.get(device_key, 0), handed_out[device_key])
        allocations.append(Allocation(device_key, namespace, pod, container, tenants[key], share))
        pod_shares[device_key][key] = pod_shares[device_key].get(key, 0.0) + share

    gpu_pids_seen = gpu_pids(reading)
    host_pids = bool(pid_pods.keys() & gpu_pids_seen) if gpu_pids_seen else None
    uid_pods = _uid_pods(cluster)
    signals: dict[str, StateSignal] = {}
    holdings: list[Holding] = []
    for device in _devices(reading):
        holders = pod_shares.get(device.device, {})
        signal = _signal(device, len(holders), bool(host_pids) and bool(uid_pods))
        signals[device.device] = signal
        shared = len(holders) > 1 and signal in _PER_POD_SIGNALS
        per_pod = _per_pod_processes(device, pid_pods, uid_pods) if shared else None
        for key, share in sorted(holders.items()):
            if per_pod is None:
                # NVML that cannot list processes (None) must not read as "no process"
                known = device.processes
                processes, activity = 1 if known is None else known, device.sm_active_ratio
            else:
                processes, activity = per_pod.get(key, (0, None))
            if activity is not None:
                activity = min(activity / share, 1.0) if share > 0 else 0.0
            holdings.append(
                Holding(device.device, key[0], key[1], tenants[key], min(share, 1.0),
                        processes, activity)
            )  # fmt: skip
    return Attribution(tuple(allocations), tuple(holdings), signals, host_pids, unmapped)


def holders_only(
    last_reading: NvmlReading,
    kubelet: KubeletDevices,
    cluster: ClusterView | None,
    rules: Sequence[TenantRule],
) -> Attribution:
    """Who holds which device while NVML cannot answer: the kubelet's allocations mapped
    onto the devices NVML listed last. Nothing NVML measured is used: no holder's
    activity, no state signal, no word on host PIDs."""
    joined = attribute(last_reading, kubelet, cluster, rules, {})
    return replace(joined, holdings=(), signals={}, host_pids=None)


def _advertised(index: DeviceIndex, allocatable: Iterable[tuple[str, ...]]) -> Counter[str]:
    """Ids each device is advertised under: its replicas when time-sliced, else 1."""
    counts: Counter[str] = Counter()
    for ids in allocatable:
        for device_id in ids:
            resolved = index.resolve(device_id)
            if resolved is not None:
                counts[resolved.device] += 1
    return counts


def _tenant(
    rules: Sequence[TenantRule], namespace: str, pod: str, cluster: ClusterView | None
) -> str:
    if cluster is None:
        return resolve_tenant(rules, namespace, None, None)
    return resolve_tenant(
        rules, namespace, cluster.pods.get((namespace, pod)), cluster.namespaces.get(namespace)
    )


def _uid_pods(cluster: ClusterView | None) -> dict[str, _PodKey]:
    if cluster is None:
        return {}
    return {meta.uid: key for key, meta in cluster.pods.items()}


def _devices(reading: NvmlReading) -> Iterable[DeviceStats]:
    return (device for gpu in reading.gpus if not gpu.lost for device in gpu.devices)


def _signal(device: DeviceStats, holders: int, pids_map_to_pods: bool) -> StateSignal:
    per_process = any(p.sm_active_ratio is not None for p in device.process_list) or (
        device.processes == 0 and device.sm_active_ratio is not None
    )
    if holders > 1 and pids_map_to_pods:
        return StateSignal.PROCESS_ACTIVITY if per_process else StateSignal.PROCESSES
    if holders > 1:
        return StateSignal.DEVICE_FALLBACK
    return StateSignal.ACTIVITY if device.sm_active_ratio is not None else StateSignal.PROCESSES


def _per_pod_processes(
    device: DeviceStats,
    pid_pods: Mapping[int, str],
    uid_pods: Mapping[str, _PodKey],
) -> dict[_PodKey, tuple[int, float | None]]:
    """Each pod's own processes on a shared device, and their activity where NVML has it."""
    counts: Counter[_PodKey] = Counter()
    activity: defaultdict[_PodKey, float] = defaultdict(float)
    for process in device.process_list:
        key = uid_pods.get(pid_pods.get(process.pid, ""))
        if key is None:
            continue
        counts[key] += 1
        if process.sm_active_ratio is not None:
            activity[key] += process.sm_active_ratio
    return {key: (counts[key], activity.get(key)) for key in counts}
