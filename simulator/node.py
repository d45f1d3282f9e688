"""A simulated GPU node and its ground truth at any moment.

`SimulatedNode` turns a `Scenario` into what is true on the node at time `t`
(seconds since the node started): which GPUs and MIG instances exist, which are
lost, what each device is doing and which faults have happened. The simulated
NVML answers from it; tests compare the exporter's output with `devices(t)`.

It also says what the node's other sources would: `kubelet_devices(t)` is the
kubelet pod-resources answer (named as the NVIDIA device plugin and DRA driver name
things), `cluster_view()` the pods and namespaces the Kubernetes API would list, and
`simulator.proc` writes the `/proc/<pid>/cgroup` files that tie the
engine processes NVML reports to their pods.
"""

from __future__ import annotations

import errno
import random
import socket
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

from exporter.errors import GpuworkError
from exporter.model import ClusterView, ContainerDevices, KubeletDevices, NamespaceMeta, PodMeta
from exporter.sources.engines.catalog import ENGINES
from simulator.bodies.inhouse import INHOUSE_PORT
from simulator.hardware import GPU_INSTANCE_IDS, GPU_MODELS, MIB, GpuModel, profile_slices
from simulator.loads import (
    MODEL_MEMORY_FRACTION,
    LoadProfile,
    Pipe,
    activity,
    mean_activity,
    pipe_share,
    runs_process,
)
from simulator.scenario import (
    DriverNotLoadedFault,
    EccFault,
    GpuLostFault,
    MigRepartitionFault,
    PcieReplayFault,
    PodSpec,
    Scenario,
    XidFault,
    parse_device_ref,
)

_UUID_NAMESPACE = uuid.UUID("5f1b7a6e-3c2d-4e8f-9a0b-1c2d3e4f5a6b")
_HGX_BUSES = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")

# How the NVIDIA device plugin and DRA driver name what they hand out.
GPU_RESOURCE = "nvidia.com/gpu"  # a whole GPU; device id: its UUID
SHARED_RESOURCE = "nvidia.com/gpu.shared"  # a time-sliced GPU (renamed); id: `<UUID>::<replica>`
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"  # + profile (mixed strategy); id: the MIG UUID
DRA_DRIVER = "gpu.nvidia.com"  # the NVIDIA DRA driver; device name: `gpu-<index>`

TENANT_LABEL = "gpuwork.io/tenant"  # the namespace label that names the tenant
ENGINE_PORT_NAME, ENGINE_PORT = "http", 8000  # the container port an engine serves on
PORT_ANNOTATION = "prometheus.io/port"  # set where an engine's metrics port is not ENGINE_PORT
PATH_ANNOTATION = "prometheus.io/path"  # set where an engine's metrics path is not /metrics
# The container ports the pods of these engines declare, with no `prometheus.io/*`
# annotation, as plain manifests do: the exporter must find the metrics port itself among
# them and its catalog's default ports (exporter.sources.engines.scraper.candidate_ports).
# Triton serves its HTTP API on 8000, gRPC on 8001 and metrics on 8002 (its catalog
# port); llama-server one port, 8080. Named ports first, then the unnamed rest.
DISCOVERED_PORTS: Mapping[str, tuple[Mapping[str, int], tuple[int, ...]]] = MappingProxyType(
    {
        "triton": (MappingProxyType({"http": 8000, "grpc": 8001}), (8000, 8001, 8002)),
        "llamacpp": (MappingProxyType({}), (8080,)),
        "inhouse": (MappingProxyType({}), (INHOUSE_PORT,)),
    }
)


class ManualClock:
    """Seconds since the node started, moved by hand: for tests and benchmarks."""

    def __init__(self, start: float = 1.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True, slots=True)
class MigInstance:
    slot: int
    profile: str
    uuid: str
    gpu_instance_id: int
    compute_instance_id: int
    slices: int
    memory_mib: int


@dataclass(frozen=True, slots=True)
class DeviceTruth:
    """What the exporter should report for one device at one moment."""

    device: str
    gpu_uuid: str
    mig_profile: str
    gpu_instance_id: int | None
    gpu_fraction: float
    memory_used_bytes: int
    memory_total_bytes: int
    sm_active_ratio: float
    processes: int
    pods: tuple[str, ...]  # "namespace/name" of the pods holding it


