"""The pod-resources client against the fake kubelet: a real gRPC server on a unix socket.

Nothing below the client is mocked: requests go through grpcio, over the socket, to
a server built from the same generated code. Time for the backoff comes from a
manual clock, so no test sleeps through a backoff.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from exporter.model import ContainerDevices, KubeletDevices
from exporter.sources.podresources import api_pb2, api_pb2_grpc
from exporter.sources.podresources import client as kubelet
from exporter.sources.podresources.client import (
    DEFAULT_RESOURCES,
    KubeletUnavailable,
    PodResourcesClient,
)
from simulator.kubelet import FakeKubelet
from simulator.node import ManualClock
from tests.support.paths import REPO

GPU_A = "GPU-0a1b2c3d-0000-4000-8000-000000000001"
GPU_B = "GPU-0a1b2c3d-0000-4000-8000-000000000002"
MIG_1 = "MIG-5e6f7a8b-0000-4000-8000-000000000001"
MIG_2 = "MIG-5e6f7a8b-0000-4000-8000-000000000002"


def answer_of(
    *allocated: ContainerDevices, allocatable: dict[str, tuple[str, ...]] | None = None
) -> Callable[[], KubeletDevices]:
    devices = KubeletDevices(allocated=allocated, allocatable=allocatable or {})
    return lambda: devices


@pytest.fixture
def socket_path(tmp_path: Path) -> str:
    return str(tmp_path / "kubelet.sock")  # well under the 107-byte limit of unix sockets


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(100.0)


@pytest.fixture
def fake(socket_path: str) -> Iterator[FakeKubelet]:
    with FakeKubelet(socket_path, answer_of()) as server:
        yield server


@pytest.fixture
def client(socket_path: str, clock: ManualClock) -> Iterator[PodResourcesClient]:
    with PodResourcesClient(socket_path, timeout=2.0, resources=DEFAULT_RESOURCES,
                            monotonic=clock) as c:  # fmt: skip
        yield c


class LogRecorder:
    """Stands in for the module's structlog logger; keeps (level, event) pairs."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda event, **kw: self.lines.append((level, event, kw))


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    recorder = LogRecorder()
    monkeypatch.setattr(kubelet, "log", recorder)
    return recorder


def failure(client: PodResourcesClient) -> KubeletUnavailable:
    with pytest.raises(KubeletUnavailable) as caught:
        client.read()
    return caught.value


# --- generated code ---------------------------------------------------------------------


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    # The command documented in api.proto, into a scratch tree.
    header = (REPO / "exporter/sources/podresources/api.proto").read_text()
    assert "python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. " \
           "exporter/sources/podresources/api.proto" in header  # fmt: skip
    out = tmp_path / "gen"
    out.mkdir()
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--python_out={out}",
         f"--pyi_out={out}", f"--grpc_python_out={out}", "exporter/sources/podresources/api.proto"],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    for name in ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py"):
        fresh = (out / "exporter/sources/podresources" / name).read_text()
        committed = (REPO / "exporter/sources/podresources" / name).read_text()
        assert fresh == committed, (
            f"exporter/sources/podresources/{name} is stale: regenerate it with the command at the "
            "top of api.proto (with the grpcio-tools version pinned in pyproject.toml)"
        )


def test_the_service_speaks_the_kubelet_wire_names() -> None:
    service = api_pb2.DESCRIPTOR.services_by_name["PodResourcesLister"]
    assert service.full_name == "v1.PodResourcesLister"
    assert set(service.methods_by_name) == {"List", "GetAllocatableResources", "Get"}
    fields = api_pb2.DynamicResource.DESCRIPTOR.fields_by_name
    assert {name: f.number for name, f in fields.items()} == {
        "claim_name": 2, "claim_namespace": 3, "claim_resources": 4,
    }  # fmt: skip
    assert api_pb2.ContainerResources.DESCRIPTOR.fields_by_name["dynamic_resources"].number == 5


# --- what a read returns ------------------------------------------------------------------


