"""The fake /proc: every engine process's cgroup names its pod, as on a systemd cgroup v2 node."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulator.loads import runs_process
from simulator.node import SimulatedNode, pod_pid, pod_uid
from simulator.proc import HOST_PROCESSES, container_id, proc_cgroups, write_proc_root
from simulator.scenario import load_scenario

POD_CGROUP = re.compile(
    r"0::/kubepods\.slice/kubepods-burstable\.slice/"
    r"kubepods-burstable-pod(?P<uid>[0-9a-f_]{36})\.slice/"
    r"cri-containerd-(?P<container>[0-9a-f]{64})\.scope\n"
)


def node(name: str) -> SimulatedNode:
    return SimulatedNode(load_scenario(name), clock=lambda: 0.0)


def read_root(root: Path) -> dict[int, str]:
    return {int(f.parent.name): f.read_text() for f in root.glob("*/cgroup")}


def test_every_process_of_a_pod_has_its_pods_cgroup(tmp_path: Path) -> None:
    mixed = node("mixed")
    write_proc_root(mixed, tmp_path)
    files = read_root(tmp_path)
    running = [pod for pod in mixed.scenario.pods if runs_process(pod.load)]
    assert 0 < len(running) < len(mixed.scenario.pods)  # never-used pods run nothing
    assert set(files) == {pod_pid(pod) for pod in running} | set(HOST_PROCESSES)
    for pod in running:
        match = POD_CGROUP.fullmatch(files[pod_pid(pod)])
        assert match, files[pod_pid(pod)]
        assert match["uid"] == pod_uid(pod).replace("-", "_")
        assert match["container"] == container_id(pod)


def test_host_processes_belong_to_no_pod(tmp_path: Path) -> None:
    write_proc_root(node("small"), tmp_path)
    files = read_root(tmp_path)
    assert files[1] == "0::/init.scope\n"
    assert "0::/system.slice/nvidia-persistenced.service\n" in files.values()
    for pid in HOST_PROCESSES:
        assert not POD_CGROUP.fullmatch(files[pid])
        assert pid < 1000  # below every pod PID


def test_writing_again_rewrites_and_drops_what_the_node_no_longer_runs(tmp_path: Path) -> None:
    write_proc_root(node("mixed"), tmp_path)
    first = read_root(tmp_path)
    gone = tmp_path / "999999"
    gone.mkdir()
    (gone / "cgroup").write_text("0::/stale\n")
    kept = tmp_path / "999998"  # something else lives there: only the cgroup file goes
    kept.mkdir()
    (kept / "cgroup").write_text("0::/stale\n")
    (kept / "status").write_text("Name: x\n")
    (tmp_path / "self").mkdir()  # not a PID: left alone

    write_proc_root(node("mixed"), tmp_path)

    assert read_root(tmp_path) == first
    assert not gone.exists() and (tmp_path / "self").is_dir()
    assert [f.name for f in kept.iterdir()] == ["status"]
    assert not list(tmp_path.glob("*/cgroup.partial"))


def test_container_ids_and_pids_are_stable_and_distinct() -> None:
    dense = node("dense-h100")
    files = proc_cgroups(dense)  # raises if two pods drew one PID
    running = [pod for pod in dense.scenario.pods if runs_process(pod.load)]
    assert len(files) == len(running) + len(HOST_PROCESSES)
    ids = {container_id(pod) for pod in dense.scenario.pods}
    assert len(ids) == len(dense.scenario.pods)
    assert proc_cgroups(node("dense-h100")) == files


@pytest.mark.parametrize("name", ["small", "mixed", "dense-h100"])
def test_built_in_pod_pids_do_not_collide(name: str) -> None:
    pods = load_scenario(name).pods
    assert len({pod_pid(pod) for pod in pods}) == len(pods)
