"""The frozen values that flow from the sources to `/metrics`.

Sources produce these; nothing downstream mutates them. A scrape renders the
latest `NodeSnapshot` and nothing else, so every field here is plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class MigMode(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"  # a lost GPU no longer says


class ActivitySource(StrEnum):
    """Where a device's SM activity comes from; `NONE` means the hardware cannot tell."""

    GPM = "gpm"
    UTILIZATION = "utilization"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """One compute process on a device, as NVML reports it (host PID namespace)."""

    pid: int
    memory_used_bytes: int | None
    sm_active_ratio: float | None  # per-process utilization; None where NVML cannot tell (MIG)


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """One allocatable device: a whole GPU, or one MIG instance of it."""

    device: str  # the GPU UUID for a whole GPU, the MIG-… UUID for an instance
    gpu_uuid: str
    mig_profile: str  # e.g. "1g.10gb"; empty for a whole GPU
    gpu_instance_id: int | None
    compute_instance_id: int | None
    gpu_fraction: float
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    sm_active_ratio: float | None
    activity_source: ActivitySource
    processes: int | None
    process_list: tuple[ProcessStats, ...] = ()


@dataclass(frozen=True, slots=True)
class GpuStats:
    """One physical GPU. A lost GPU keeps its identity and nothing else."""

    uuid: str
    index: int
    model_name: str
    pci_bus_id: str
    mig_mode: MigMode
    lost: bool = False
    power_watts: float | None = None
    energy_joules: float | None = None
    gpu_temperature_celsius: float | None = None
    memory_temperature_celsius: float | None = None
    sm_clock_hertz: float | None = None
    memory_clock_hertz: float | None = None
    clock_event_reasons: int | None = None  # NVML bitmask
    ecc_corrected_errors: int | None = None
    ecc_uncorrected_errors: int | None = None
    pcie_replays: int | None = None
    remapped_rows_correctable: int | None = None
    remapped_rows_uncorrectable: int | None = None
    row_remap_pending: bool | None = None
    row_remap_failed: bool | None = None
    xid_errors: Mapping[int, int] = field(default_factory=dict)  # xid -> count since start
    devices: tuple[DeviceStats, ...] = ()


@dataclass(frozen=True, slots=True)
class NvmlReading:
    """Everything one NVML collection saw on the node."""

    driver_version: str
    gpus: tuple[GpuStats, ...]
    nvml_calls: int  # NVML library calls this reading made, for benchmarks and debugging


@dataclass(frozen=True, slots=True)
class ContainerDevices:
    """Device ids the kubelet handed one container for one resource (or DRA driver)."""

    namespace: str
    pod: str
    container: str
    resource: str  # "nvidia.com/gpu", "nvidia.com/mig-1g.10gb", or a DRA driver name
    device_ids: tuple[str, ...]
    dynamic: bool = False  # allocated through DRA: `resource` is the driver, ids are device names


@dataclass(frozen=True, slots=True)
class KubeletDevices:
    """One answer of the kubelet pod-resources API, filtered to GPU resources."""

    allocated: tuple[ContainerDevices, ...]
    allocatable: Mapping[str, tuple[str, ...]]  # resource -> every device id it can hand out


@dataclass(frozen=True, slots=True)
class PodMeta:
    """What the exporter keeps of one pod on its node: only what it uses."""

    uid: str
    namespace: str
    name: str
    labels: Mapping[str, str]  # only the keys the tenant rules read
    annotations: Mapping[str, str]  # only prometheus.io/* (engine scraping)
    container_ports: Mapping[str, int]  # named container ports
    phase: str
    pod_ip: str
    start_time: float | None  # unix seconds


@dataclass(frozen=True, slots=True)
class NamespaceMeta:
    name: str
    labels: Mapping[str, str]  # only the keys the tenant rules read


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The exporter's in-memory copy of its node's pods and the namespaces."""

    pods: Mapping[tuple[str, str], PodMeta]  # (namespace, name) -> pod
    namespaces: Mapping[str, NamespaceMeta]
    synced: bool  # a first full list has arrived
    stale: bool  # the API server cannot be reached; this is the last known state


@dataclass(frozen=True, slots=True)
class CollectorHealth:
    """How one source fared at its last collection."""

    success: bool
    duration_seconds: float
    last_success_timestamp: float | None  # unix seconds


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    """The whole state a scrape renders."""

    node: str
    nvml_up: bool
    nvml: NvmlReading | None
    collectors: Mapping[str, CollectorHealth]
    errors_total: Mapping[tuple[str, str], int]  # (collector, kind) -> count since start
    dropped_series_total: Mapping[str, int]  # reason -> count since start