def test_whole_gpus_and_allocatable(fake: FakeKubelet, client: PodResourcesClient) -> None:
    fake.answer = answer_of(
        ContainerDevices("team-a", "train-0", "main", "nvidia.com/gpu", (GPU_A, GPU_B)),
        allocatable={"nvidia.com/gpu": (GPU_A, GPU_B)},
    )
    got = client.read()
    assert got.allocated == (
        ContainerDevices("team-a", "train-0", "main", "nvidia.com/gpu", (GPU_A, GPU_B)),
    )
    assert got.allocatable == {"nvidia.com/gpu": (GPU_A, GPU_B)}
    assert fake.calls == {"List": 1, "GetAllocatableResources": 1}


def test_mig_resources_and_several_containers(
    fake: FakeKubelet, client: PodResourcesClient
) -> None:
    entries = (
        ContainerDevices("team-a", "infer-0", "server", "nvidia.com/mig-1g.10gb", (MIG_1,)),
        ContainerDevices("team-a", "infer-0", "sidecar", "nvidia.com/mig-3g.40gb", (MIG_2,)),
        ContainerDevices("team-b", "infer-1", "server", "nvidia.com/mig-1g.10gb", ("MIG-x",)),
    )
    fake.answer = answer_of(*entries, allocatable={"nvidia.com/mig-1g.10gb": (MIG_1, "MIG-x"),
                                                   "nvidia.com/mig-3g.40gb": (MIG_2,)})  # fmt: skip
    got = client.read()
    assert got.allocated == entries
    assert got.allocatable == {
        "nvidia.com/mig-1g.10gb": (MIG_1, "MIG-x"),
        "nvidia.com/mig-3g.40gb": (MIG_2,),
    }


def test_time_slicing_replicas_under_a_renamed_resource(
    fake: FakeKubelet, client: PodResourcesClient
) -> None:
    replicas = tuple(f"{GPU_A}::{n}" for n in range(4))
    fake.answer = answer_of(
        ContainerDevices("team-a", "nb-0", "jupyter", "nvidia.com/gpu.shared", replicas[:1]),
        ContainerDevices("team-b", "nb-1", "jupyter", "nvidia.com/gpu.shared", replicas[1:2]),
        allocatable={"nvidia.com/gpu.shared": replicas},
    )
    got = client.read()
    assert [(c.pod, c.resource, c.device_ids) for c in got.allocated] == [
        ("nb-0", "nvidia.com/gpu.shared", (f"{GPU_A}::0",)),
        ("nb-1", "nvidia.com/gpu.shared", (f"{GPU_A}::1",)),
    ]
    assert got.allocatable["nvidia.com/gpu.shared"] == replicas


def test_dra_claims_become_dynamic_entries(fake: FakeKubelet, client: PodResourcesClient) -> None:
    fake.answer = answer_of(
        ContainerDevices("team-a", "dra-0", "main", "gpu.nvidia.com", ("gpu-0", "gpu-1"),
                         dynamic=True),
        ContainerDevices("team-a", "dra-0", "main", "nvidia.com/gpu", (GPU_B,)),
    )  # fmt: skip
    listed = fake.list_response()
    claim = listed.pod_resources[0].containers[0].dynamic_resources[0]
    assert [(r.driver_name, r.pool_name, r.device_name) for r in claim.claim_resources] == [
        ("gpu.nvidia.com", "node", "gpu-0"),
        ("gpu.nvidia.com", "node", "gpu-1"),
    ]
    got = client.read()
    # Device-plugin devices come first in a container, then one entry per claimed device.
    assert got.allocated == (
        ContainerDevices("team-a", "dra-0", "main", "nvidia.com/gpu", (GPU_B,)),
        ContainerDevices("team-a", "dra-0", "main", "gpu.nvidia.com", ("gpu-0",), dynamic=True),
        ContainerDevices("team-a", "dra-0", "main", "gpu.nvidia.com", ("gpu-1",), dynamic=True),
    )


def test_other_resources_and_drivers_are_left_out(
    fake: FakeKubelet, client: PodResourcesClient
) -> None:
    fake.answer = answer_of(
        ContainerDevices("net", "router-0", "main", "nic.example.com/sriov", ("0000:3b:00.2",)),
        ContainerDevices("net", "dra-1", "main", "nic.example.com", ("vf-0",), dynamic=True),
        ContainerDevices("team-a", "mixed", "main", "nic.example.com/sriov", ("0000:3b:00.3",)),
        ContainerDevices("team-a", "mixed", "main", "nvidia.com/gpu", (GPU_A,)),
        ContainerDevices("team-a", "gpux", "main", "nvidia.com/gpux", ("GPU-y",)),
        allocatable={"nic.example.com/sriov": ("0000:3b:00.2",), "nvidia.com/gpu": (GPU_A,)},
    )
    got = client.read()
    assert got.allocated == (
        ContainerDevices("team-a", "mixed", "main", "nvidia.com/gpu", (GPU_A,)),
    )
    assert got.allocatable == {"nvidia.com/gpu": (GPU_A,)}


