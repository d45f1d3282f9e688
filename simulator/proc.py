"""A fake `/proc`: the cgroup of every process the simulated node runs.

The exporter maps a GPU process (a host PID from NVML) to its pod by reading
`/proc/<pid>/cgroup`. `write_proc_root` writes those files for a simulated node
under any directory, so that mapping runs unchanged in `--simulate` mode and in
tests: one engine process per pod that runs one (PID `pod_pid(pod)`, as the
simulated NVML reports it), plus a few host processes that belong to no pod.

The files take the form a cgroup v2 node with the kubelet's systemd cgroup driver
and containerd shows, one line:

    0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice
       /cri-containerd-<id>.scope

with the pod UID's dashes turned into underscores (systemd unit names) and a
64-hex container id.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from simulator.loads import runs_process
from simulator.node import SimulatedNode, pod_pid, pod_uid
from simulator.scenario import PodSpec

QOS_CLASS = "burstable"  # engines ask for less CPU than they may use
# Host processes on every simulated node: PID -> cgroup. Pod PIDs start at 1000.
HOST_PROCESSES: dict[int, str] = {
    1: "/init.scope",
    412: "/system.slice/containerd.service",
    523: "/system.slice/kubelet.service",
    811: "/system.slice/nvidia-persistenced.service",
}


def container_id(pod: PodSpec) -> str:
    """The container runtime's id of the pod's container: 64 hex digits, stable across runs."""
    return hashlib.sha256(f"container/{pod_uid(pod)}/{pod.container}".encode()).hexdigest()


def pod_cgroup(pod: PodSpec) -> str:
    """The cgroup v2 path of the pod's container under the systemd driver."""
    uid = pod_uid(pod).replace("-", "_")
    slice_ = f"kubepods-{QOS_CLASS}"
    return (
        f"/kubepods.slice/{slice_}.slice/{slice_}-pod{uid}.slice"
        f"/cri-containerd-{container_id(pod)}.scope"
    )


def proc_cgroups(node: SimulatedNode) -> dict[int, str]:
    """PID -> the text of `/proc/<pid>/cgroup` for every process on the node."""
    files = {pid: f"0::{path}\n" for pid, path in HOST_PROCESSES.items()}
    for pod in node.scenario.pods:
        if runs_process(pod.load):
            pid = pod_pid(pod)
            if pid in files:
                raise ValueError(f"pod {pod.namespace}/{pod.name}: PID {pid} is taken")
            files[pid] = f"0::{pod_cgroup(pod)}\n"
    return files


def write_proc_root(node: SimulatedNode, root: Path) -> None:
    """Writes `<root>/<pid>/cgroup` for every process of the node; safe to run again.

    Each file is replaced whole (readers never see half a file); the `cgroup` file
    of a numbered directory whose process the node no longer runs is removed, and
    the directory with it when nothing else is in it.
    """
    files = proc_cgroups(node)
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if entry.name.isdigit() and int(entry.name) not in files and entry.is_dir():
            (entry / "cgroup").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                entry.rmdir()
    for pid, text in files.items():
        directory = root / str(pid)
        directory.mkdir(exist_ok=True)
        partial = directory / "cgroup.partial"
        partial.write_text(text, encoding="ascii")
        os.replace(partial, directory / "cgroup")
