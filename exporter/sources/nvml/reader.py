"""Reads every GPU and every MIG instance on the node through NVML.

This is the one place that calls NVML. The library is passed in: the real
`pynvml` module, or the simulated node, which answers the same calls; the reader
cannot tell them apart. Constants, ctypes structures and error classes always
come from `pynvml` itself, which loads no driver until `nvmlInit`.

Fault rules, after nvitop's `libnvml.py`:
- NOT_SUPPORTED and friends mean "no sample": the value is absent, logged once, and
  counted per collection by sample and reason (`NvmlReading.absent`).
- GPU_IS_LOST marks that GPU lost; the rest of the node is still read.
- A library-wide failure (driver gone, uninitialized) raises `NvmlDownError`; the
  caller shuts NVML down and retries `nvmlInit` with backoff.
- Any other error costs only its own sample and is counted by kind.

Why one module of some 600 lines: identity, samples, MIG instances, GPM and XID events
are read in one pass per GPU with shared per-session caches; the library's shape and
error rules are apart in `library.py`, its thread and restarts in `source.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pynvml
import structlog

from exporter.errors import ErrorKind
from exporter.model import (
    ActivitySource,
    DeviceStats,
    GpuStats,
    MigMode,
    NvmlReading,
    ProcessStats,
)
from exporter.sources.nvml.library import (
    ABSENT_CODES,
    LIBRARY_DOWN_CODES,
    MAX_EVENTS_PER_READ,
    GpuLostError,
    Nvml,
    NvmlDownError,
    error_kind,
    handle_key,
    mig_profile_name,
    text,
)

log = structlog.get_logger(component="exporter.nvml")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _GpuIdentity:
    uuid: str
    model_name: str
    pci_bus_id: str
    max_mig_devices: int
    gpm_supported: bool
    minor_number: int | None


@dataclass(frozen=True, slots=True)
class _Gpm:
    """One device's GPM metrics over one interval, 0-1; None where NVML did not give one."""

    sm: float | None = None
    tensor: float | None = None
    dram: float | None = None


_NO_GPM = _Gpm()
# The GPM metrics asked, in `_Gpm`'s order, each with its name in `NvmlReading.absent`.
_GPM_METRICS = (
    (pynvml.NVML_GPM_METRIC_SM_UTIL, "gpm_sm_active"),
    (pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL, "gpm_tensor_active"),
    (pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL, "gpm_dram_bandwidth"),
)


@dataclass(frozen=True, slots=True)
class _MigIdentity:
    gpu_instance_id: int
    compute_instance_id: int
    profile: str
    fraction: float