@dataclass(frozen=True, slots=True)
class _Tenancy:
    pod: PodSpec
    share: int  # how many pods share the device: time-slicing splits its time between them
    replicas: tuple[int, ...]  # time-slicing replicas held; () on a device that is not sliced


class SimulatedNode:
    """The node of a scenario. `clock` gives seconds since the node started (t = 0);
    `wall_start` is that moment in unix seconds, so pods and engines have real start times.

    Without a clock, t counts real seconds from `wall_start` (steadily, by the monotonic
    clock); without `wall_start`, the node starts now.
    """

    def __init__(
        self,
        scenario: Scenario,
        clock: Callable[[], float] | None = None,
        wall_start: float | None = None,
        pod_block: int | None = None,
    ) -> None:
        self.scenario = scenario
        now = time.time()
        self.wall_start: float = now if wall_start is None else wall_start
        blocks = pod_blocks_needed(len(scenario.pods))
        if pod_block is None and wall_start is not None and clock is None:
            pod_block = derived_pod_block(wall_start, blocks)  # agrees with other processes
        elif pod_block is None:
            pod_block = free_pod_block(self._engine_ports(scenario), blocks)
        check_pod_block(pod_block, blocks)
        # the pods' loopback addresses start at 127.<pod_block >> 8>.<pod_block & 255>.1
        self.pod_block: int = pod_block
        if clock is None:
            started = time.monotonic() - (now - self.wall_start)
            clock = lambda: time.monotonic() - started  # noqa: E731
        self.clock: Callable[[], float] = clock
        self.specs = scenario.gpu_specs
        self.models: list[GpuModel] = [GPU_MODELS[spec.model] for spec in self.specs]
        self._energy = [(0.0, 0.0) for _ in self.specs]  # (t, joules) per GPU
        self._layouts: dict[tuple[int, int], tuple[MigInstance | None, ...]] = {}
        # MIG generation per MIG GPU -> the kubelet's answer then
        self._kubelet_answers: dict[tuple[int, ...], KubeletDevices] = {}

    # -- identity ------------------------------------------------------------------

    @cached_property
    def gpu_uuids(self) -> list[str]:
        return [self._uuid("GPU", f"{self.scenario.node}/gpu/{i}") for i in range(len(self.specs))]

    def pci_bus_id(self, index: int) -> str:
        bus = _HGX_BUSES[index] if index < len(_HGX_BUSES) else f"{0xC0 + index:02X}"
        return f"00000000:{bus}:00.0"

    @staticmethod
    def _uuid(prefix: str, key: str) -> str:
        return f"{prefix}-{uuid.uuid5(_UUID_NAMESPACE, key)}"

    def pod_ip(self, index: int) -> str:
        """The loopback IP of the scenario's pod number `index`, in this node's block."""
        return pod_ip(index, self.pod_block)

    @staticmethod
    def _engine_ports(scenario: Scenario) -> list[tuple[int, int]]:
        """(pod number, port) of every pod whose engine listens."""
        return [(i, engine_endpoint(pod)[0]) for i, pod in enumerate(scenario.pods) if pod.engine]

    # -- faults ------------------------------------------------------------------------

    def lost(self, index: int, t: float) -> bool:
        return any(
            isinstance(f, GpuLostFault) and f.gpu == index and f.at <= t
            for f in self.scenario.faults
        )

    def driver_loaded(self, t: float) -> bool:
        return not any(
            isinstance(f, DriverNotLoadedFault) and f.at <= t < f.until
            for f in self.scenario.faults
        )

    def driver_reloaded_between(self, t0: float, t1: float) -> bool:
        """Whether the driver went away at some moment in (t0, t1]."""
        return any(
            isinstance(f, DriverNotLoadedFault) and t0 < f.until and f.at <= t1
            for f in self.scenario.faults
        )

    def ecc_errors(self, index: int, t: float) -> tuple[int, int]:
        faults = [
            f
            for f in self.scenario.faults
            if isinstance(f, EccFault) and f.gpu == index and f.at <= t
        ]
        return sum(f.corrected for f in faults), sum(f.uncorrected for f in faults)

    def pcie_replays(self, index: int, t: float) -> int:
        return sum(
            f.count
            for f in self.scenario.faults
            if isinstance(f, PcieReplayFault) and f.gpu == index and f.at <= t
        )

    def xid_events(self, t0: float, t1: float) -> list[XidFault]:
        """XID faults that happened in (t0, t1], in time order."""
        events = [f for f in self.scenario.faults if isinstance(f, XidFault) and t0 < f.at <= t1]
        return sorted(events, key=lambda f: f.at)

    # -- MIG layout ----------------------------------------------------------------

    def layout_generation(self, index: int, t: float) -> int:
        return sum(
            isinstance(f, MigRepartitionFault) and f.gpu == index and f.at <= t
            for f in self.scenario.faults
        )

    def layout(self, index: int, t: float) -> tuple[MigInstance | None, ...] | None:
        """The MIG instances per slot at time t; None when MIG is off."""
        if self.specs[index].mig is None:
            return None
        return self._layout(index, self.layout_generation(index, t))

    def _layout(self, index: int, generation: int) -> tuple[MigInstance | None, ...]:
        key = (index, generation)
        if key not in self._layouts:  # a few per GPU: one per re-partition
            self._layouts[key] = self._place(index, generation)
        return self._layouts[key]

    def _place(self, index: int, generation: int) -> tuple[MigInstance | None, ...]:
        profiles = self.specs[index].mig or []
        repartitions = [
            f for f in self.scenario.faults if isinstance(f, MigRepartitionFault) and f.gpu == index
        ]
        if generation:
            profiles = sorted(repartitions, key=lambda f: f.at)[generation - 1].mig
        model = self.models[index]
        used: set[int] = set()
        instances: list[MigInstance | None] = []
        for slot, profile in enumerate(profiles):
            if not profile:
                instances.append(None)
                continue
            slices = profile_slices(profile)
            free = [i for i in GPU_INSTANCE_IDS[slices] if i not in used]
            gi = free[0] if free else max(used) + 1
            used.add(gi)
            key = f"{self.gpu_uuids[index]}/mig/{generation}/{slot}"
            instances.append(
                MigInstance(slot, profile, self._uuid("MIG", key), gi, 0, slices,
                            model.mig_profiles[profile])
            )  # fmt: skip
        return tuple(instances)

    # -- load ----------------------------------------------------------------------

    @cached_property
    def _tenancies(self) -> dict[tuple[int, int | None], list[_Tenancy]]:
        """Holders per device, in scenario order; replicas are numbered in that order too."""
        refs: dict[tuple[int, int | None], dict[str, list[int]]] = {}
        pods: dict[str, PodSpec] = {}
        for pod in self.scenario.pods:
            pods[pod_key(pod)] = pod
            for ref in pod.devices:
                held = refs.setdefault(parse_device_ref(ref), {})
                held.setdefault(pod_key(pod), []).append(sum(map(len, held.values())))
        tenancies = {}
        for (index, slot), held in refs.items():
            sliced = slot is None and self.specs[index].replicas > 1
            tenancies[(index, slot)] = [
                _Tenancy(pods[key], len(held), tuple(replicas) if sliced else ())
                for key, replicas in held.items()
            ]
        return tenancies

    def tenants_of(self, index: int, slot: int | None) -> list[_Tenancy]:
        return self._tenancies.get((index, slot), [])

    def device_activity(self, index: int, slot: int | None, t: float) -> float:
        """Time-sliced pods each get 1/N of the device's time."""
        seed = self.scenario.seed
        return sum(
            activity(ten.pod.load, pod_key(ten.pod), seed, t) / ten.share
            for ten in self.tenants_of(index, slot)
        )

    def device_mean_activity(
        self, index: int, slot: int | None, t0: float, t1: float, pipe: Pipe = Pipe.SM
    ) -> float:
        """The device's true mean activity on `pipe` (SMs, tensor cores, DRAM) over [t0, t1]."""
        seed = self.scenario.seed
        return sum(
            mean_activity(ten.pod.load, pod_key(ten.pod), seed, t0, t1)
            * pipe_share(pipe, pod_key(ten.pod), seed)
            / ten.share
            for ten in self.tenants_of(index, slot)
        )

    def gpu_mean_activity(self, index: int, t0: float, t1: float, pipe: Pipe = Pipe.SM) -> float:
        """The GPU's: its MIG instances' activity weighted by their share of its slices."""
        layout = self.layout(index, t1)
        if layout is None:
            return self.device_mean_activity(index, None, t0, t1, pipe)
        slices = self.models[index].mig_slices
        return sum(
            self.device_mean_activity(index, m.slot, t0, t1, pipe) * m.slices / slices
            for m in layout
            if m is not None
        )

    def pod_mean_activity(self, tenancy: _Tenancy, t0: float, t1: float) -> float:
        """What one holder's own processes do on its device: its slice of the device's time."""
        pod = tenancy.pod
        return mean_activity(pod.load, pod_key(pod), self.scenario.seed, t0, t1) / tenancy.share

    def holding_share(self, index: int, tenancy: _Tenancy) -> float:
        """The share of the device a holder was given: replicas held / replicas advertised."""
        return len(tenancy.replicas) / self.specs[index].replicas if tenancy.replicas else 1.0

    def device_processes(self, index: int, slot: int | None) -> list[PodSpec]:
        return [ten.pod for ten in self.tenants_of(index, slot) if runs_process(ten.pod.load)]

    def device_memory_total(self, index: int, slot: int | None, t: float) -> int:
        if slot is None:
            return self.models[index].memory_bytes
        layout = self.layout(index, t) or ()
        instance = layout[slot] if slot < len(layout) else None
        return instance.memory_mib * MIB if instance else 0

    def process_memory(self, index: int, slot: int | None, t: float) -> int:
        """Memory one engine process holds: its share of 90% of the device."""
        tenants = self.tenants_of(index, slot)
        total = self.device_memory_total(index, slot, t)
        return int(total * MODEL_MEMORY_FRACTION / max(len(tenants), 1))

    def device_memory_used(self, index: int, slot: int | None, t: float) -> int:
        return len(self.device_processes(index, slot)) * self.process_memory(index, slot, t)

    # The power model: a GPU draws its idle power, plus (max - idle) x its load, where
    # its load is its SM activity (a MIG GPU's: its instances' weighted by slices). So a
    # MIG instance's own draw is its slices' share of the idle power plus its activity x
    # its fraction x (max - idle): the instances' draws and the free slices' idle power
    # add up to the GPU's.

    def _watts(self, index: int, load: float) -> float:
        model = self.models[index]
        return model.idle_watts + (model.max_watts - model.idle_watts) * min(load, 1.0)

    def energy_joules(self, index: int, t: float) -> float:
        """NVML's counter: energy since the driver last loaded, so a driver reload starts it
        again at 0. Advanced incrementally, so calls must move forward."""
        last_t, joules = self._energy[index]
        if t > last_t:
            reloads = [
                f.until
                for f in self.scenario.faults
                if isinstance(f, DriverNotLoadedFault) and last_t < f.until <= t
            ]
            if reloads:
                last_t, joules = max(reloads), 0.0
            load = self.gpu_mean_activity(index, last_t, t)
            joules += self._watts(index, load) * (t - last_t)
            self._energy[index] = (t, joules)
        return joules

    def power_watts(self, index: int, t: float) -> float:
        return self._watts(index, self.gpu_mean_activity(index, t, t))

    def device_energy_joules(self, index: int, slot: int | None, t0: float, t1: float) -> float:
        """The true energy one device drew over [t0, t1] (the MIG layout of t1), by the power
        model above: a whole GPU's, or a MIG instance's own share of its GPU's."""
        if slot is None:
            return self._watts(index, self.device_mean_activity(index, None, t0, t1)) * (t1 - t0)
        layout = self.layout(index, t1) or ()
        instance = layout[slot] if slot < len(layout) else None
        if instance is None:
            return 0.0
        model = self.models[index]
        fraction = instance.slices / model.mig_slices
        busy = min(self.device_mean_activity(index, slot, t0, t1), 1.0)
        dynamic = (model.max_watts - model.idle_watts) * busy * fraction
        return (model.idle_watts * fraction + dynamic) * (t1 - t0)

    # -- what the kubelet and the Kubernetes API say ---------------------------------

    @cached_property
    def _mig_gpus(self) -> tuple[int, ...]:
        return tuple(i for i, spec in enumerate(self.specs) if spec.mig is not None)

    @cached_property
    def _dra_gpus(self) -> frozenset[int]:
        return frozenset(
            parse_device_ref(ref)[0] for pod in self.scenario.pods if pod.dra for ref in pod.devices
        )

    def kubelet_devices(self, t: float) -> KubeletDevices:
        """What the kubelet's pod-resources List and GetAllocatableResources say at time t.

        Only MIG layouts change over time, so an answer is built once per combination of
        re-partitions seen. A lost GPU stays allocated and allocatable: the kubelet does
        not know it is gone.
        """
        generations = tuple(self.layout_generation(i, t) for i in self._mig_gpus)
        answer = self._kubelet_answers.get(generations)
        if answer is None:  # one per re-partition at most, as time only moves forward
            answer = self._kubelet_answers[generations] = self._kubelet_answer(t)
        return answer

    def _kubelet_answer(self, t: float) -> KubeletDevices:
        allocated: list[ContainerDevices] = []
        for pod in self.scenario.pods:
            ids: dict[str, list[str]] = {}
            for resource, device_id in self._pod_device_ids(pod, t):
                ids.setdefault(resource, []).append(device_id)
            allocated.extend(
                ContainerDevices(pod.namespace, pod.name, pod.container, resource,
                                 tuple(device_ids), dynamic=pod.dra)
                for resource, device_ids in ids.items()
            )  # fmt: skip
        allocatable: dict[str, list[str]] = {}
        for index, gpu_uuid in enumerate(self.gpu_uuids):
            layout = self.layout(index, t)
            replicas = self.specs[index].replicas
            if index in self._dra_gpus:
                continue  # DRA devices live in ResourceSlices, not in GetAllocatableResources
            if layout is not None:
                for m in layout:
                    if m is not None:
                        allocatable.setdefault(MIG_RESOURCE_PREFIX + m.profile, []).append(m.uuid)
            elif replicas > 1:
                shared = allocatable.setdefault(SHARED_RESOURCE, [])
                shared.extend(f"{gpu_uuid}::{r}" for r in range(replicas))
            else:
                allocatable.setdefault(GPU_RESOURCE, []).append(gpu_uuid)
        return KubeletDevices(
            allocated=tuple(allocated),
            allocatable=MappingProxyType({r: tuple(ids) for r, ids in allocatable.items()}),
        )

    def _pod_device_ids(self, pod: PodSpec, t: float) -> list[tuple[str, str]]:
        """(resource, device id) for each device a pod holds at time t, in its own order."""
        held = []
        for index, slot in dict.fromkeys(map(parse_device_ref, pod.devices)):
            if pod.dra:
                held.append((DRA_DRIVER, f"gpu-{index}"))
            elif slot is not None:  # the slot's instance now; none after a re-partition: nothing
                layout = self.layout(index, t) or ()
                instance = layout[slot] if slot < len(layout) else None
                if instance is not None:
                    held.append((MIG_RESOURCE_PREFIX + instance.profile, instance.uuid))
            elif self.specs[index].replicas > 1:
                (tenancy,) = [
                    ten for ten in self.tenants_of(index, None) if pod_key(ten.pod) == pod_key(pod)
                ]
                held.extend(
                    (SHARED_RESOURCE, f"{self.gpu_uuids[index]}::{r}") for r in tenancy.replicas
                )
            else:
                held.append((GPU_RESOURCE, self.gpu_uuids[index]))
        return held

    def cluster_view(self) -> ClusterView:
        """The node's pods and their namespaces, as a synced API server watch holds them."""
        return self._cluster_view

    @cached_property
    def _cluster_view(self) -> ClusterView:
        pods = {
            (pod.namespace, pod.name): PodMeta(
                uid=pod_uid(pod),
                namespace=pod.namespace,
                name=pod.name,
                labels=MappingProxyType(dict(pod.labels)),
                annotations=MappingProxyType(engine_annotations(pod)),
                container_ports=_named_ports(pod),
                phase="Running",
                pod_ip=self.pod_ip(i),
                start_time=self.wall_start - pod.started_before_seconds,
                declared_ports=_declared_ports(pod),
            )
            for i, pod in enumerate(self.scenario.pods)
        }
        namespaces = {
            pod.namespace: NamespaceMeta(
                pod.namespace, MappingProxyType({TENANT_LABEL: pod.tenant})
            )
            for pod in self.scenario.pods
        }
        return ClusterView(
            pods=MappingProxyType(pods),
            namespaces=MappingProxyType(namespaces),
            synced=True,
            stale=False,
        )

    # -- ground truth --------------------------------------------------------------

    def devices(self, t: float) -> list[DeviceTruth]:
        """Every device present at time t, on GPUs that are not lost."""
        truths = []
        for index, gpu_uuid in enumerate(self.gpu_uuids):
            if self.lost(index, t):
                continue
            layout = self.layout(index, t)
            if layout is None:
                truths.append(self._truth(index, None, gpu_uuid, "", None, 1.0, t))
                continue
            slices = self.models[index].mig_slices
            for m in layout:
                if m is not None:
                    truths.append(
                        self._truth(index, m.slot, m.uuid, m.profile, m.gpu_instance_id,
                                    m.slices / slices, t)
                    )  # fmt: skip
        return truths

    def _truth(
        self,
        index: int,
        slot: int | None,
        device: str,
        profile: str,
        gpu_instance_id: int | None,
        fraction: float,
        t: float,
    ) -> DeviceTruth:
        return DeviceTruth(
            device=device,
            gpu_uuid=self.gpu_uuids[index],
            mig_profile=profile,
            gpu_instance_id=gpu_instance_id,
            gpu_fraction=fraction,
            memory_used_bytes=self.device_memory_used(index, slot, t),
            memory_total_bytes=self.device_memory_total(index, slot, t),
            sm_active_ratio=self.device_activity(index, slot, t),
            processes=len(self.device_processes(index, slot)),
            pods=tuple(pod_key(ten.pod) for ten in self.tenants_of(index, slot)),
        )


