"""A fake kubelet: a real gRPC server speaking the pod-resources v1 API on a unix socket.

It answers from a callable that returns what the kubelet would know, unfiltered,
so the real `PodResourcesClient` runs against it unchanged. Faults are plain
attributes that tests set between calls.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from exporter.model import ContainerDevices, KubeletDevices
from exporter.sources.podresources import api_pb2, api_pb2_grpc

POOL_NAME = "node"  # the DRA resource pool every fake device lives in


class FakeKubelet:
    """Serves `answer()` as the kubelet's pod-resources v1 API on `socket_path`.

    Faults: `delay` seconds before each answer; `allocatable_unimplemented` makes
    GetAllocatableResources answer UNIMPLEMENTED, as kubelets before 1.23 do;
    `fail_with` makes every rpc fail with that status. `calls` counts rpcs by method.
    """

    def __init__(self, socket_path: str, answer: Callable[[], KubeletDevices]) -> None:
        self.socket_path = socket_path
        self.answer = answer
        self.delay = 0.0
        self.allocatable_unimplemented = False
        self.fail_with: grpc.StatusCode | None = None
        self.calls: Counter[str] = Counter()
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # `calls` is bumped from the server's threads

    def start(self) -> None:
        """Binds the socket and starts serving. Starting again after `stop` is allowed."""
        if self._server is not None:
            raise RuntimeError("fake kubelet is already running")
        self._stopping.clear()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fake-kubelet")
        server = grpc.server(self._executor)
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(_Servicer(self), server)
        server.add_insecure_port("unix://" + os.path.abspath(self.socket_path))
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stops serving at once, cutting short any delayed answer, and removes the socket."""
        server, self._server = self._server, None
        self._stopping.set()  # wakes handlers sleeping through `delay`
        if server is not None:
            server.stop(grace=None).wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def __enter__(self) -> FakeKubelet:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def list_response(self) -> api_pb2.ListPodResourcesResponse:
        """The answer's allocations as the kubelet sends them: grouped by pod and container."""
        pods: dict[tuple[str, str], dict[str, list[ContainerDevices]]] = {}
        for entry in self.answer().allocated:
            containers = pods.setdefault((entry.namespace, entry.pod), {})
            containers.setdefault(entry.container, []).append(entry)
        response = api_pb2.ListPodResourcesResponse()
        for (namespace, pod_name), containers in pods.items():
            pod = response.pod_resources.add(name=pod_name, namespace=namespace)
            for container_name, entries in containers.items():
                container = pod.containers.add(name=container_name)
                for claim_index, entry in enumerate(entries):
                    if not entry.dynamic:
                        container.devices.add(resource_name=entry.resource,
                                              device_ids=entry.device_ids)  # fmt: skip
                        continue
                    claim = container.dynamic_resources.add(
                        claim_name=f"{pod_name}-{container_name}-claim-{claim_index}",
                        claim_namespace=namespace,
                    )
                    for device_name in entry.device_ids:
                        claim.claim_resources.add(
                            driver_name=entry.resource, pool_name=POOL_NAME, device_name=device_name
                        )
        return response

    def allocatable_response(self) -> api_pb2.AllocatableResourcesResponse:
        response = api_pb2.AllocatableResourcesResponse()
        for resource, ids in self.answer().allocatable.items():
            response.devices.add(resource_name=resource, device_ids=ids)
        return response

    def _enter(self, method: str, context: Any) -> None:
        with self._lock:
            self.calls[method] += 1
        if self.delay > 0 and self._stopping.wait(self.delay):
            context.abort(grpc.StatusCode.UNAVAILABLE, "fake kubelet is shutting down")
        if self.fail_with is not None:
            context.abort(self.fail_with, f"fake kubelet: injected {self.fail_with.name}")


class _Servicer:
    """The v1 service handlers; the generated registration only needs these methods."""

    def __init__(self, kubelet: FakeKubelet) -> None:
        self._kubelet = kubelet

    def List(
        self, request: api_pb2.ListPodResourcesRequest, context: Any
    ) -> api_pb2.ListPodResourcesResponse:
        self._kubelet._enter("List", context)
        return self._kubelet.list_response()

    def GetAllocatableResources(
        self, request: api_pb2.AllocatableResourcesRequest, context: Any
    ) -> api_pb2.AllocatableResourcesResponse:
        self._kubelet._enter("GetAllocatableResources", context)
        if self._kubelet.allocatable_unimplemented:
            context.set_code(grpc.StatusCode.UNIMPLEMENTED)
            context.set_details("unknown method GetAllocatableResources for service v1")
            return api_pb2.AllocatableResourcesResponse()
        return self._kubelet.allocatable_response()

    def Get(
        self, request: api_pb2.GetPodResourcesRequest, context: Any
    ) -> api_pb2.GetPodResourcesResponse:
        self._kubelet._enter("Get", context)
        for pod in self._kubelet.list_response().pod_resources:
            if pod.name == request.pod_name and pod.namespace == request.pod_namespace:
                return api_pb2.GetPodResourcesResponse(pod_resources=pod)
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details(
            f"pod {request.pod_name} not found in namespace {request.pod_namespace}"
        )
        return api_pb2.GetPodResourcesResponse()
