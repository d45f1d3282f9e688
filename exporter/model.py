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
    # GPM only (Hopper and newer), over the same interval as `sm_active_ratio`; None where
    # the hardware cannot tell
    tensor_active_ratio: float | None = None  # share of time SMs ran any tensor-core op
    dram_bandwidth_ratio: float | None = None  # DRAM bandwidth used / its theoretical peak


@dataclass(frozen=True, slots=True)
class GpuStats:
    """One physical GPU. A lost GPU keeps its identity and nothing else."""

    uuid: str
    index: int
    model_name: str
    pci_bus_id: str
    mig_mode: MigMode
    lost: bool = False
    minor_number: int | None = None  # /dev/nvidia<N>; the NVIDIA DRA driver's `gpu-<N>`
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
    # (device, xid) -> count since start. `device`: the MIG device's UUID where the event
    # named a GPU instance the reader knew on this GPU, else this GPU's own UUID.
    xid_errors: Mapping[tuple[str, int], int] = field(default_factory=dict)
    devices: tuple[DeviceStats, ...] = ()


@dataclass(frozen=True, slots=True)
class NvmlReading:
    """Everything one NVML collection saw on the node."""

    driver_version: str
    gpus: tuple[GpuStats, ...]
    nvml_calls: int  # NVML library calls this reading made, for benchmarks and debugging
    # (sample, reason) -> how many samples NVML did not give in this collection, e.g.
    # ("mig_mode", "not_supported"); both are small fixed sets (the reader's names, NVML's codes)
    absent: Mapping[tuple[str, str], int] = field(default_factory=dict)


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
    declared_ports: tuple[int, ...] = ()  # every TCP container port, named or not, in order


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


class DeviceState(StrEnum):
    """What a device (or one holder's share of it) did over the state window."""

    UNALLOCATED = "unallocated"
    ALLOCATED_NO_PROCESS = "allocated_no_process"  # a pod holds it, nothing runs on it
    ALLOCATED_IDLE = "allocated_idle"  # a process holds it, below the busy threshold
    BUSY = "busy"


class StateSignal(StrEnum):
    """What a device's state was decided from."""

    ACTIVITY = "activity"  # the device's own SM activity (GPM or utilization)
    PROCESS_ACTIVITY = "process_activity"  # each holder's own processes (shared device)
    PROCESSES = "processes"  # no activity signal (A100 MIG): a running process counts as busy
    ENGINE = "engine"  # the pod's inference engine: tokens served or requests running
    DEVICE_FALLBACK = "device_fallback"  # shared, but PIDs cannot be mapped to pods


@dataclass(frozen=True, slots=True)
class Allocation:
    """One container's hold on one device."""

    device: str
    namespace: str
    pod: str
    container: str
    tenant: str
    share: float  # of the device: 1 when dedicated, replicas held / replicas advertised


@dataclass(frozen=True, slots=True)
class Holding:
    """One pod's hold on one device, with what its own processes did in the last interval."""

    device: str
    namespace: str
    pod: str
    tenant: str
    share: float
    processes: int  # this pod's processes on the device (all of the device's when unmapped)
    activity: float | None  # in 0-1 of the pod's share of the device; None: no signal


@dataclass(frozen=True, slots=True)
class Attribution:
    """The pure join of one collection: who holds what and what their processes did."""

    allocations: tuple[Allocation, ...]
    holdings: tuple[Holding, ...]
    signals: Mapping[str, StateSignal]  # device -> what its state is decided from
    host_pids: bool | None  # GPU PIDs resolve to pods through /proc; None: no GPU process
    unmapped_device_ids: int  # allocated ids that match no device on this node


@dataclass(frozen=True, slots=True)
class StateLedger:
    """The waste ledger after one collection: states now and seconds counted since start."""

    device_states: Mapping[str, DeviceState]  # device -> its state now
    signals: Mapping[str, StateSignal]  # device -> what its state was judged from
    # (device, state, tenant, namespace, pod) -> GPU-fraction-weighted seconds since start;
    # the unallocated remainder of a device has empty tenant, namespace and pod.
    seconds: Mapping[tuple[str, DeviceState, str, str, str], float]


@dataclass(frozen=True, slots=True)
class Histogram:
    """A Prometheus histogram as an engine serves it, buckets kept as they are."""

    buckets: tuple[tuple[float, float], ...]  # (upper bound `le`, cumulative count); +Inf last
    count: float
    sum: float


