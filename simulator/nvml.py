"""An NVML that answers for a simulated node, call for call like `pynvml`.

Only the functions the reader uses exist here; each takes the same arguments,
returns the same types (pynvml's own ctypes structures where pynvml returns
them) and raises pynvml's own `NVMLError` subclasses with the codes the real
library returns in the same situation:

- a GPU that fell off the bus answers GPU_IS_LOST, from `nvmlDeviceGetHandleByIndex` on;
- MIG slots without an instance answer NOT_FOUND; utilization on MIG answers
  NOT_SUPPORTED; GPM exists only on Hopper and newer;
- remapped rows answer NOT_SUPPORTED on a GPU in MIG mode with active instances, as
  NVML's documentation says it cannot query them there;
- an XID event names the GPU and compute instance of the MIG slot its fault names,
  or 0xFFFFFFFF for both;
- after a MIG re-partition, old MIG handles answer INVALID_ARGUMENT;
- while the driver is unloaded every call answers DRIVER_NOT_LOADED, and after it
  is back, UNINITIALIZED until `nvmlInit` runs again.

Event waits never block: with nothing pending they answer TIMEOUT at once.
"""

from __future__ import annotations

import ctypes
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pynvml

from simulator.loads import Pipe, runs_process
from simulator.node import MigInstance, SimulatedNode, pod_pid

PROCESS_SAMPLE_BUFFER_SECONDS = 10.0  # how far back NVML's per-process samples reach
NO_INSTANCE = 0xFFFFFFFF  # NVML's GPU/compute instance id outside MIG
# The GPM metrics answered from the load model, each the true mean between two samples.
_GPM_PIPES = {
    pynvml.NVML_GPM_METRIC_SM_UTIL: Pipe.SM,
    pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: Pipe.TENSOR,
    pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: Pipe.DRAM,
}