def pod_key(pod: PodSpec) -> str:
    """`namespace/name`: how load profiles, faults and the ground truth name a pod."""
    return f"{pod.namespace}/{pod.name}"


def engine_endpoint(pod: PodSpec) -> tuple[int, str]:
    """(port, path) where the pod's engine serves its metrics: the scenario's
    `metrics_port`, else its catalog port for the engines of `DISCOVERED_PORTS` or the
    container port `http`; and the engine's default path."""
    if pod.engine is None:
        raise ValueError(f"pod {pod_key(pod)} runs no engine")
    if pod.engine in DISCOVERED_PORTS:  # its one declared port, or its metrics port's
        own = DISCOVERED_PORTS[pod.engine][1][-1]
        return pod.metrics_port or own, "/metrics"
    return pod.metrics_port or ENGINE_PORT, ENGINES[pod.engine].default_path


def _named_ports(pod: PodSpec) -> Mapping[str, int]:
    if pod.engine is None:
        return MappingProxyType({})
    if pod.engine in DISCOVERED_PORTS:
        return DISCOVERED_PORTS[pod.engine][0]
    return MappingProxyType({ENGINE_PORT_NAME: ENGINE_PORT})


def _declared_ports(pod: PodSpec) -> tuple[int, ...]:
    if pod.engine is None:
        return ()
    if pod.engine in DISCOVERED_PORTS:
        return DISCOVERED_PORTS[pod.engine][1]
    return (ENGINE_PORT,)


