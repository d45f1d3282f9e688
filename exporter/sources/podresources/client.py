"""Reads which device went to which container from the kubelet pod-resources API.

The kubelet serves the v1 pod-resources API on a unix socket
(`/var/lib/kubelet/pod-resources/kubelet.sock`). `PodResourcesClient.read` asks it
for the current allocations and the allocatable devices, keeps only the GPU
resources, and returns a `KubeletDevices`. It blocks, so it runs in the
exporter's worker thread.

Every failure becomes a `KubeletUnavailable` with a `kind`; no gRPC exception gets
out. Without the kubelet, device metrics still flow, only without pod attribution.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from fnmatch import translate
from typing import Any

import grpc
import structlog

from exporter.errors import ErrorKind, SourceError
from exporter.model import ContainerDevices, KubeletDevices
from exporter.sources.podresources import api_pb2, api_pb2_grpc

log = structlog.get_logger(component="exporter.sources.podresources.client")

DEFAULT_SOCKET_PATH = "/var/lib/kubelet/pod-resources/kubelet.sock"
# fnmatch patterns over device-plugin resource names and DRA driver names.
DEFAULT_RESOURCES: tuple[str, ...] = (
    "nvidia.com/gpu",
    "nvidia.com/gpu.*",  # time-slicing or MPS under a renamed resource: nvidia.com/gpu.shared
    "nvidia.com/mig-*",
    "gpu.nvidia.com",  # the NVIDIA DRA driver
)
DEFAULT_MAX_DEVICES = 4096
MAX_ID_LENGTH = 256  # device UUIDs, MIG UUIDs and `UUID::N` replicas are far shorter
# The kubelet's own pod-resources client allows 16 MiB; gRPC's default of 4 MiB is too
# small for a dense node, and an answer past this fails rather than eating memory.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
INITIAL_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0


class KubeletUnavailable(SourceError):  # noqa: N818 -- "unavailable" reads better than "Error"
    """The kubelet could not be read; `kind` says why, for the errors-by-kind metric."""

    def __init__(self, message: str, *, kind: ErrorKind = ErrorKind.ERROR) -> None:
        super().__init__(message, kind=kind)
        self.kind: ErrorKind = kind


class PodResourcesClient:
    """A blocking client of the kubelet pod-resources v1 API, kept to GPU resources.

    One gRPC channel is kept and reused. After a failure the channel is dropped and
    the next attempt, made no sooner than the backoff allows, dials again.
    `monotonic` is the clock of both the backoff and the per-read deadline.
    """

    def __init__(
        self,
        socket_path: str,
        *,
        timeout: float,
        resources: Sequence[str] = DEFAULT_RESOURCES,
        monotonic: Callable[[], float] = time.monotonic,
        max_devices: int = DEFAULT_MAX_DEVICES,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if max_devices < 0:
            raise ValueError(f"max_devices must not be negative, got {max_devices}")
        self._socket_path = socket_path
        self._target = "unix://" + os.path.abspath(socket_path)
        self._timeout = timeout
        self._resources = tuple(resources)
        # One regex for all patterns: matching runs for every device entry of every read.
        self._matcher = re.compile("|".join(f"(?:{translate(p)})" for p in self._resources))
        self._monotonic = monotonic
        self._max_devices = max_devices
        self._channel: grpc.Channel | None = None
        self._stub: Any = None  # the generated stub is untyped
        self._backoff = INITIAL_BACKOFF_SECONDS
        self._next_attempt = float("-inf")
        self._failures = 0  # failed attempts in the current streak
        self._logged_kind: ErrorKind | None = None
        self._allocatable_unimplemented_logged = False
        self._closed = False
        self.connections = 0  # channels opened so far
        self.dropped: Counter[str] = Counter()  # reason -> devices left out, since start

    @property
    def socket_path(self) -> str:
        return self._socket_path

    def matches(self, resource: str) -> bool:
        """True when `resource` (a resource or DRA driver name) is one of the GPU patterns."""
        return self._resources != () and self._matcher.fullmatch(resource) is not None

    def read(self) -> KubeletDevices:
        """Lists the GPU allocations and allocatable GPU devices. Raises `KubeletUnavailable`."""
        if self._closed:
            raise KubeletUnavailable("the pod-resources client is closed", kind=ErrorKind.ERROR)
        now = self._monotonic()
        if now < self._next_attempt:
            raise KubeletUnavailable(
                f"kubelet pod-resources failed {self._failures} time(s); "
                f"next attempt in {self._next_attempt - now:.1f}s",
                kind=ErrorKind.BACKOFF,
            )
        try:
            listed, allocatable = self._call(deadline=now + self._timeout)
        except KubeletUnavailable as error:
            self._failed(error)
            raise
        self._succeeded()
        return KubeletDevices(
            allocated=self._allocated(listed), allocatable=self._allocatable(allocatable)
        )

    def close(self) -> None:
        """Closes the channel. Idempotent."""
        self._closed = True
        self._disconnect()

    def __enter__(self) -> PodResourcesClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(
        self, deadline: float
    ) -> tuple[api_pb2.ListPodResourcesResponse, api_pb2.AllocatableResourcesResponse | None]:
        # Checked before dialing: gRPC's own error for a missing socket says nothing useful.
        if not os.path.exists(self._socket_path):
            raise KubeletUnavailable(
                f"kubelet pod-resources socket {self._socket_path} does not exist "
                "(is the kubelet's pod-resources directory mounted?); "
                "device metrics keep flowing without pod attribution",
                kind=ErrorKind.SOCKET_MISSING,
            )
        stub = self._connect()
        try:
            listed: api_pb2.ListPodResourcesResponse = stub.List(
                api_pb2.ListPodResourcesRequest(), timeout=self._remaining(deadline)
            )
        except grpc.RpcError as error:
            raise _unavailable(error, "List") from None
        try:
            allocatable: api_pb2.AllocatableResourcesResponse = stub.GetAllocatableResources(
                api_pb2.AllocatableResourcesRequest(), timeout=self._remaining(deadline)
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise _unavailable(error, "GetAllocatableResources") from None
            # Kubelets before 1.23 lack the method; allocations alone still attribute devices.
            if not self._allocatable_unimplemented_logged:
                self._allocatable_unimplemented_logged = True
                log.info(
                    "kubelet does not implement GetAllocatableResources; "
                    "allocatable devices are not reported",
                    socket=self._socket_path,
                )
            return listed, None
        return listed, allocatable

    def _remaining(self, deadline: float) -> float:
        # Both calls share one deadline, so a read never takes much past `timeout`.
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            raise KubeletUnavailable(
                f"kubelet pod-resources did not answer within {self._timeout}s",
                kind=ErrorKind.TIMEOUT,
            )
        return remaining

    def _connect(self) -> Any:
        if self._stub is None:
            self._channel = grpc.insecure_channel(
                self._target,
                options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                    # A fresh channel must dial afresh, not inherit the failed connection's
                    # reconnect backoff from gRPC's process-wide subchannel pool.
                    ("grpc.use_local_subchannel_pool", 1),
                ],
            )
            self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)
            self.connections += 1
        return self._stub

    def _disconnect(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()

    def _failed(self, error: KubeletUnavailable) -> None:
        self._disconnect()
        self._failures += 1
        # The clock is read again: a timed-out attempt has used up `timeout` seconds.
        self._next_attempt = self._monotonic() + self._backoff
        retry_in = self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)
        # One line per streak, and one more if the reason changes; not one per cycle.
        if error.kind != self._logged_kind:
            self._logged_kind = error.kind
            log.warning("kubelet pod-resources unavailable; device metrics keep flowing "
                        "without pod attribution", kind=error.kind, error=str(error),
                        retry_in_seconds=retry_in)  # fmt: skip

    def _succeeded(self) -> None:
        if self._failures:
            log.info("kubelet pod-resources reachable again", failed_attempts=self._failures)
        self._failures = 0
        self._logged_kind = None
        self._backoff = INITIAL_BACKOFF_SECONDS
        self._next_attempt = float("-inf")

    def _allocated(self, listed: api_pb2.ListPodResourcesResponse) -> tuple[ContainerDevices, ...]:
        budget = _Budget(self._max_devices, self.dropped, cap_reason="allocated_cap")
        allocated: list[ContainerDevices] = []
        for pod in listed.pod_resources:
            for container in pod.containers:
                for devices in container.devices:
                    if not self.matches(devices.resource_name):
                        continue
                    ids = budget.take(devices.device_ids)
                    if ids:
                        allocated.append(ContainerDevices(pod.namespace, pod.name, container.name,
                                                          devices.resource_name, ids))  # fmt: skip
                for dynamic in container.dynamic_resources:
                    for claimed in dynamic.claim_resources:
                        if not self.matches(claimed.driver_name):
                            continue
                        ids = budget.take((claimed.device_name,))
                        if ids:
                            allocated.append(ContainerDevices(pod.namespace, pod.name,
                                                              container.name, claimed.driver_name,
                                                              ids, dynamic=True))  # fmt: skip
        return tuple(allocated)

    def _allocatable(
        self, answer: api_pb2.AllocatableResourcesResponse | None
    ) -> dict[str, tuple[str, ...]]:
        if answer is None:
            return {}
        budget = _Budget(self._max_devices, self.dropped, cap_reason="allocatable_cap")
        allocatable: dict[str, tuple[str, ...]] = {}
        for devices in answer.devices:
            if self.matches(devices.resource_name):
                ids = budget.take(devices.device_ids)
                if ids:
                    allocatable[devices.resource_name] = (
                        allocatable.get(devices.resource_name, ()) + ids
                    )
        return allocatable


class _Budget:
    """Keeps at most `limit` valid device ids over one answer, counting what it leaves out."""

    def __init__(self, limit: int, dropped: Counter[str], cap_reason: str) -> None:
        self._left = limit
        self._dropped = dropped
        self._cap_reason = cap_reason

    def take(self, ids: Iterable[str]) -> tuple[str, ...]:
        kept: list[str] = []
        for device_id in ids:
            if not device_id:
                self._dropped["empty_id"] += 1
            elif len(device_id) > MAX_ID_LENGTH:
                self._dropped["long_id"] += 1
            elif self._left <= 0:
                self._dropped[self._cap_reason] += 1
            else:
                self._left -= 1
                kept.append(device_id)
        return tuple(kept)


def _unavailable(error: grpc.RpcError, method: str) -> KubeletUnavailable:
    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return KubeletUnavailable(
            f"kubelet pod-resources {method} timed out", kind=ErrorKind.TIMEOUT
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return KubeletUnavailable(
            f"kubelet pod-resources {method} unavailable: {details}", kind=ErrorKind.UNAVAILABLE
        )
    name = code.name if isinstance(code, grpc.StatusCode) else str(code)
    return KubeletUnavailable(f"kubelet pod-resources {method} failed: {name}: {details}")