def _fail(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


@dataclass(frozen=True, slots=True)
class GpuHandle:
    index: int


@dataclass(frozen=True, slots=True)
class MigHandle:
    index: int
    slot: int
    generation: int


@dataclass(slots=True)
class EventSet:
    created_at: float
    registered: dict[int, int] = field(default_factory=dict)  # GPU index -> event mask
    delivered_until: float = 0.0
    pending: deque[Any] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class EventData:
    """Same fields as `pynvml.c_nvmlEventData_t`, holding a simulated handle."""

    device: GpuHandle
    eventType: int  # noqa: N815 - pynvml's field name
    eventData: int  # noqa: N815
    gpuInstanceId: int  # noqa: N815
    computeInstanceId: int  # noqa: N815


@dataclass(frozen=True, slots=True)
class _GpmRecord:
    target: tuple[Any, ...]
    t: float


class SimulatedNvml:
    """Pass this where the reader expects the `pynvml` module."""

    def __init__(self, node: SimulatedNode) -> None:
        self.node = node
        self._init_count = 0
        self._init_time = 0.0
        self._gpm: dict[int, _GpmRecord | None] = {}  # sample address -> what it holds
        self._gpm_buffers: dict[int, Any] = {}  # keeps the sample memory alive

    @property
    def gpm_samples_outstanding(self) -> int:
        """Samples allocated and not yet freed: a leak check for tests."""
        return len(self._gpm)

    # -- library ---------------------------------------------------------------

    def _now(self) -> float:
        """The time of this call, after checking the library is usable."""
        now = self.node.clock()
        if not self.node.driver_loaded(now):
            raise _fail(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
        if self._init_count == 0 or self.node.driver_reloaded_between(self._init_time, now):
            self._init_count = 0
            raise _fail(pynvml.NVML_ERROR_UNINITIALIZED)
        return now

    def nvmlInit(self) -> None:
        now = self.node.clock()
        if not self.node.driver_loaded(now):
            raise _fail(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
        if self.node.driver_reloaded_between(self._init_time, now):
            self._init_count = 0
        self._init_count += 1
        self._init_time = now

    def nvmlShutdown(self) -> None:
        if self._init_count == 0:
            raise _fail(pynvml.NVML_ERROR_UNINITIALIZED)
        self._init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._now()
        return self.node.scenario.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._now()
        return len(self.node.specs)

    # -- handles -------------------------------------------------------------------

    def nvmlDeviceGetHandleByIndex(self, index: int) -> GpuHandle:
        now = self._now()
        if not 0 <= index < len(self.node.specs):
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if self.node.lost(index, now):
            raise _fail(pynvml.NVML_ERROR_GPU_IS_LOST)
        return GpuHandle(index)

    def _gpu(self, handle: Any) -> tuple[int, float]:
        """The GPU index behind a whole-GPU handle, and the time of the call."""
        now = self._now()
        if not isinstance(handle, GpuHandle):
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if self.node.lost(handle.index, now):
            raise _fail(pynvml.NVML_ERROR_GPU_IS_LOST)
        return handle.index, now

    def _mig(self, handle: Any) -> tuple[MigInstance, float]:
        now = self._now()
        if not isinstance(handle, MigHandle):
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if self.node.lost(handle.index, now):
            raise _fail(pynvml.NVML_ERROR_GPU_IS_LOST)
        if self.node.layout_generation(handle.index, now) != handle.generation:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)  # the instance was destroyed
        layout = self.node.layout(handle.index, now) or ()
        instance = layout[handle.slot] if handle.slot < len(layout) else None
        if instance is None:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return instance, now

    def _any(self, handle: Any) -> tuple[int, int | None, float]:
        """(GPU index, MIG slot or None, time) for either kind of handle."""
        if isinstance(handle, MigHandle):
            instance, now = self._mig(handle)
            return handle.index, instance.slot, now
        index, now = self._gpu(handle)
        return index, None, now

    def _mig_enabled(self, index: int, now: float) -> bool:
        return self.node.layout(index, now) is not None

    # -- identity --------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        if isinstance(handle, MigHandle):
            return self._mig(handle)[0].uuid
        return self.node.gpu_uuids[self._gpu(handle)[0]]

    def nvmlDeviceGetName(self, handle: Any) -> str:
        if isinstance(handle, MigHandle):
            instance, _ = self._mig(handle)
            return f"{self.node.models[handle.index].name} MIG {instance.profile}"
        return self.node.models[self._gpu(handle)[0]].name

    def nvmlDeviceGetMinorNumber(self, handle: Any) -> int:
        return self._gpu(handle)[0]  # /dev/nvidia<index>, as on most nodes

    def nvmlDeviceGetPciInfo(self, handle: Any) -> pynvml.nvmlPciInfo_t:
        index, _ = self._gpu(handle)
        info = pynvml.nvmlPciInfo_t()
        bus_id = self.node.pci_bus_id(index).encode()
        info.busId = info.busIdLegacy = bus_id
        info.bus = int(bus_id.split(b":")[1], 16)
        info.pciDeviceId = 0x233010DE  # H100 SXM5's device/vendor id
        return info

    # -- MIG ---------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        index, now = self._gpu(handle)
        if not self.node.models[index].mig_slices:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if self._mig_enabled(index, now) else 0
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        index, _ = self._gpu(handle)
        slots = self.node.models[index].mig_slices
        if not slots:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return slots

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, slot: int) -> MigHandle:
        index, now = self._gpu(handle)
        layout = self.node.layout(index, now)
        if layout is None or not 0 <= slot < self.node.models[index].mig_slices:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if slot >= len(layout) or layout[slot] is None:
            raise _fail(pynvml.NVML_ERROR_NOT_FOUND)
        return MigHandle(index, slot, self.node.layout_generation(index, now))

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: Any) -> GpuHandle:
        self._mig(handle)
        return GpuHandle(handle.index)

    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int:
        return self._mig(handle)[0].gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int:
        return self._mig(handle)[0].compute_instance_id

    def nvmlDeviceGetAttributes(self, handle: Any) -> pynvml.c_nvmlDeviceAttributes:
        attributes = pynvml.c_nvmlDeviceAttributes()
        if isinstance(handle, MigHandle):
            instance, _ = self._mig(handle)
            model = self.node.models[handle.index]
            attributes.gpuInstanceSliceCount = instance.slices
            attributes.computeInstanceSliceCount = instance.slices
            attributes.memorySizeMB = instance.memory_mib
            attributes.multiprocessorCount = model.sm_count * instance.slices // 8
        else:
            index, _ = self._gpu(handle)
            model = self.node.models[index]
            attributes.gpuInstanceSliceCount = attributes.computeInstanceSliceCount = 0
            attributes.memorySizeMB = model.memory_mib
            attributes.multiprocessorCount = model.sm_count
        return attributes

    # -- activity and memory -------------------------------------------------------------

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> pynvml.c_nvmlMemory_t:
        index, slot, now = self._any(handle)
        memory = pynvml.c_nvmlMemory_t()
        layout = self.node.layout(index, now) if slot is None else None
        if layout is not None:  # the parent of MIG instances reports them all
            slots = [m.slot for m in layout if m is not None]
            used = sum(self.node.device_memory_used(index, s, now) for s in slots)
        else:
            used = self.node.device_memory_used(index, slot, now)
        memory.total = self.node.device_memory_total(index, slot, now)
        memory.used = used
        memory.free = memory.total - used
        return memory

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> pynvml.c_nvmlUtilization_t:
        index, slot, now = self._any(handle)
        if slot is not None or self._mig_enabled(index, now):
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        rates = pynvml.c_nvmlUtilization_t()
        busy = min(self.node.device_activity(index, None, now), 1.0)
        rates.gpu = round(busy * 100)
        rates.memory = round(busy * 60)
        return rates

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        index, slot, now = self._any(handle)
        layout = self.node.layout(index, now) if slot is None else None
        slots: list[tuple[int | None, MigInstance | None]]
        if layout is not None:  # the parent lists the processes of every instance
            slots = [(m.slot, m) for m in layout if m is not None]
        else:
            slots = [(slot, self._instance(index, slot, now))]
        processes = []
        for s, instance in slots:
            for pod in self.node.device_processes(index, s):
                info = pynvml.c_nvmlProcessInfo_t()
                info.pid = pod_pid(pod)
                info.usedGpuMemory = self.node.process_memory(index, s, now)
                no_id = 0xFFFFFFFF  # what NVML reports outside MIG
                info.gpuInstanceId = instance.gpu_instance_id if instance else no_id
                info.computeInstanceId = instance.compute_instance_id if instance else no_id
                processes.append(pynvml.nvmlStructToFriendlyObject(info))
        return processes

    def nvmlDeviceGetProcessUtilization(self, handle: Any, timeStamp: int) -> list[Any]:  # noqa: N803
        """Per-process SM utilization since `timeStamp` (µs), one sample per process.

        Like NVML: NOT_SUPPORTED on MIG, NOT_FOUND when no process has a sample.
        """
        index, slot, now = self._any(handle)
        if slot is not None or self._mig_enabled(index, now):
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        holders = [t for t in self.node.tenants_of(index, None) if runs_process(t.pod.load)]
        if not holders:
            raise _fail(pynvml.NVML_ERROR_NOT_FOUND)
        since = max(timeStamp / 1e6, now - PROCESS_SAMPLE_BUFFER_SECONDS)
        samples = []
        for tenancy in holders:
            sample = pynvml.c_nvmlProcessUtilizationSample_t()
            sample.pid = pod_pid(tenancy.pod)
            sample.timeStamp = round(now * 1e6)
            sample.smUtil = round(min(self.node.pod_mean_activity(tenancy, since, now), 1.0) * 100)
            samples.append(sample)
        return samples

    def _instance(self, index: int, slot: int | None, now: float) -> MigInstance | None:
        layout = self.node.layout(index, now)
        return layout[slot] if layout is not None and slot is not None else None

    # -- GPU telemetry --------------------------------------------------------------------

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        index, now = self._gpu(handle)
        return round(self.node.power_watts(index, now) * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        index, now = self._gpu(handle)
        return round(self.node.energy_joules(index, now) * 1000)

    def _load(self, index: int, now: float) -> float:
        return min(self.node.gpu_mean_activity(index, now, now), 1.0)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        index, now = self._gpu(handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return round(32 + 40 * self._load(index, now))

    def nvmlDeviceGetFieldValues(self, handle: Any, field_ids: list[int]) -> Any:
        index, now = self._gpu(handle)
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for value, field_id in zip(values, field_ids, strict=True):
            value.fieldId = field_id
            value.timestamp = int(now * 1e6)
            if (
                field_id == pynvml.NVML_FI_DEV_MEMORY_TEMP
                and self.node.models[index].memory_temperature
            ):
                value.nvmlReturn = pynvml.NVML_SUCCESS
                value.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
                value.value.uiVal = round(38 + 35 * self._load(index, now))
            else:
                value.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int) -> int:
        index, now = self._gpu(handle)
        model = self.node.models[index]
        if clock == pynvml.NVML_CLOCK_MEM:
            return model.memory_clock_mhz
        if clock != pynvml.NVML_CLOCK_SM:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return model.max_sm_clock_mhz if self._load(index, now) > 0 else model.idle_sm_clock_mhz

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        index, now = self._gpu(handle)
        if self._load(index, now) > 0:
            return int(pynvml.nvmlClocksEventReasonNone)
        return int(pynvml.nvmlClocksEventReasonGpuIdle)

    def nvmlDeviceGetTotalEccErrors(self, handle: Any, error_type: int, counter: int) -> int:
        index, now = self._gpu(handle)
        if not self.node.models[index].ecc:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        corrected, uncorrected = self.node.ecc_errors(index, now)
        return corrected if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED else uncorrected

    def nvmlDeviceGetPcieReplayCounter(self, handle: Any) -> int:
        index, now = self._gpu(handle)
        return self.node.pcie_replays(index, now)

    def nvmlDeviceGetRemappedRows(self, handle: Any) -> tuple[int, int, int, int]:
        index, now = self._gpu(handle)
        if not self.node.models[index].remapped_rows:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if any(self.node.layout(index, now) or ()):  # MIG with active instances
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        # Each uncorrectable ECC error remaps a row, pending until the next GPU reset.
        _, uncorrected = self.node.ecc_errors(index, now)
        return (0, uncorrected, int(uncorrected > 0), 0)

    # -- events ------------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> EventSet:
        now = self._now()
        return EventSet(created_at=now, delivered_until=now)

    def nvmlDeviceRegisterEvents(self, handle: Any, event_types: int, event_set: EventSet) -> None:
        index, _ = self._gpu(handle)
        event_set.registered[index] = event_set.registered.get(index, 0) | event_types

    def nvmlEventSetWait_v2(self, event_set: EventSet, timeout_ms: int) -> EventData:
        now = self._now()
        for fault in self.node.xid_events(event_set.delivered_until, now):
            if event_set.registered.get(fault.gpu, 0) & pynvml.nvmlEventTypeXidCriticalError:
                # The instance in the fault's slot when the fault happened (the scenario
                # checks there is one); none named: 0xFFFFFFFF, as NVML says.
                instance = self._instance(fault.gpu, fault.slot, fault.at)
                event = EventData(
                    GpuHandle(fault.gpu),
                    pynvml.nvmlEventTypeXidCriticalError,
                    fault.xid,
                    instance.gpu_instance_id if instance else NO_INSTANCE,
                    instance.compute_instance_id if instance else NO_INSTANCE,
                )
                event_set.pending.extend([event] * fault.count)
        event_set.delivered_until = max(event_set.delivered_until, now)
        if not event_set.pending:
            raise _fail(pynvml.NVML_ERROR_TIMEOUT)
        return event_set.pending.popleft()  # type: ignore[no-any-return]

    def nvmlEventSetFree(self, event_set: EventSet) -> None:
        event_set.registered.clear()
        event_set.pending.clear()

    # -- GPM ------------------------------------------------------------------------------------

    def nvmlGpmQueryDeviceSupport(self, handle: Any) -> pynvml.c_nvmlGpmSupport_t:
        index, _ = self._gpu(handle)
        support = pynvml.c_nvmlGpmSupport_t()
        support.version = pynvml.NVML_GPM_SUPPORT_VERSION
        support.isSupportedDevice = int(self.node.models[index].gpm)
        return support

    def nvmlGpmSampleAlloc(self) -> Any:
        self._now()
        buffer = ctypes.create_string_buffer(16)
        address = ctypes.addressof(buffer)
        self._gpm[address] = None
        self._gpm_buffers[address] = buffer
        return ctypes.cast(buffer, pynvml.c_nvmlGpmSample_t)

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        address = ctypes.cast(sample, ctypes.c_void_p).value
        if address not in self._gpm:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        del self._gpm[address], self._gpm_buffers[address]

    def _record(self, sample: Any, record: _GpmRecord) -> Any:
        address = ctypes.cast(sample, ctypes.c_void_p).value
        if address not in self._gpm:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._gpm[address] = record
        return sample

    def nvmlGpmSampleGet(self, handle: Any, sample: Any) -> Any:
        index, now = self._gpu(handle)
        if not self.node.models[index].gpm:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self._record(sample, _GpmRecord(("gpu", index), now))

    def nvmlGpmMigSampleGet(self, handle: Any, gpu_instance_id: int, sample: Any) -> Any:
        index, now = self._gpu(handle)
        if not self.node.models[index].gpm:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        layout = self.node.layout(index, now)
        if layout is None:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        match = [m for m in layout if m is not None and m.gpu_instance_id == gpu_instance_id]
        if not match:
            raise _fail(pynvml.NVML_ERROR_NOT_FOUND)
        generation = self.node.layout_generation(index, now)
        return self._record(sample, _GpmRecord(("mig", index, generation, match[0].slot), now))

    def nvmlGpmMetricsGet(self, request: Any) -> Any:
        self._now()
        if request.version != pynvml.NVML_GPM_METRICS_GET_VERSION:
            raise _fail(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        first = self._gpm.get(ctypes.cast(request.sample1, ctypes.c_void_p).value)  # type: ignore[arg-type]
        second = self._gpm.get(ctypes.cast(request.sample2, ctypes.c_void_p).value)  # type: ignore[arg-type]
        if first is None or second is None or first.target != second.target:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        t0, t1 = sorted((first.t, second.t))

        def mean(pipe: Pipe) -> float:
            if second.target[0] == "gpu":
                busy = self.node.gpu_mean_activity(second.target[1], t0, t1, pipe)
            else:
                busy = self.node.device_mean_activity(
                    second.target[1], second.target[3], t0, t1, pipe
                )
            return min(busy, 1.0) * 100  # GPM answers percentages

        for i in range(request.numMetrics):
            metric = request.metrics[i]
            if metric.metricId in _GPM_PIPES:
                metric.value = mean(_GPM_PIPES[metric.metricId])
                metric.nvmlReturn = pynvml.NVML_SUCCESS
            elif metric.metricId == pynvml.NVML_GPM_METRIC_SM_OCCUPANCY:
                metric.value, metric.nvmlReturn = mean(Pipe.SM) * 0.45, pynvml.NVML_SUCCESS
            else:
                metric.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return request


__all__ = ["GpuHandle", "MigHandle", "SimulatedNvml"]