def engine_annotations(pod: PodSpec) -> dict[str, str]:
    """The pod's `prometheus.io/*` annotations: only where the defaults would miss."""
    if pod.engine is None:
        return {}
    port, path = engine_endpoint(pod)
    annotations = {}
    if pod.engine in DISCOVERED_PORTS and not pod.metrics_port:
        return {}  # found by the exporter among the declared ports
    if port != ENGINE_PORT:
        annotations[PORT_ANNOTATION] = str(port)
    if path != "/metrics":
        annotations[PATH_ANNOTATION] = path
    return annotations


def pod_uid(pod: PodSpec) -> str:
    """The pod's Kubernetes UID: stable across runs."""
    return str(uuid.uuid5(_UUID_NAMESPACE, f"pod/{pod_key(pod)}"))


def pod_pid(pod: PodSpec) -> int:
    """The host PID of the pod's engine process: stable across runs."""
    return 1000 + zlib.crc32(pod_key(pod).encode()) % 4_000_000


POD_HOSTS_PER_BLOCK = 254  # host parts 1-254 of a 127.A.B.0/24 block: 0 and 255 skipped
FIRST_POD_BLOCK = 0x100  # 127.1.0.0: nothing of a node's pods lands in 127.0.0.0/16
LAST_POD_BLOCK = 0xFFFF  # 127.255.255.0
POD_BLOCK_TRIES = 16  # random blocks tried before a taken one is kept


