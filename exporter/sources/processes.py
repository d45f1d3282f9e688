"""Maps host PIDs of GPU processes to the Kubernetes pods they run in.

NVML names a device's processes by host PID only. When several pods share a
device (time-slicing, MPS), judging each by its own processes needs each PID's
pod, and the kubelet files every container under its pod's cgroup, whose name
carries the pod UID. So `/proc/<pid>/cgroup` says which pod a PID belongs to.

The kubelet writes the pod cgroup in one of two forms:

- systemd driver: `.../kubepods-burstable-pod<uid>.slice/...`, with the UID's
  dashes written as underscores (a dash separates levels in a slice name);
  guaranteed pods sit at `kubepods-pod<uid>.slice`, best-effort ones under
  `kubepods-besteffort-...`;
- cgroupfs driver: `.../kubepods/burstable/pod<uid>/<container id>`, guaranteed pods
  at `.../kubepods/pod<uid>/...`.

Either may sit under a prefix (kind and other nested nodes: `/kubelet.slice/...`,
`/docker/<id>/kubepods/...`), or under `..` components when the reader runs in its
own cgroup namespace. cgroup v1 lists one path per hierarchy, v2 one `0::<path>`.
Static pods' cgroups carry a config hash, not the API's pod UID: they are not mapped.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping

from exporter.errors import ErrorKind
from exporter.sources.worker import Worker

MAX_CGROUP_BYTES = 64 * 1024  # a cgroup file is a few hundred bytes; never read more

_HEX = "[0-9a-fA-F]"
# A UUID written with dashes (cgroupfs) or underscores (systemd), one kind throughout.
_UUID = rf"{_HEX}{{8}}(?P<sep>[-_])(?:{_HEX}{{4}}(?P=sep)){{3}}{_HEX}{{12}}"
# One path component naming a pod: `[<prefix>-]kubepods[-<qos>]-pod<uid>.slice`.
_SYSTEMD_POD = re.compile(
    rf"(?:.+-)?kubepods(?:-burstable|-besteffort)?-pod(?P<uid>{_UUID})\.slice"
)
# One path component naming a pod, below a `kubepods` component: `pod<uid>`.
_CGROUPFS_POD = re.compile(rf"pod(?P<uid>{_UUID})")
_CGROUPFS_ROOT = "kubepods"


def _pod_uid_from_path(path: str) -> str | None:
    under_kubepods = False
    for component in path.split("/"):
        match = _SYSTEMD_POD.fullmatch(component)
        if match is None and under_kubepods:
            match = _CGROUPFS_POD.fullmatch(component)
        if match is not None:
            return match["uid"].replace("_", "-").lower()
        under_kubepods = under_kubepods or component == _CGROUPFS_ROOT
    return None


def pod_uid_from_cgroup(text: str) -> str | None:
    """The pod UID in a `/proc/<pid>/cgroup` text (v1 or v2), or None if not in a pod."""
    for line in text.splitlines():
        fields = line.split(":", 2)  # hierarchy-ID:controllers:path
        if len(fields) != 3:
            continue
        uid = _pod_uid_from_path(fields[2])
        if uid is not None:
            return uid
    return None


class ProcessPods:
    """Reads the pod of each host PID from `<proc_root>/<pid>/cgroup`.

    `errors` counts the PIDs left out for a failure, by kind, since creation:
    `missing` (the process is gone), `permission_denied`, `unreadable`, `invalid_pid`.
    """

    def __init__(self, proc_root: str = "/proc") -> None:
        self.proc_root = proc_root
        self.errors: Counter[str] = Counter()

    def pod_uids(self, pids: Iterable[int]) -> dict[int, str]:
        """PID -> pod UID for the PIDs in a pod; the others are left out. Never raises
        for I/O errors."""
        uids: dict[int, str] = {}
        for pid in pids:
            if pid <= 0:
                self.errors[ErrorKind.INVALID_PID] += 1
                continue
            text = self._read(pid)
            uid = pod_uid_from_cgroup(text) if text is not None else None
            if uid is not None:
                uids[pid] = uid
        return uids

    def _read(self, pid: int) -> str | None:
        path = os.path.join(self.proc_root, str(pid), "cgroup")
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_CGROUP_BYTES)
        except (FileNotFoundError, ProcessLookupError):  # exited since NVML saw it
            self.errors[ErrorKind.MISSING] += 1
            return None
        except PermissionError:
            self.errors[ErrorKind.PERMISSION_DENIED] += 1
            return None
        except OSError:
            self.errors[ErrorKind.UNREADABLE] += 1
            return None
        return data.decode("utf-8", errors="replace")


class ProcessSource:
    """`/proc` as a source: the pods of the PIDs NVML saw, read on a thread of its own."""

    name = "processes"
    keep_last = 0.0  # PIDs come and go: an old answer is no answer
    complete = True  # a PID that cannot be read is counted in `errors`, the rest are read
    dropped_series: Mapping[str, int] = {}

    def __init__(self, pods: ProcessPods, *, timeout: float) -> None:
        self._pods = pods
        self._worker = Worker("processes", timeout)
        self._errors: Counter[str] = Counter()

    @property
    def errors(self) -> Mapping[str, int]:
        return self._errors

    async def read(self, pids: Iterable[int], /) -> dict[int, str]:
        return await self._worker.run(lambda: self._read(pids))

    async def close(self) -> None:
        await self._worker.close()

    def _read(self, pids: Iterable[int]) -> dict[int, str]:
        try:
            return self._pods.pod_uids(pids)
        finally:  # copied here, in the thread that owns the counters
            self._errors = Counter(self._pods.errors)
