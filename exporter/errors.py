"""One exception base, and the one vocabulary of error kinds that `/metrics` counts.

`gpuwork_exporter_errors_total{collector, kind}` counts what went wrong by `kind`.
Every kind is an `ErrorKind` member except two open families, which are built here
too: an HTTP status (`http_404`) and an NVML return code in snake case (`unknown`,
`irq_issue`). docs/metrics.md lists every member; a test keeps the two in step.
"""

from __future__ import annotations

import os
from enum import StrEnum


class ErrorKind(StrEnum):
    """What went wrong, as the `kind` label says it."""

    # Any source, counted by the collection loop around it
    TIMEOUT = "timeout"  # the read ran past its timeout
    STILL_RUNNING = "still_running"  # skipped: a timed-out read still holds the source's thread
    INTERNAL = "internal"  # an unexpected exception: a bug, please report it
    # NVML
    GPU_LOST = "gpu_lost"
    NVML_INIT = "nvml_init"  # nvmlInit failed
    NVML_DOWN = "nvml_down"  # NVML went away mid-run
    # the kubelet's pod-resources API
    SOCKET_MISSING = "socket_missing"
    UNAVAILABLE = "unavailable"
    BACKOFF = "backoff"  # an attempt skipped while backing off
    ERROR = "error"
    # /proc
    MISSING = "missing"  # the process ended between NVML and the read
    PERMISSION_DENIED = "permission_denied"
    UNREADABLE = "unreadable"
    INVALID_PID = "invalid_pid"
    # the Kubernetes API
    UNREACHABLE = "unreachable"
    GONE = "gone"  # 410: the watch expired, the exporter lists again
    FORBIDDEN = "forbidden"
    UNAUTHORIZED = "unauthorized"
    DECODE = "decode"  # a malformed object, skipped
    # the engines: a scrape
    CONNECTION = "connection"
    TOO_LARGE = "too_large"
    NOT_METRICS = "not_metrics"
    UNKNOWN_ENGINE = "unknown_engine"
    TRUNCATED = "truncated"
    # the engines: a line of a body, not read
    INVALID_LINE = "invalid_line"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_VALUE = "invalid_value"
    DUPLICATE_SERIES = "duplicate_series"
    TYPE_CONFLICT = "type_conflict"
    # the engines: a counter that fell without a restart, held
    COUNTER_DIP = "counter_dip"


def http_status_kind(status: int) -> str:
    """The kind of an HTTP answer that is not a success: `http_<status>`."""
    return f"http_{status}"


class GpuworkError(Exception):
    """Every error the exporter raises on purpose. Anything else is a bug."""


class SourceError(GpuworkError):
    """A source could not answer this collection. `kind` is what the loop counts; None
    where the source counted the failure itself already."""

    def __init__(self, message: str, *, kind: str | None = ErrorKind.ERROR) -> None:
        super().__init__(message)
        self.kind = kind


class ListenError(GpuworkError, OSError):
    """An address the exporter or its simulated node cannot listen on; one line naming it."""


def os_reason(error: OSError) -> str:
    """`Address already in use`, without asyncio's repetition of the address."""
    return os.strerror(error.errno) if error.errno and error.errno > 0 else str(error)