class PodAddressError(GpuworkError, OSError):
    """A simulated pod's address cannot be listened on; the message names it."""


def pod_ip(index: int, block: int) -> str:
    """The IP of pod number `index` on a node whose pod addresses start at block `block`.

    127.A.B.1, 127.A.B.2, … 127.A.B.254, then 127.A.(B+1).1 and so on, where A.B is the
    block (A = block >> 8, B = block & 255): host parts 0 and 255 are skipped. An engine's
    fake server listens there, as a pod's would on its own IP.
    """
    offset, host = divmod(index, POD_HOSTS_PER_BLOCK)
    block += offset
    if index < 0 or not FIRST_POD_BLOCK <= block <= LAST_POD_BLOCK:
        raise ValueError(f"no loopback address for pod number {index} from block {block}")
    return f"127.{block >> 8}.{block & 0xFF}.{host + 1}"


def pod_blocks_needed(pods: int) -> int:
    """/24 blocks a node of `pods` pods spans (at least one)."""
    return max(-(-pods // POD_HOSTS_PER_BLOCK), 1)


def check_pod_block(block: int, blocks: int) -> None:
    if not FIRST_POD_BLOCK <= block <= LAST_POD_BLOCK - blocks + 1:
        raise ValueError(
            f"pod block {block} out of range: {blocks} blocks from "
            f"{FIRST_POD_BLOCK} to {LAST_POD_BLOCK} (127.1.0.0 to 127.255.255.0)"
        )


def derived_pod_block(wall_start: float, blocks: int) -> int:
    """A block that follows from the node's `wall_start` alone: two processes simulating
    the same node from the same moment (the engines in a process of their own) agree."""
    span = LAST_POD_BLOCK - blocks + 1 - FIRST_POD_BLOCK + 1
    return FIRST_POD_BLOCK + zlib.crc32(repr(float(wall_start)).encode()) % span


def free_pod_block(
    engines: Sequence[tuple[int, int]], blocks: int, rng: random.Random | None = None
) -> int:
    """A random block where every engine's (address, port) can be bound now.

    Blocks are drawn from the whole 127.1.0.0-127.255.255.0 range, so simulations running
    at once on one host rarely meet; each draw is checked by binding every engine's address
    and port (and closing it at once). After `POD_BLOCK_TRIES` taken blocks, or when the
    host cannot bind such addresses at all, the last draw is kept: binding it later fails
    with an error naming the address.
    """
    rng = rng or random.SystemRandom()
    block = FIRST_POD_BLOCK
    for _ in range(POD_BLOCK_TRIES):
        block = rng.randint(FIRST_POD_BLOCK, LAST_POD_BLOCK - blocks + 1)
        try:
            for index, port in engines:
                probe_listen(pod_ip(index, block), port)
        except PodAddressError as error:
            if error.errno == errno.EADDRINUSE:
                continue  # another simulation (or anything else) listens there: draw again
        return block
    return block


def probe_listen(ip: str, port: int) -> None:
    """Bind (ip, port) as a listener would, and let go at once; raises `PodAddressError`
    ("cannot listen on 127.5.3.7:8000: Address already in use") when it cannot."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio listens
        try:
            probe.bind((ip, port))
        except OSError as error:
            raise listen_error(ip, port, error) from error


def listen_error(ip: str, port: int, error: OSError) -> PodAddressError:
    """`error` of listening on (ip, port), as one clear line naming the address; its
    `errno` is the original's."""
    clear = PodAddressError(f"cannot listen on {ip}:{port}: {error.strerror or error}")
    clear.errno = error.errno
    return clear


__all__ = [
    "DISCOVERED_PORTS",
    "DRA_DRIVER",
    "ENGINE_PORT",
    "ENGINE_PORT_NAME",
    "GPU_RESOURCE",
    "MIG_RESOURCE_PREFIX",
    "PATH_ANNOTATION",
    "PORT_ANNOTATION",
    "SHARED_RESOURCE",
    "TENANT_LABEL",
    "DeviceTruth",
    "LoadProfile",
    "ManualClock",
    "MigInstance",
    "PodAddressError",
    "SimulatedNode",
    "engine_annotations",
    "engine_endpoint",
    "free_pod_block",
    "listen_error",
    "pod_ip",
    "pod_key",
    "pod_pid",
    "pod_uid",
    "probe_listen",
]