def test_resource_patterns_are_configurable(socket_path: str, fake: FakeKubelet) -> None:
    fake.answer = answer_of(
        ContainerDevices("a", "p", "c", "amd.com/gpu", ("0",)),
        ContainerDevices("a", "p", "c", "nvidia.com/gpu", (GPU_A,)),
    )
    with PodResourcesClient(socket_path, timeout=2.0, resources=["amd.com/*"]) as client:
        assert [c.resource for c in client.read().allocated] == ["amd.com/gpu"]
        assert client.matches("amd.com/gpu") and not client.matches("xamd.com/gpu")
    with PodResourcesClient(socket_path, timeout=2.0, resources=[]) as client:
        assert client.read().allocated == ()


def test_unimplemented_allocatable_gives_an_empty_mapping_logged_once(
    fake: FakeKubelet, client: PodResourcesClient, logs: LogRecorder
) -> None:
    fake.answer = answer_of(ContainerDevices("a", "p", "c", "nvidia.com/gpu", (GPU_A,)),
                            allocatable={"nvidia.com/gpu": (GPU_A,)})  # fmt: skip
    fake.allocatable_unimplemented = True
    for _ in range(3):
        got = client.read()
        assert got.allocatable == {}
        assert len(got.allocated) == 1
    assert [event for _, event, _ in logs.lines] == [
        "kubelet does not implement GetAllocatableResources; allocatable devices are not reported"
    ]
    fake.allocatable_unimplemented = False  # the kubelet was upgraded
    assert client.read().allocatable == {"nvidia.com/gpu": (GPU_A,)}


# --- bounds ---------------------------------------------------------------------------------


def test_caps_drop_devices_and_count_them(socket_path: str, fake: FakeKubelet) -> None:
    long_id = "GPU-" + "x" * 300
    fake.answer = answer_of(
        ContainerDevices("a", "p0", "c", "nvidia.com/gpu", ("g0", long_id, "g1")),
        ContainerDevices("a", "p1", "c", "nvidia.com/gpu", ("g2", "g3")),
        ContainerDevices("a", "p2", "c", "gpu.nvidia.com", ("d0",), dynamic=True),
        allocatable={"nvidia.com/gpu": ("g0", "g1", "g2", "g3", long_id)},
    )
    with PodResourcesClient(socket_path, timeout=2.0, max_devices=3) as client:
        got = client.read()
        assert got.allocated == (
            ContainerDevices("a", "p0", "c", "nvidia.com/gpu", ("g0", "g1")),
            ContainerDevices("a", "p1", "c", "nvidia.com/gpu", ("g2",)),
        )
        assert got.allocatable == {"nvidia.com/gpu": ("g0", "g1", "g2")}
        assert client.dropped == {"long_id": 2, "allocated_cap": 2, "allocatable_cap": 1}
        client.read()
        assert client.dropped["long_id"] == 4  # counted since start, like every _total


def test_an_exact_max_length_id_is_kept(fake: FakeKubelet, client: PodResourcesClient) -> None:
    longest = "G" * kubelet.MAX_ID_LENGTH
    fake.answer = answer_of(ContainerDevices("a", "p", "c", "nvidia.com/gpu", (longest, "")))
    assert client.read().allocated[0].device_ids == (longest,)
    assert client.dropped == {"empty_id": 1}


# --- failures -------------------------------------------------------------------------------


def test_missing_socket_names_the_path(socket_path: str, client: PodResourcesClient) -> None:
    error = failure(client)
    assert error.kind == "socket_missing"
    assert socket_path in str(error)
    assert "without pod attribution" in str(error)
    assert client.connections == 0  # checked before dialing


