"""PIDs map to pod UIDs through real cgroup files, in every form the kubelet writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.sources.processes import MAX_CGROUP_BYTES, ProcessPods, pod_uid_from_cgroup

UID = "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"
SYSTEMD_UID = UID.replace("-", "_")
CONTAINER = "4f2a0c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a"

V1_BURSTABLE_CGROUPFS = f"""\
12:pids:/kubepods/burstable/pod{UID}/{CONTAINER}
11:memory:/kubepods/burstable/pod{UID}/{CONTAINER}
10:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CONTAINER}
1:name=systemd:/kubepods/burstable/pod{UID}/{CONTAINER}
"""
V1_SYSTEMD = f"""\
11:devices:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{SYSTEMD_UID}.slice/docker-{CONTAINER}.scope
1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{SYSTEMD_UID}.slice/docker-{CONTAINER}.scope
0::/
"""


@pytest.mark.parametrize(
    "text",
    [
        # cgroup v2, systemd driver: burstable, best-effort, guaranteed
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{SYSTEMD_UID}.slice/cri-containerd-{CONTAINER}.scope\n",
        f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{SYSTEMD_UID}.slice/crio-{CONTAINER}.scope\n",
        f"0::/kubepods.slice/kubepods-pod{SYSTEMD_UID}.slice/cri-containerd-{CONTAINER}.scope\n",
        # the pod's own cgroup (the sandbox's pause process sits in a container cgroup too)
        f"0::/kubepods.slice/kubepods-pod{SYSTEMD_UID}.slice\n",
        # cgroup v2, cgroupfs driver
        f"0::/kubepods/burstable/pod{UID}/{CONTAINER}\n",
        f"0::/kubepods/besteffort/pod{UID}/{CONTAINER}\n",
        f"0::/kubepods/pod{UID}/{CONTAINER}\n",
        # cgroup v1, both drivers
        V1_BURSTABLE_CGROUPFS,
        V1_SYSTEMD,
        # nested: kind and other nodes in containers, and a cgroup namespace's view
        f"0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod{SYSTEMD_UID}.slice/cri-containerd-{CONTAINER}.scope\n",
        f"0::/docker/{CONTAINER}/kubepods/burstable/pod{UID}/{CONTAINER}\n",
        f"0::/kubelet/kubepods/pod{UID}/{CONTAINER}\n",
        f"0::/../../kubepods-besteffort-pod{SYSTEMD_UID}.slice/cri-containerd-{CONTAINER}.scope\n",
        f"0::/../../../kubepods/burstable/pod{UID}/{CONTAINER}\n",
        # upper-case hex, no trailing newline, CRLF, blank and odd lines around it
        f"0::/kubepods/pod{UID.upper()}/{CONTAINER}",
        f"\r\n0::/kubepods/pod{UID}/{CONTAINER}\r\n",
        f"garbage\n\n1:cpuset:/\n0::/kubepods/pod{UID}/{CONTAINER}\n",
    ],
)
def test_pod_uid(text: str) -> None:
    assert pod_uid_from_cgroup(text) == UID


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0::/\n",
        "0::/init.scope\n",
        "0::/system.slice/containerd.service\n",
        "0::/system.slice/nvidia-persistenced.service\n",
        "0::/user.slice/user-1000.slice/session-3.scope\n",
        "12:memory:/user.slice\n1:name=systemd:/user.slice/user-0.slice/session-1.scope\n",
        # the QoS cgroups themselves, not a pod
        "0::/kubepods.slice/kubepods-burstable.slice\n",
        "0::/kubepods/burstable\n",
        # a `pod<uid>` directory outside the kubelet's tree
        f"0::/system.slice/pod{UID}/x\n",
        f"0::/pod{UID}/kubepods\n",
        # malformed UIDs: short, long, mixed separators, not hex
        f"0::/kubepods/pod{UID[:-1]}/{CONTAINER}\n",
        f"0::/kubepods/pod{UID}0/{CONTAINER}\n",
        f"0::/kubepods.slice/kubepods-pod{UID[:9]}{SYSTEMD_UID[9:]}.slice\n",
        f"0::/kubepods/pod{UID.replace('b', 'g')}/{CONTAINER}\n",
        f"0::/kubepods.slice/kubepods-pod{SYSTEMD_UID}.scope\n",
        # a static pod's cgroup names its config hash, not an API UID
        "0::/kubepods/burstable/pod6c4b3ce9bd1f27c71f3e5b6b3c9b2a10/x\n",
        "no colons at all\n",
    ],
)
def test_no_pod(text: str) -> None:
    assert pod_uid_from_cgroup(text) is None


def _write(root: Path, pid: int, text: str | bytes) -> None:
    (root / str(pid)).mkdir()
    data = text.encode() if isinstance(text, str) else text
    (root / str(pid) / "cgroup").write_bytes(data)


def test_maps_pids_of_pods_only(tmp_path: Path) -> None:
    other = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    _write(tmp_path, 1234, f"0::/kubepods/burstable/pod{UID}/{CONTAINER}\n")
    _write(tmp_path, 1235, V1_SYSTEMD)
    _write(tmp_path, 2001, f"0::/kubepods/pod{other}/{CONTAINER}\n")
    _write(tmp_path, 1, "0::/init.scope\n")
    pods = ProcessPods(str(tmp_path))
    assert pods.pod_uids([1234, 1235, 2001, 1]) == {1234: UID, 1235: UID, 2001: other}
    assert pods.errors == {}


def test_counts_what_it_cannot_read(tmp_path: Path) -> None:
    _write(tmp_path, 1234, f"0::/kubepods/pod{UID}/{CONTAINER}\n")
    (tmp_path / "77" / "cgroup").mkdir(parents=True)  # a directory, not a file
    (tmp_path / "78").write_text("")  # /proc/78 is a file: cgroup beneath it cannot exist
    pods = ProcessPods(str(tmp_path))
    assert pods.pod_uids([1234, 99, 77, 78, 0, -5]) == {1234: UID}
    assert pods.errors == {"missing": 1, "unreadable": 2, "invalid_pid": 2}
    pods.pod_uids([99])
    assert pods.errors["missing"] == 2  # counted since creation


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_counts_permission_denied(tmp_path: Path) -> None:
    _write(tmp_path, 1234, f"0::/kubepods/pod{UID}/{CONTAINER}\n")
    (tmp_path / "1234" / "cgroup").chmod(0)
    pods = ProcessPods(str(tmp_path))
    assert pods.pod_uids([1234]) == {}
    assert pods.errors == {"permission_denied": 1}


def test_reads_at_most_64_kib(tmp_path: Path) -> None:
    padding = "1:cpuset:/\n" * (MAX_CGROUP_BYTES // 11 + 1)
    _write(tmp_path, 1, padding + f"0::/kubepods/pod{UID}/{CONTAINER}\n")
    near = "1:cpuset:/\n" * ((MAX_CGROUP_BYTES - 200) // 11)
    _write(tmp_path, 2, near + f"0::/kubepods/pod{UID}/{CONTAINER}\n")
    assert ProcessPods(str(tmp_path)).pod_uids([1, 2]) == {2: UID}


def test_tolerates_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    _write(tmp_path, 5, b"1:\xff\xfe:/x\n" + f"0::/kubepods/pod{UID}/{CONTAINER}\n".encode())
    assert ProcessPods(str(tmp_path)).pod_uids([5]) == {5: UID}


def test_empty_and_repeated_pids(tmp_path: Path) -> None:
    _write(tmp_path, 7, f"0::/kubepods/pod{UID}/{CONTAINER}\n")
    pods = ProcessPods(str(tmp_path))
    assert pods.pod_uids([]) == {}
    assert pods.pod_uids(iter([7, 7])) == {7: UID}


def test_reads_the_real_proc() -> None:
    pods = ProcessPods()
    found = pods.pod_uids([os.getpid()])
    assert set(found) <= {os.getpid()}  # this test may or may not run in a pod
    assert pods.errors == {}
