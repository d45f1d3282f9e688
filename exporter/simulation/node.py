"""A simulated GPU node and its ground truth at any moment.

`SimulatedNode` turns a `Scenario` into what is true on the node at time `t`
(seconds since the node started): which GPUs and MIG instances exist, which are
lost, what each device is doing and which faults have happened. The simulated
NVML answers from it; tests compare the exporter's output with `devices(t)`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from exporter.simulation.hardware import GPU_INSTANCE_IDS, GPU_MODELS, MIB, GpuModel, profile_slices
from exporter.simulation.loads import (
    MODEL_MEMORY_FRACTION,
    LoadProfile,
    activity,
    mean_activity,
    runs_process,
)
from exporter.simulation.scenario import (
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
    share: int  # how many pods share the device


class SimulatedNode:
    def __init__(self, scenario: Scenario, clock: Callable[[], float] | None = None) -> None:
        self.scenario = scenario
        if clock is None:
            started = time.monotonic()
            clock = lambda: time.monotonic() - started  # noqa: E731
        self.clock: Callable[[], float] = clock
        self.specs = scenario.gpu_specs
        self.models: list[GpuModel] = [GPU_MODELS[spec.model] for spec in self.specs]
        self._energy = [(0.0, 0.0) for _ in self.specs]  # (t, joules) per GPU
        self._layouts: dict[tuple[int, int], tuple[MigInstance | None, ...]] = {}

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
        holders: dict[tuple[int, int | None], list[PodSpec]] = {}
        for pod in self.scenario.pods:
            for ref in pod.devices:
                holders.setdefault(parse_device_ref(ref), []).append(pod)
        return {
            device: [_Tenancy(pod, len(pods)) for pod in pods] for device, pods in holders.items()
        }

    def tenants_of(self, index: int, slot: int | None) -> list[_Tenancy]:
        return self._tenancies.get((index, slot), [])

    def device_activity(self, index: int, slot: int | None, t: float) -> float:
        """Time-sliced pods each get 1/N of the device's time."""
        seed = self.scenario.seed
        return sum(
            activity(ten.pod.load, _pod_key(ten.pod), seed, t) / ten.share
            for ten in self.tenants_of(index, slot)
        )

    def device_mean_activity(self, index: int, slot: int | None, t0: float, t1: float) -> float:
        seed = self.scenario.seed
        return sum(
            mean_activity(ten.pod.load, _pod_key(ten.pod), seed, t0, t1) / ten.share
            for ten in self.tenants_of(index, slot)
        )

    def gpu_mean_activity(self, index: int, t0: float, t1: float) -> float:
        layout = self.layout(index, t1)
        if layout is None:
            return self.device_mean_activity(index, None, t0, t1)
        slices = self.models[index].mig_slices
        return sum(
            self.device_mean_activity(index, m.slot, t0, t1) * m.slices / slices
            for m in layout
            if m is not None
        )

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

    def energy_joules(self, index: int, t: float) -> float:
        """Energy since the node started; advanced incrementally, so calls must move forward."""
        last_t, joules = self._energy[index]
        if t > last_t:
            model = self.models[index]
            load = min(self.gpu_mean_activity(index, last_t, t), 1.0)
            joules += (model.idle_watts + (model.max_watts - model.idle_watts) * load) * (
                t - last_t
            )
            self._energy[index] = (t, joules)
        return joules

    def power_watts(self, index: int, t: float) -> float:
        model = self.models[index]
        load = min(self.gpu_mean_activity(index, t, t), 1.0)
        return model.idle_watts + (model.max_watts - model.idle_watts) * load

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
            pods=tuple(_pod_key(ten.pod) for ten in self.tenants_of(index, slot)),
        )


def _pod_key(pod: PodSpec) -> str:
    return f"{pod.namespace}/{pod.name}"


__all__ = ["DeviceTruth", "LoadProfile", "ManualClock", "MigInstance", "SimulatedNode"]
