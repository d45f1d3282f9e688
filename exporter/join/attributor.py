"""Runs attribution once per collection: kubelet, /proc and the join.

The blocking half of attribution, called in the collection's worker thread right after
NVML has been read. It owns what lives across collections: the kubelet client and the
last allocations it answered.

When the kubelet fails, the last allocations it gave are used for `keep_last` seconds
(a kubelet restart takes seconds, and pods do not lose their devices meanwhile); past
that, the snapshot has no attribution and device metrics flow on without it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from exporter.join.attribution import attribute, gpu_pids
from exporter.join.tenancy import TenantRule
from exporter.model import (
    Attribution,
    ClusterView,
    CollectorHealth,
    KubeletDevices,
    NvmlReading,
)
from exporter.sources.podresources.client import KubeletUnavailable, PodResourcesClient
from exporter.sources.processes import ProcessPods

PODRESOURCES = "podresources"
PROCESSES = "processes"

log = structlog.get_logger(component="exporter.join.attribution")


@dataclass(frozen=True, slots=True)
class AttributionResult:
    attribution: Attribution | None
    kubelet: CollectorHealth
    errors: Mapping[tuple[str, str], int]  # (collector, kind) -> count since start
    dropped_series: Mapping[str, int]  # copied here: the worker thread owns the counters


class Attributor:
    """Joins one NVML reading with the kubelet, /proc and cluster metadata. One thread."""

    def __init__(
        self,
        kubelet: PodResourcesClient,
        processes: ProcessPods,
        rules: Sequence[TenantRule],
        *,
        keep_last: float,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._kubelet = kubelet
        self._processes = processes
        self._rules = tuple(rules)
        self._keep_last = keep_last
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._last_devices: KubeletDevices | None = None
        self._last_success: float | None = None  # monotonic, for keep_last
        self._last_success_wall: float | None = None
        self.errors: Counter[str] = Counter()  # kubelet error kind -> count since start

    def collect(self, reading: NvmlReading, cluster: ClusterView | None) -> AttributionResult:
        started = self._monotonic()
        devices = self._read_kubelet(started)
        health = CollectorHealth(
            success=self._last_success == started,
            duration_seconds=self._monotonic() - started,
            last_success_timestamp=self._last_success_wall,
        )
        attribution = None
        if devices is not None:
            pid_pods = self._processes.pod_uids(gpu_pids(reading))
            attribution = attribute(reading, devices, cluster, self._rules, pid_pods)
        errors = {(PODRESOURCES, kind): n for kind, n in self.errors.items()}
        errors |= {(PROCESSES, kind): n for kind, n in self._processes.errors.items()}
        return AttributionResult(attribution, health, errors, dict(self._kubelet.dropped))

    def close(self) -> None:
        self._kubelet.close()

    def _read_kubelet(self, now: float) -> KubeletDevices | None:
        try:
            self._last_devices = self._kubelet.read()
        except KubeletUnavailable as error:
            self.errors[error.kind] += 1
            if self._last_success is None or now - self._last_success > self._keep_last:
                if self._last_devices is not None:
                    log.warning("kubelet allocations too old; attribution paused",
                                age_seconds=round(now - (self._last_success or now)))  # fmt: skip
                self._last_devices = None
            return self._last_devices
        self._last_success = now
        self._last_success_wall = self._wall_clock()
        return self._last_devices