def test_stale_socket_without_a_server_is_unavailable(
    socket_path: str, client: PodResourcesClient
) -> None:
    # A socket file left behind by a kubelet that died: it exists, nobody listens.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(socket_path)
    stale.close()
    assert failure(client).kind == "unavailable"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.UNAVAILABLE, "unavailable"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "timeout"),
        (grpc.StatusCode.PERMISSION_DENIED, "error"),
        (grpc.StatusCode.INTERNAL, "error"),
    ],
)
def test_status_codes_map_to_kinds(
    fake: FakeKubelet, client: PodResourcesClient, code: grpc.StatusCode, kind: str
) -> None:
    fake.fail_with = code
    error = failure(client)
    assert error.kind == kind
    if kind == "error":
        assert code.name in str(error)
        assert f"injected {code.name}" in str(error)  # the server's details


def test_a_failing_allocatable_call_fails_the_read(
    fake: FakeKubelet, client: PodResourcesClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.answer = answer_of(allocatable={"nvidia.com/gpu": (GPU_A,)})
    real = fake.allocatable_response

    def broken() -> api_pb2.AllocatableResourcesResponse:
        raise RuntimeError("boom")  # the server answers UNKNOWN

    monkeypatch.setattr(fake, "allocatable_response", broken)
    error = failure(client)
    assert error.kind == "error" and "GetAllocatableResources" in str(error)
    assert "UNKNOWN" in str(error)
    monkeypatch.setattr(fake, "allocatable_response", real)


def test_timeout_returns_within_the_deadline(socket_path: str, fake: FakeKubelet) -> None:
    fake.delay = 5.0
    with PodResourcesClient(socket_path, timeout=0.2) as client:
        started = time.monotonic()
        error = failure(client)
        elapsed = time.monotonic() - started
    assert error.kind == "timeout"
    assert 0.15 < elapsed < 1.0
    assert fake.calls["GetAllocatableResources"] == 0  # List used up the deadline


def test_both_calls_share_one_deadline(socket_path: str, fake: FakeKubelet) -> None:
    # A clock that jumps past the deadline during List: no time is left for the second call.
    ticks = iter([0.0, 0.0, 5.0, 5.0, 5.0])
    with PodResourcesClient(socket_path, timeout=1.0, monotonic=lambda: next(ticks)) as client:
        error = failure(client)
    assert error.kind == "timeout"
    assert fake.calls == {"List": 1}


def test_no_grpc_exception_escapes_for_any_status(
    fake: FakeKubelet, client: PodResourcesClient, clock: ManualClock
) -> None:
    for code in grpc.StatusCode:
        if code in (grpc.StatusCode.OK,):
            continue
        fake.fail_with = code
        clock.advance(61)  # past any backoff
        error = failure(client)
        assert error.kind in {"unavailable", "timeout", "error"}


# --- connection, backoff and logs ---------------------------------------------------------


def test_one_channel_is_reused_across_reads(
    fake: FakeKubelet, client: PodResourcesClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real = grpc.insecure_channel

    def counting(target: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(target)
        return real(target, *args, **kwargs)

    monkeypatch.setattr(grpc, "insecure_channel", counting)
    for _ in range(5):
        client.read()
    assert fake.calls == {"List": 5, "GetAllocatableResources": 5}
    assert len(opened) == 1 and opened[0].startswith("unix:///")
    assert client.connections == 1


def test_restarted_kubelet_is_found_again_after_backoff(
    socket_path: str, fake: FakeKubelet, client: PodResourcesClient, clock: ManualClock,
    logs: LogRecorder,
) -> None:  # fmt: skip
    fake.answer = answer_of(ContainerDevices("a", "p", "c", "nvidia.com/gpu", (GPU_A,)))
    assert len(client.read().allocated) == 1
    fake.stop()
    assert failure(client).kind == "socket_missing"
    fake.start()
    assert failure(client).kind == "backoff"  # back already, but the backoff still holds
    clock.advance(1.0)
    assert len(client.read().allocated) == 1
    assert client.connections == 2  # the failed channel was replaced
    assert [(level, kw.get("kind")) for level, _, kw in logs.lines] == [
        ("warning", "socket_missing"),
        ("info", None),
    ]
    assert logs.lines[1][2] == {"failed_attempts": 1}


def test_server_restart_between_reads_is_survived(
    socket_path: str, fake: FakeKubelet, client: PodResourcesClient, clock: ManualClock
) -> None:
    fake.answer = answer_of(ContainerDevices("a", "p", "c", "nvidia.com/gpu", (GPU_A,)))
    client.read()
    fake.stop()
    fake.start()
    # The kept channel may notice the lost connection only by failing once; either way a
    # read after one backoff sees the restarted kubelet.
    try:
        got = client.read()
    except KubeletUnavailable as error:
        assert error.kind == "unavailable"
        clock.advance(1.0)
        got = client.read()
    assert got.allocated[0].device_ids == (GPU_A,)


def test_backoff_doubles_to_a_ceiling_and_resets_on_success(
    socket_path: str, client: PodResourcesClient, clock: ManualClock, logs: LogRecorder
) -> None:
    for backoff in (1, 2, 4, 8, 16, 32, 60, 60):
        failed_at = clock.now
        assert failure(client).kind == "socket_missing"  # a real attempt
        clock.now = failed_at + backoff - 0.001
        error = failure(client)
        assert error.kind == "backoff" and "next attempt in" in str(error)
        clock.now = failed_at + backoff
    assert [level for level, _, _ in logs.lines] == ["warning"]  # one line for the streak
    with FakeKubelet(socket_path, answer_of()):
        client.read()
    recovered_at = clock.now
    assert failure(client).kind == "socket_missing"
    clock.now = recovered_at + 0.999
    assert failure(client).kind == "backoff"
    clock.now = recovered_at + 1.0  # 1 s again, not 60 s
    assert failure(client).kind == "socket_missing"
    assert [level for level, _, _ in logs.lines] == ["warning", "info", "warning"]
    assert logs.lines[1][2] == {"failed_attempts": 8}


def test_a_new_kind_of_failure_is_logged_once(
    socket_path: str, fake: FakeKubelet, client: PodResourcesClient, clock: ManualClock,
    logs: LogRecorder,
) -> None:  # fmt: skip
    fake.fail_with = grpc.StatusCode.PERMISSION_DENIED
    for _ in range(3):
        failure(client)
        clock.advance(61)
    fake.fail_with = grpc.StatusCode.UNAVAILABLE
    for _ in range(3):
        failure(client)
        clock.advance(61)
    assert [kw["kind"] for _, _, kw in logs.lines] == ["error", "unavailable"]


def test_close_is_idempotent_and_final(fake: FakeKubelet, client: PodResourcesClient) -> None:
    client.read()
    client.close()
    client.close()
    error = failure(client)
    assert error.kind == "error" and "closed" in str(error)
    assert fake.calls["List"] == 1


def test_bad_arguments_are_refused(socket_path: str) -> None:
    with pytest.raises(ValueError, match="timeout"):
        PodResourcesClient(socket_path, timeout=0)
    with pytest.raises(ValueError, match="max_devices"):
        PodResourcesClient(socket_path, timeout=1, max_devices=-1)


# --- the fake kubelet itself -------------------------------------------------------------


def test_fake_answers_get_and_counts_calls(fake: FakeKubelet, socket_path: str) -> None:
    fake.answer = answer_of(ContainerDevices("team-a", "p", "c", "nvidia.com/gpu", (GPU_A,)))
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        stub = api_pb2_grpc.PodResourcesListerStub(channel)
        got = stub.Get(api_pb2.GetPodResourcesRequest(pod_name="p", pod_namespace="team-a"))
        assert list(got.pod_resources.containers[0].devices[0].device_ids) == [GPU_A]
        with pytest.raises(grpc.RpcError) as caught:
            stub.Get(api_pb2.GetPodResourcesRequest(pod_name="q", pod_namespace="team-a"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert fake.calls == {"Get": 2}


def test_fake_stop_removes_the_socket_and_cuts_delays_short(socket_path: str) -> None:
    server = FakeKubelet(socket_path, answer_of())
    server.start()
    assert Path(socket_path).exists()
    with pytest.raises(RuntimeError):
        server.start()
    server.delay = 30.0
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        stub = api_pb2_grpc.PodResourcesListerStub(channel)
        pending = stub.List.future(api_pb2.ListPodResourcesRequest(), timeout=10)
        while server.calls["List"] == 0:
            time.sleep(0.01)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        assert pending.exception() is not None
    assert not Path(socket_path).exists()
    server.stop()  # a second stop is harmless
