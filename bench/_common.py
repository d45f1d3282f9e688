"""Shared pieces of the benchmarks: a fake clock, simulated nodes, statistics."""

from __future__ import annotations

import collections
import contextlib
import importlib
import math
import os
import platform
import selectors
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter.collection import Collection, Sources
from exporter.exposition.families import SnapshotCollector
from exporter.logs import configure_logging
from exporter.model import NodeSnapshot
from exporter.sources.nvml.reader import NvmlReader
from exporter.sources.nvml.source import NvmlSource
from harness.processes import end_process
from simulator.node import ManualClock, SimulatedNode
from simulator.nvml import SimulatedNvml
from simulator.scenario import Scenario, load_scenario

CYCLE_SECONDS = 10.0  # simulated time between collections, like a 10 s scrape interval
ROOT = Path(__file__).resolve().parent.parent  # the repository: children run from here
READY_SECONDS = 60.0  # how long a child may take to say "ready"
ADDRESS_WAIT_SECONDS = 300.0  # how long to wait for engine addresses another process holds
ADDRESS_RETRY_SECONDS = 5.0


def quiet_logs() -> None:
    """Warnings and errors only, on stderr: benchmark output stays readable."""
    configure_logging("warning", "logfmt")


class FakeClock(ManualClock):
    """The simulation's manual clock, moving one collection interval by default."""

    def advance(self, seconds: float = CYCLE_SECONDS) -> None:
        super().advance(seconds)


@dataclass
class Sim:
    """One simulated node wired to the exporter's collection loop."""

    clock: FakeClock
    nvml: SimulatedNvml
    snapshots: SnapshotCollector
    collection: Collection

    async def cycle(self) -> NodeSnapshot:
        """One collection, then the simulated clock moves to the next one."""
        snapshot = await self.collection.collect_once()
        self.clock.advance()
        return snapshot


def make_sim(scenario: Scenario | str) -> Sim:
    if isinstance(scenario, str):
        scenario = load_scenario(scenario)
    clock = FakeClock()
    nvml = SimulatedNvml(SimulatedNode(scenario, clock=clock))
    reader = NvmlReader(nvml)
    snapshots = SnapshotCollector()
    nvml_source = NvmlSource(reader, timeout=5.0)
    collection = Collection(Sources(nvml_source), node=scenario.node, publish=snapshots.update)
    return Sim(clock, nvml, snapshots, collection)


def mig_scenario(devices_per_gpu: Sequence[int], name: str = "bench") -> Scenario:
    """GPUs split into 1g.10gb MIG instances, one busy pod on every instance."""
    gpus = [{"model": "H100-SXM5-80GB", "mig": ["1g.10gb"] * n} for n in devices_per_gpu]
    pods = [
        {"name": f"p{g}-{s}", "namespace": "bench", "tenant": "bench",
         "devices": [f"{g}/{s}"], "load": "busy"}
        for g, n in enumerate(devices_per_gpu)
        for s in range(n)
    ]  # fmt: skip
    return Scenario.model_validate({"name": name, "gpus": gpus, "pods": pods})


def device_count(snapshot: NodeSnapshot) -> int:
    return sum(len(gpu.devices) for gpu in snapshot.nvml.gpus) if snapshot.nvml else 0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in 0-100."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux) or psutil."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    psutil = importlib.import_module("psutil")  # not Linux: psutil (no type stubs here)
    return int(psutil.Process().memory_info().rss)


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "nproc": str(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def address_taken(error: BaseException | str) -> bool:
    """Whether an error (or a child's stderr) says a listening address is taken."""
    return "address already in use" in str(error).lower()


class Child:
    """A helper process of a benchmark that prints `ready` once it serves; its later
    output is drained in a thread (the last lines kept), so it never blocks on a pipe."""

    def __init__(self, args: Sequence[str]) -> None:
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- closed by stop()
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.output: collections.deque[str] = collections.deque(maxlen=50)
        self._drain: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, seconds: float = READY_SECONDS) -> bool:
        """True once the child printed `ready`; False if it exited first."""
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=max(deadline - time.monotonic(), 0.0)):
                    continue
                line = stdout.readline()
                if not line:  # it exited
                    self.process.wait()
                    return False
                if line.strip() == "ready":
                    self._drain = threading.Thread(target=self._drain_output, daemon=True)
                    self._drain.start()
                    return True
                self.output.append(line)
        self.stop()
        raise RuntimeError(f"{self.describe()} did not get ready in {seconds:.0f} s")

    def _drain_output(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            self.output.append(line)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def describe(self) -> str:
        return " ".join(self.process.args[1:])  # type: ignore[index]

    def rss_bytes(self) -> int:
        """The child's VmRSS (0 if unknown)."""
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; this child only."""
        end_process(self.process)
        if self._drain is not None:
            self._drain.join(5)  # it ends at the pipe's end, once the child is gone
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


@contextlib.contextmanager
def child_process(args: Sequence[str], *, wait_for_addresses: bool = False) -> Iterator[Child]:
    """Runs `python ARGS` until the block ends. With `wait_for_addresses`, a child that
    cannot listen because another process holds its addresses (a test run serving the
    same simulated engines) is started again every few seconds, for a few minutes."""
    deadline = time.monotonic() + ADDRESS_WAIT_SECONDS
    while True:
        child = Child(args)
        if child.wait_ready():
            break
        errors = child.stderr()
        child.stop()
        if wait_for_addresses and address_taken(errors) and time.monotonic() < deadline:
            print(
                f"  {child.describe()}: addresses taken by another process; "
                f"retrying in {ADDRESS_RETRY_SECONDS:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(ADDRESS_RETRY_SECONDS)
            continue
        raise RuntimeError(f"{child.describe()} failed ({child.process.returncode}):\n{errors}")
    try:
        yield child
    finally:
        child.stop()


def engines_process(scenario: str, wall_start: float) -> contextlib.AbstractContextManager[Child]:
    """The scenario's simulated engines served by `python -m simulator.engines`
    in a process of their own, as engines are on a real node; their node's t = 0 is
    `wall_start` (unix seconds) and their clock is real, so a `SimulatedNode` built with
    the same `wall_start` and no clock agrees with them."""
    args = ["-m", "simulator.engines", "--scenario", scenario,
            "--wall-start", repr(wall_start)]  # fmt: skip
    return child_process(args, wait_for_addresses=True)