@dataclass(frozen=True, slots=True)
class ModelStats:
    """What one engine says about one model it serves, read from one scrape.

    Counters are the engine's own (they restart at 0 with the engine); None: the engine
    does not serve that family.
    """

    model: str
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    requests_running: float | None = None
    requests_waiting: float | None = None
    requests_finished: float | None = None
    kv_cache_usage_ratio: float | None = None  # 0-1
    preemptions: float | None = None
    time_to_first_token_seconds: Histogram | None = None
    inter_token_latency_seconds: Histogram | None = None


# One engine series of a model: (ModelStats field, the engine's other labels). `series` is
# the label pairs that tell it from the model's other series of that field (a rank, a
# finish reason), `name=value` sorted and comma-joined; "" when there are none.
SeriesKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in an engine's body: a line not read, or the whole body refused."""

    kind: str  # a label value of gpuwork_exporter_errors_total{collector="engines"}
    line: int  # 1-based line number in the body; 0 for the body as a whole
    detail: str


@dataclass(frozen=True, slots=True)
class ModelReading:
    """What one engine says about one model in one scrape, series by series.

    Counters and histograms are kept per engine series, never summed across them: a
    rank's reset must stay visible as that series' own. Gauges are combined per model.
    """

    model: str
    counters: Mapping[SeriesKey, float]  # the engine's own values, since its process start
    histograms: Mapping[SeriesKey, Histogram]
    requests_running: float | None = None
    requests_waiting: float | None = None
    kv_cache_usage_ratio: float | None = None  # 0-1

    def total(self, field_name: str) -> float | None:
        """A counter field over all its series, for reading by people; None if not served."""
        values = [v for (name, _), v in self.counters.items() if name == field_name]
        return sum(values) if values else None


@dataclass(frozen=True, slots=True)
class EngineReading:
    """One engine's /metrics, reduced to what gpuwork uses."""

    engine: str  # a name from the engine catalog: "vllm", "triton", ...
    models: tuple[ModelReading, ...]
    process_start_time: float | None = None  # unix seconds, where the engine says
    problems: tuple[Problem, ...] = ()  # lines not read, at most `MAX_PROBLEMS` kept
    problem_counts: Mapping[str, int] = field(default_factory=dict)  # kind -> lines, all
    dropped_series: int = 0  # series not read because a cap was reached
    matched: str = ""  # which catalog entry matched, and why (for the probe)


@dataclass(frozen=True, slots=True)
class ModelWork:
    """One model of one pod's engine as exported: counters per engine series."""

    model: str
    counters: Mapping[SeriesKey, float]  # each engine series mirrored; a glitch held
    histograms: Mapping[SeriesKey, Histogram]
    requests_running: float | None
    requests_waiting: float | None
    kv_cache_usage_ratio: float | None


@dataclass(frozen=True, slots=True)
class PodWork:
    namespace: str
    pod: str
    tenant: str
    engine: str
    up: bool  # the last scrape succeeded
    models: tuple[ModelWork, ...]
    worked: bool | None  # served a token or ran a request since the last collection
    cold_start_seconds: float | None  # pod start to first served token, where seen


@dataclass(frozen=True, slots=True)
class CollectorHealth:
    """How one source fared at its last collection."""

    success: bool
    duration_seconds: float
    last_success_timestamp: float | None  # unix seconds


@dataclass(frozen=True, slots=True)
class DeviceEnergy:
    """Joules a device used since the exporter first saw it (a counter)."""

    joules: float
    # False: a whole GPU, read from NVML's energy counter. True: a MIG instance, its share
    # of its GPU's energy by `exporter.accounting.energy.split_energy`
    estimated: bool


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    """The whole state a scrape renders."""

    node: str
    nvml_up: bool
    nvml: NvmlReading | None
    collectors: Mapping[str, CollectorHealth]
    errors_total: Mapping[tuple[str, str], int]  # (collector, kind) -> count since start
    dropped_series_total: Mapping[str, int]  # reason -> count since start
    attribution: Attribution | None = None  # None: the kubelet has never answered
    ledger: StateLedger | None = None
    metadata_stale: bool = False  # pod metadata is the last known; the API server is away
    work: tuple[PodWork, ...] = ()  # engine pods holding devices, with their useful work
    device_hourly_cost: Mapping[str, float] = field(default_factory=dict)  # device -> price/h
    device_energy: Mapping[str, DeviceEnergy] = field(default_factory=dict)  # device -> joules