class NvmlReader:
    """Turns NVML into `NvmlReading`s. Not thread-safe: one thread calls it."""

    def __init__(
        self, nvml: Nvml = pynvml, *, max_xids_per_gpu: int = 64, max_processes_per_device: int = 64
    ) -> None:
        self._nvml = nvml
        self._max_xids_per_gpu = max_xids_per_gpu
        self._max_processes_per_device = max_processes_per_device
        self._process_samples_seen: dict[str, int] = {}  # GPU UUID -> newest sample time (µs)
        self.errors: Counter[str] = Counter()  # error kind -> count since start
        self.dropped_series: Counter[str] = Counter()
        self._calls = 0
        self._started = False
        self._driver_version = ""
        self._gpu_count = 0
        self._event_set: Any = None
        self._gpus: dict[int, _GpuIdentity] = {}  # by index, for this NVML session
        self._uuid_by_handle: dict[Any, str] = {}  # names the GPU of an event, even a lost one
        self._last_known: dict[int, _GpuIdentity] = {}  # by index, survives re-init
        self._migs: dict[str, _MigIdentity] = {}  # by MIG UUID
        self._gpm_samples: dict[str, Any] = {}  # device -> last GPM sample
        self._xids: dict[str, Counter[tuple[str, int]]] = {}  # GPU UUID -> (device, xid) -> n
        self._logged: set[tuple[str, str]] = set()
        # (sample, reason) -> samples NVML did not give: this collection's, the session's
        # (read at start) and each GPU's identity's (read once per session, counted each time)
        self._absent: Counter[tuple[str, str]] = Counter()
        self._session_absent: Counter[tuple[str, str]] = Counter()
        self._identity_absent: dict[int, Counter[tuple[str, str]]] = {}

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Initializes NVML. Raises `NvmlDownError` when the library cannot start."""
        try:
            self._call(self._nvml.nvmlInit)
        except (pynvml.NVMLError, NvmlDownError) as error:
            raise NvmlDownError(f"nvmlInit failed: {error}") from error
        try:
            self._driver_version = text(self._call(self._nvml.nvmlSystemGetDriverVersion))
            self._gpu_count = self._call(self._nvml.nvmlDeviceGetCount)
        except (pynvml.NVMLError, NvmlDownError) as error:
            self._quietly(self._nvml.nvmlShutdown)
            raise NvmlDownError(f"NVML started but cannot list GPUs: {error}") from error
        self._started = True
        self._absent = Counter()
        self._event_set = self._optional("event_set", "", self._nvml.nvmlEventSetCreate)
        self._session_absent = self._absent
        log.info("nvml started", driver_version=self._driver_version, gpus=self._gpu_count)

    def stop(self) -> None:
        """Releases NVML; safe to call in any state."""
        for sample in self._gpm_samples.values():
            self._quietly(self._nvml.nvmlGpmSampleFree, sample)
        self._gpm_samples.clear()
        if self._event_set is not None:
            self._quietly(self._nvml.nvmlEventSetFree, self._event_set)
            self._event_set = None
        if self._started:
            self._quietly(self._nvml.nvmlShutdown)
        self._started = False
        self._gpus.clear()
        self._identity_absent.clear()
        self._session_absent = Counter()
        self._uuid_by_handle.clear()
        self._migs.clear()

    # -- reading -----------------------------------------------------------------

    def read(self) -> NvmlReading:
        """One pass over every GPU. Raises `NvmlDownError` if the library went away."""
        if not self._started:
            raise NvmlDownError("NVML is not initialized")
        self._calls = 0
        self._absent = Counter(self._session_absent)
        read = (self._read_gpu(index) for index in range(self._gpu_count))
        gpus = tuple(gpu for gpu in read if gpu is not None)
        self._drain_xid_events(gpus)
        live_devices = {d.device for gpu in gpus for d in gpu.devices}
        self._forget_gone_devices(live_devices)
        gpus = tuple(self._with_xids(gpu) for gpu in gpus)
        return NvmlReading(self._driver_version, gpus, self._calls, absent=dict(self._absent))

    def _read_gpu(self, index: int) -> GpuStats | None:
        try:
            handle = self._call(self._nvml.nvmlDeviceGetHandleByIndex, index)
            identity = self._gpus.get(index) or self._identify(index, handle)
            stats = self._read_live_gpu(index, handle, identity)
            self._absent.update(self._identity_absent.get(index, {}))
            return stats
        except GpuLostError:
            return self._lost_gpu(index)
        except pynvml.NVMLError as error:  # cannot even name the GPU: skip it this time
            self._count_error(error, "gpu_handle", f"index-{index}")
            return None

    def _lost_gpu(self, index: int) -> GpuStats:
        known = self._gpus.get(index) or self._last_known.get(index)
        self.errors[ErrorKind.GPU_LOST] += 1
        uuid = known.uuid if known else f"unknown-gpu-{index}"
        if self._first_time("gpu_lost", uuid):
            log.error("GPU is lost: off the bus or in need of a reset", gpu=uuid, index=index)
        return GpuStats(
            uuid=uuid,
            index=index,
            model_name=known.model_name if known else "",
            pci_bus_id=known.pci_bus_id if known else "",
            mig_mode=MigMode.UNKNOWN,
            lost=True,
        )

    def _identify(self, index: int, handle: Any) -> _GpuIdentity:
        """The GPU's constant identity; the samples it lacks are kept apart, for
        `_read_gpu` to count in every collection of this session."""
        before = Counter(self._absent)
        try:
            identity = self._identify_gpu(index, handle)
        finally:
            lacking, self._absent = self._absent - before, before
        self._identity_absent[index] = lacking
        return identity

    def _identify_gpu(self, index: int, handle: Any) -> _GpuIdentity:
        nvml = self._nvml
        uuid = text(self._call(nvml.nvmlDeviceGetUUID, handle))
        pci = self._optional("pci_info", uuid, nvml.nvmlDeviceGetPciInfo, handle)
        max_mig = self._optional("mig_max", uuid, nvml.nvmlDeviceGetMaxMigDeviceCount, handle)
        gpm = self._optional("gpm_support", uuid, nvml.nvmlGpmQueryDeviceSupport, handle)
        minor = self._optional("minor_number", uuid, nvml.nvmlDeviceGetMinorNumber, handle)
        identity = _GpuIdentity(
            uuid=uuid,
            model_name=text(self._call(nvml.nvmlDeviceGetName, handle)),
            pci_bus_id=text(pci.busId) if pci is not None else "",
            max_mig_devices=max_mig or 0,
            gpm_supported=bool(gpm is not None and gpm.isSupportedDevice),
            minor_number=minor,
        )
        if self._event_set is not None:
            self._optional(
                "xid_events",
                uuid,
                nvml.nvmlDeviceRegisterEvents,
                handle,
                pynvml.nvmlEventTypeXidCriticalError,
                self._event_set,
            )
        self._gpus[index] = self._last_known[index] = identity
        self._uuid_by_handle[handle_key(handle)] = uuid
        return identity

    def _read_live_gpu(self, index: int, handle: Any, gpu: _GpuIdentity) -> GpuStats:
        nvml, uuid = self._nvml, gpu.uuid

        def sample(what: str, fn: Callable[..., T], *args: Any) -> T | None:
            return self._optional(what, uuid, fn, handle, *args)

        modes = sample("mig_mode", nvml.nvmlDeviceGetMigMode)
        if modes is None:
            mig_mode = MigMode.UNSUPPORTED
        elif modes[0] == pynvml.NVML_DEVICE_MIG_ENABLE:
            mig_mode = MigMode.ENABLED
        else:
            mig_mode = MigMode.DISABLED
        if mig_mode is MigMode.ENABLED:
            devices = self._read_mig_devices(handle, gpu)
        else:
            devices = (self._read_whole_gpu(handle, gpu),)

        power_mw = sample("power", nvml.nvmlDeviceGetPowerUsage)
        energy_mj = sample("energy", nvml.nvmlDeviceGetTotalEnergyConsumption)
        temp = sample("temperature", nvml.nvmlDeviceGetTemperature, pynvml.NVML_TEMPERATURE_GPU)
        sm_mhz = sample("sm_clock", nvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_SM)
        mem_mhz = sample("memory_clock", nvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_MEM)
        # NVML's documentation: on a MIG GPU with active instances, remapped rows cannot be
        # queried. Unknown, not zero, whatever a driver answers: not asked, absent.
        remapped = None
        if mig_mode is not MigMode.ENABLED or not devices:
            remapped = sample("remapped_rows", nvml.nvmlDeviceGetRemappedRows)
        return GpuStats(
            uuid=uuid,
            index=index,
            model_name=gpu.model_name,
            pci_bus_id=gpu.pci_bus_id,
            mig_mode=mig_mode,
            minor_number=gpu.minor_number,
            power_watts=power_mw / 1000 if power_mw is not None else None,
            energy_joules=energy_mj / 1000 if energy_mj is not None else None,
            gpu_temperature_celsius=temp,
            memory_temperature_celsius=self._memory_temperature(handle, uuid),
            sm_clock_hertz=sm_mhz * 1e6 if sm_mhz is not None else None,
            memory_clock_hertz=mem_mhz * 1e6 if mem_mhz is not None else None,
            clock_event_reasons=sample("clock_events", nvml.nvmlDeviceGetCurrentClocksEventReasons),
            ecc_corrected_errors=sample(
                "ecc_corrected",
                nvml.nvmlDeviceGetTotalEccErrors,
                pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                pynvml.NVML_VOLATILE_ECC,
            ),
            ecc_uncorrected_errors=sample(
                "ecc_uncorrected",
                nvml.nvmlDeviceGetTotalEccErrors,
                pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                pynvml.NVML_VOLATILE_ECC,
            ),
            pcie_replays=sample("pcie_replays", nvml.nvmlDeviceGetPcieReplayCounter),
            remapped_rows_correctable=remapped[0] if remapped else None,
            remapped_rows_uncorrectable=remapped[1] if remapped else None,
            row_remap_pending=bool(remapped[2]) if remapped else None,
            row_remap_failed=bool(remapped[3]) if remapped else None,
            devices=devices,
        )

    def _memory_temperature(self, handle: Any, uuid: str) -> float | None:
        values = self._optional(
            "memory_temperature",
            uuid,
            self._nvml.nvmlDeviceGetFieldValues,
            handle,
            [pynvml.NVML_FI_DEV_MEMORY_TEMP],
        )
        if not values:
            return None
        if values[0].nvmlReturn != pynvml.NVML_SUCCESS:
            self._field_absent("memory_temperature", values[0].nvmlReturn)
            return None
        temperature = float(values[0].value.uiVal)
        return temperature if temperature > 0 else None  # boards without the sensor answer 0

    def _read_whole_gpu(self, handle: Any, gpu: _GpuIdentity) -> DeviceStats:
        nvml, uuid = self._nvml, gpu.uuid
        memory = self._optional("memory", uuid, nvml.nvmlDeviceGetMemoryInfo, handle)
        gpm = _NO_GPM
        if gpu.gpm_supported:
            source = ActivitySource.GPM
            gpm = self._gpm_activity(uuid, uuid, nvml.nvmlGpmSampleGet, handle)
            activity = gpm.sm
        else:
            rates = self._optional("utilization", uuid, nvml.nvmlDeviceGetUtilizationRates, handle)
            source = ActivitySource.UTILIZATION if rates is not None else ActivitySource.NONE
            activity = rates.gpu / 100 if rates is not None else None
        return DeviceStats(
            device=uuid,
            gpu_uuid=uuid,
            mig_profile="",
            gpu_instance_id=None,
            compute_instance_id=None,
            gpu_fraction=1.0,
            memory_used_bytes=memory.used if memory is not None else None,
            memory_total_bytes=memory.total if memory is not None else None,
            sm_active_ratio=activity,
            activity_source=source,
            tensor_active_ratio=gpm.tensor,
            dram_bandwidth_ratio=gpm.dram,
            **self._processes(handle, uuid, self._process_activity(handle, uuid)),
        )

    def _read_mig_devices(self, handle: Any, gpu: _GpuIdentity) -> tuple[DeviceStats, ...]:
        devices = []
        for slot in range(gpu.max_mig_devices):
            try:
                mig = self._call(self._nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
            except pynvml.NVMLError as error:
                if error.value != pynvml.NVML_ERROR_NOT_FOUND:  # NOT_FOUND: an empty slot
                    self._count_error(error, "mig_handle", gpu.uuid)
                continue
            try:
                devices.append(self._read_mig_device(handle, mig, gpu))
            except pynvml.NVMLError as error:  # this instance only; its siblings still count
                self._count_error(error, "mig_device", gpu.uuid)
        return tuple(devices)

    def _read_mig_device(self, parent: Any, mig: Any, gpu: _GpuIdentity) -> DeviceStats:
        nvml = self._nvml
        uuid = text(self._call(nvml.nvmlDeviceGetUUID, mig))
        identity = self._migs.get(uuid) or self._identify_mig(mig, uuid, gpu)
        memory = self._optional("memory", gpu.uuid, nvml.nvmlDeviceGetMemoryInfo, mig)
        gpm = _NO_GPM
        if gpu.gpm_supported:
            gpm = self._gpm_activity(
                uuid, gpu.uuid, nvml.nvmlGpmMigSampleGet, parent, identity.gpu_instance_id
            )
        return DeviceStats(
            device=uuid,
            gpu_uuid=gpu.uuid,
            mig_profile=identity.profile,
            gpu_instance_id=identity.gpu_instance_id,
            compute_instance_id=identity.compute_instance_id,
            gpu_fraction=identity.fraction,
            memory_used_bytes=memory.used if memory is not None else None,
            memory_total_bytes=memory.total if memory is not None else None,
            sm_active_ratio=gpm.sm,
            # MIG instances have no utilization counter: GPM (Hopper+) or nothing.
            activity_source=ActivitySource.GPM if gpu.gpm_supported else ActivitySource.NONE,
            tensor_active_ratio=gpm.tensor,
            dram_bandwidth_ratio=gpm.dram,
            **self._processes(mig, gpu.uuid, None),  # no per-process utilization on MIG
        )

    def _identify_mig(self, mig: Any, uuid: str, gpu: _GpuIdentity) -> _MigIdentity:
        nvml = self._nvml
        attributes = self._call(nvml.nvmlDeviceGetAttributes, mig)
        gi_slices = attributes.gpuInstanceSliceCount
        # The driver names MIG devices "<board> MIG 1g.10gb": its own profile name.
        name = text(self._call(nvml.nvmlDeviceGetName, mig))
        _, marker, profile = name.rpartition(" MIG ")
        identity = _MigIdentity(
            gpu_instance_id=self._call(nvml.nvmlDeviceGetGpuInstanceId, mig),
            compute_instance_id=self._call(nvml.nvmlDeviceGetComputeInstanceId, mig),
            profile=profile.strip()
            if marker
            else mig_profile_name(
                gi_slices, attributes.computeInstanceSliceCount, attributes.memorySizeMB
            ),
            # The GPU has as many MIG slots as compute slices (7 on A100/H100/H200).
            fraction=gi_slices / gpu.max_mig_devices if gpu.max_mig_devices else 0.0,
        )
        self._migs[uuid] = identity
        return identity

    def _processes(
        self, handle: Any, gpu_uuid: str, activity: Mapping[int, float] | None
    ) -> dict[str, Any]:
        """The `processes` and `process_list` fields of a device."""
        found = self._optional(
            "processes", gpu_uuid, self._nvml.nvmlDeviceGetComputeRunningProcesses, handle
        )
        if found is None:
            return {"processes": None, "process_list": ()}
        kept = found[: self._max_processes_per_device]
        if len(kept) < len(found):
            self.dropped_series["processes_per_device"] += len(found) - len(kept)
        listed = tuple(
            ProcessStats(
                pid=p.pid,
                memory_used_bytes=p.usedGpuMemory,  # None where NVML cannot say (vGPU, WSL)
                sm_active_ratio=None if activity is None else activity.get(p.pid, 0.0),
            )
            for p in kept
        )
        return {"processes": len(found), "process_list": listed}

    def _process_activity(self, handle: Any, gpu_uuid: str) -> dict[int, float] | None:
        """SM utilization per PID since the last collection; None where NVML cannot tell.

        NVML answers NOT_FOUND when no process has a sample in that time: all are idle.
        """
        since = self._process_samples_seen.get(gpu_uuid, 0)
        try:
            samples = self._call(self._nvml.nvmlDeviceGetProcessUtilization, handle, since)
        except pynvml.NVMLError as error:
            if error.value == pynvml.NVML_ERROR_NOT_FOUND:
                return {}
            if error.value in ABSENT_CODES:
                self._absent["process_utilization", error_kind(error)] += 1
                self._first_time("process_utilization", gpu_uuid)
                return None
            raise
        activity: dict[int, float] = {}
        for sample in samples:  # several samples of one PID: keep the latest
            activity[sample.pid] = min(max(sample.smUtil / 100, 0.0), 1.0)
            since = max(since, sample.timeStamp)
        self._process_samples_seen[gpu_uuid] = since
        return activity

    def _gpm_activity(
        self, device: str, gpu_uuid: str, take_sample: Callable[..., Any], *args: Any
    ) -> _Gpm:
        """SM, tensor-core and DRAM bandwidth activity over the time between this
        collection's GPM sample and the last, asked in one request.

        Absent on a device's first collection (GPM needs two samples); each metric absent
        alone when NVML answers it with an error code.
        """
        nvml = self._nvml
        sample = self._optional("gpm_sample", gpu_uuid, nvml.nvmlGpmSampleAlloc)
        if sample is None:
            return _NO_GPM
        if self._optional("gpm_sample", gpu_uuid, take_sample, *args, sample) is None:
            self._quietly(nvml.nvmlGpmSampleFree, sample)
            return _NO_GPM
        previous = self._gpm_samples.pop(device, None)
        self._gpm_samples[device] = sample
        if previous is None:
            return _NO_GPM
        request = pynvml.c_nvmlGpmMetricsGet_t()
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(_GPM_METRICS)
        request.sample1 = previous
        request.sample2 = sample
        for i, (metric_id, _) in enumerate(_GPM_METRICS):
            request.metrics[i].metricId = metric_id
        result = self._optional("gpm_metrics", gpu_uuid, nvml.nvmlGpmMetricsGet, request)
        self._quietly(nvml.nvmlGpmSampleFree, previous)
        if result is None:
            return _NO_GPM
        values: list[float | None] = []
        for i, (_, what) in enumerate(_GPM_METRICS):
            metric = request.metrics[i]
            if metric.nvmlReturn != pynvml.NVML_SUCCESS:
                self._field_absent(what, metric.nvmlReturn)
                values.append(None)
            else:  # GPM answers percentages, 0-100
                values.append(min(max(float(metric.value) / 100, 0.0), 1.0))
        return _Gpm(*values)

    # -- XID events --------------------------------------------------------------

    def _drain_xid_events(self, gpus: tuple[GpuStats, ...]) -> None:
        """Counts the XID events waiting, each against the MIG device it names, if any."""
        if self._event_set is None:
            return
        instances: dict[tuple[str, int], list[DeviceStats]] = {}  # (GPU UUID, GI id) -> devices
        for d in (d for gpu in gpus for d in gpu.devices):
            if d.gpu_instance_id is not None:
                instances.setdefault((d.gpu_uuid, d.gpu_instance_id), []).append(d)
        for _ in range(MAX_EVENTS_PER_READ):
            try:
                event = self._call(self._nvml.nvmlEventSetWait_v2, self._event_set, 0)
            except pynvml.NVMLError as error:
                if error.value != pynvml.NVML_ERROR_TIMEOUT:  # TIMEOUT: no event waiting
                    self._count_error(error, "xid_events", "")
                return
            except GpuLostError:
                continue
            if not event.eventType & pynvml.nvmlEventTypeXidCriticalError:
                continue
            uuid = self._uuid_of(event.device)
            xid = int(event.eventData)
            device = _device_of_event(uuid, event, instances)
            counts = self._xids.setdefault(uuid, Counter())
            if (device, xid) not in counts and len(counts) >= self._max_xids_per_gpu:
                self.dropped_series["xid_cap"] += 1
                continue
            counts[device, xid] += 1
            log.warning("xid error", gpu=uuid, device=device, xid=xid,
                        gpu_instance=event.gpuInstanceId,
                        compute_instance=event.computeInstanceId)  # fmt: skip

    def _uuid_of(self, handle: Any) -> str:
        known = self._uuid_by_handle.get(handle_key(handle))
        if known is not None:
            return known
        try:
            return text(self._call(self._nvml.nvmlDeviceGetUUID, handle))
        except (pynvml.NVMLError, GpuLostError):
            return "unknown"

    def _with_xids(self, gpu: GpuStats) -> GpuStats:
        counts = self._xids.get(gpu.uuid)
        if not counts:
            return gpu
        return replace(gpu, xid_errors=dict(counts))

    # -- helpers -----------------------------------------------------------------

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Calls NVML, turning lost-GPU and library-down errors into exceptions of ours."""
        self._calls += 1
        try:
            return fn(*args)
        except pynvml.NVMLError as error:
            if error.value == pynvml.NVML_ERROR_GPU_IS_LOST:
                raise GpuLostError(str(error)) from error
            if error.value in LIBRARY_DOWN_CODES:
                raise NvmlDownError(str(error)) from error
            raise

    def _optional(self, what: str, gpu_uuid: str, fn: Callable[..., T], *args: Any) -> T | None:
        """One sample that may legitimately be missing: absent, never fatal."""
        try:
            return self._call(fn, *args)
        except pynvml.NVMLError as error:
            if error.value in ABSENT_CODES:
                self._absent[what, error_kind(error)] += 1
                if self._first_time(what, gpu_uuid):
                    log.info("sample not available", sample=what, gpu=gpu_uuid,
                             reason=error_kind(error))  # fmt: skip
            else:
                self._count_error(error, what, gpu_uuid)
            return None

    def _field_absent(self, what: str, code: int) -> None:
        """A value NVML answered within a call (field values, GPM metrics) by an absent code."""
        if code in ABSENT_CODES:
            self._absent[what, error_kind(pynvml.NVMLError(code))] += 1

    def _count_error(self, error: pynvml.NVMLError, what: str, gpu_uuid: str) -> None:
        kind = error_kind(error)
        self.errors[kind] += 1
        log.warning("nvml call failed", sample=what, gpu=gpu_uuid, error=kind)

    def _quietly(self, fn: Callable[..., Any], *args: Any) -> None:
        """Cleanup calls: failure changes nothing we report."""
        self._calls += 1
        try:
            fn(*args)
        except pynvml.NVMLError as error:
            log.debug("nvml cleanup failed", call=getattr(fn, "__name__", "?"), error=str(error))

    def _first_time(self, what: str, gpu_uuid: str) -> bool:
        """For logging once. Keyed by GPU, not device: re-partitioning cannot grow it."""
        if (what, gpu_uuid) in self._logged:
            return False
        self._logged.add((what, gpu_uuid))
        return True

    def _forget_gone_devices(self, live: set[str]) -> None:
        for device in [d for d in self._gpm_samples if d not in live]:
            self._quietly(self._nvml.nvmlGpmSampleFree, self._gpm_samples.pop(device))
        for mig in [m for m in self._migs if m not in live]:
            del self._migs[mig]


def _device_of_event(
    gpu_uuid: str, event: Any, instances: Mapping[tuple[str, int], list[DeviceStats]]
) -> str:
    """The device an XID event is counted against: the MIG device of the GPU instance it
    names, where this collection read that instance, else the GPU itself.

    An event that names no instance carries 0xFFFFFFFF, which no instance has. A GPU
    instance holding several compute instances is narrowed by the event's compute
    instance; an event that names none of them is the GPU's.
    """
    found = instances.get((gpu_uuid, event.gpuInstanceId), [])
    if len(found) > 1:
        found = [d for d in found if d.compute_instance_id == event.computeInstanceId]
    return found[0].device if len(found) == 1 else gpu_uuid
