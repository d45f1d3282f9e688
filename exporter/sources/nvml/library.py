"""What the NVML reader calls, and how it reads NVML's errors.

`Nvml` is every function the reader calls, as a Protocol: the real `pynvml` module
and the simulated node's `SimulatedNvml` are both checked against it, so the
simulation cannot answer a call the real library does not have, or miss one the
reader makes. Handles, structures and events are NVML's own ctypes objects (or the
simulation's look-alikes), typed `Any` as pynvml itself leaves them. Arguments are
positional only, as the reader passes them.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any, Protocol

import pynvml

from exporter.errors import ErrorKind, GpuworkError, SourceError


class Nvml(Protocol):
    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> str | bytes: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int, /) -> Any: ...
    def nvmlDeviceGetUUID(self, handle: Any, /) -> str | bytes: ...
    def nvmlDeviceGetName(self, handle: Any, /) -> str | bytes: ...
    def nvmlDeviceGetMinorNumber(self, handle: Any, /) -> int: ...
    def nvmlDeviceGetPciInfo(self, handle: Any, /) -> Any: ...
    def nvmlDeviceGetMigMode(self, handle: Any, /) -> Any: ...
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any, /) -> int: ...
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int, /) -> Any: ...
    def nvmlDeviceGetGpuInstanceId(self, handle: Any, /) -> int: ...
    def nvmlDeviceGetComputeInstanceId(self, handle: Any, /) -> int: ...
    def nvmlDeviceGetAttributes(self, handle: Any, /) -> Any: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any, /) -> Any: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any, /) -> Any: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any, /) -> Any: ...
    def nvmlDeviceGetProcessUtilization(self, handle: Any, since_us: int, /) -> Any: ...
    def nvmlDeviceGetPowerUsage(self, handle: Any, /) -> int: ...
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any, /) -> int: ...
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int, /) -> int: ...
    def nvmlDeviceGetFieldValues(self, handle: Any, field_ids: list[int], /) -> Any: ...
    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int, /) -> int: ...
    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any, /) -> int: ...
    def nvmlDeviceGetTotalEccErrors(self, handle: Any, error: int, counter: int, /) -> int: ...
    def nvmlDeviceGetPcieReplayCounter(self, handle: Any, /) -> int: ...
    def nvmlDeviceGetRemappedRows(self, handle: Any, /) -> Any: ...
    def nvmlDeviceRegisterEvents(self, handle: Any, types: int, event_set: Any, /) -> None: ...
    def nvmlEventSetCreate(self) -> Any: ...
    def nvmlEventSetWait_v2(self, event_set: Any, timeout_ms: int, /) -> Any: ...
    def nvmlEventSetFree(self, event_set: Any, /) -> None: ...
    def nvmlGpmQueryDeviceSupport(self, handle: Any, /) -> Any: ...
    def nvmlGpmSampleAlloc(self) -> Any: ...
    def nvmlGpmSampleFree(self, sample: Any, /) -> None: ...
    def nvmlGpmSampleGet(self, handle: Any, sample: Any, /) -> Any: ...
    def nvmlGpmMigSampleGet(self, handle: Any, gpu_instance_id: int, sample: Any, /) -> Any: ...
    def nvmlGpmMetricsGet(self, request: Any, /) -> Any: ...


# Codes that mean "this sample does not exist here", not "something broke".
ABSENT_CODES = frozenset(
    {
        pynvml.NVML_ERROR_NOT_SUPPORTED,
        pynvml.NVML_ERROR_NOT_FOUND,
        pynvml.NVML_ERROR_NO_PERMISSION,
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        pynvml.NVML_ERROR_NO_DATA,
    }
)
# Codes after which no call on any GPU can succeed until NVML is initialized again.
LIBRARY_DOWN_CODES = frozenset(
    {
        pynvml.NVML_ERROR_UNINITIALIZED,
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
        pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
    }
)
_ERROR_KINDS = {
    getattr(pynvml, name): name.removeprefix("NVML_ERROR_").lower()
    for name in dir(pynvml)
    if name.startswith("NVML_ERROR_") and isinstance(getattr(pynvml, name), int)
}

MAX_EVENTS_PER_READ = 1024  # an event storm must not stall a collection


def error_kind(error: pynvml.NVMLError) -> str:
    """A stable snake_case name for an NVML error, for metrics and logs."""
    return _ERROR_KINDS.get(error.value, f"code_{error.value}")


class NvmlDownError(SourceError):
    """NVML as a whole is unusable (driver not loaded, library missing, …)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind=ErrorKind.NVML_DOWN)


class GpuLostError(GpuworkError):
    """The GPU answered GPU_IS_LOST: it fell off the bus or needs a reset."""


def text(value: str | bytes) -> str:
    """pynvml returns str on current releases and bytes on older ones."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def handle_key(handle: Any) -> Any:
    """Real NVML handles are ctypes pointers, equal by address only."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle  # the simulation's handles compare by value


def mig_profile_name(gi_slices: int, ci_slices: int, memory_mib: int) -> str:
    """The profile name NVIDIA's tools print, e.g. `1g.10gb` or `1c.2g.20gb`, from a
    MIG device's attributes, for drivers whose device name does not carry it.

    Memory is rounded up to whole GiB, as the device plugin names MIG resources.
    """
    memory_gb = math.ceil(memory_mib / 1024)
    compute = f"{ci_slices}c." if ci_slices != gi_slices else ""
    return f"{compute}{gi_slices}g.{memory_gb}gb"
