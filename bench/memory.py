"""Resident memory of an exporter process over 1,000 collections on dense-h100.

A fresh child process builds the exporter as `serve` builds it (`build_collection`: every
source, both ledgers and engine scraping; the exposition and the web app) over the
simulated dense-h100 node, and runs it as the server would: every cycle a
`Collection.collect_once` (NVML read, attribution, 56 engine scrapes, snapshot, the render
of `/metrics`) and one scrape's body. The collection's own clock (`monotonic`, which the
state ledger's 60 s window runs on) is a manual one moving 10 s per cycle, as a real node's
does between collections, however fast the cycles follow each other here. RSS and Python's
allocated block count are sampled every 100 collections.

Three children, each a fresh interpreter:
- the whole exporter (`--child --engines-wall-start T`): the 56 engines serve from a
  process of their own (`python -m simulator.engines`, started by the parent),
  as on a real node; the simulated node (NVML, kubelet, engines) runs on a real clock from
  T, like theirs. The fake kubelet (a small gRPC server) and the written /proc stay in the
  child.
- as `gpuwork-exporter --simulate dense-h100` builds it (`--child --in-process`):
  the engines' HTTP servers in the same process, the node on the manual clock.
- without engine scraping (`--child --no-engines`): the first, no engines anywhere.
Run: `python -m bench.memory` (the children are `python -m bench.memory --child ...`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Only the standard library at the top: the child measures what the exporter's imports add.

COLLECTIONS = 1000
EVERY = 100
SCENARIO = "dense-h100"
STARTED_AGO = 3600.0  # the node's t = 0 an hour before the run: the engines have counted
TARGET_MB = 80.0  # the whole exporter: NVML, attribution and engine scraping
CORE_TARGET_MB = 60.0  # the earlier target, set for the NVML core alone
SEPARATE, IN_PROCESS, NO_ENGINES = "separate", "in-process", "no-engines"
CHILD_TIMEOUT_SECONDS = 900
GROWTH_LIMIT_MB = 1.0  # 200 -> 1,000: allocator noise, not a leak
MB = 1024 * 1024
_LIBRARIES = "aiohttp, prometheus_client, pydantic, structlog"


@dataclass
class Sample:
    collections: int
    rss_bytes: int
    blocks: int  # sys.getallocatedblocks(): Python objects alive
    gpm_samples: int  # GPM samples allocated in the simulated NVML and not freed


@dataclass
class MemoryResult:
    baseline_rss_bytes: int  # after imports, before the node and the loop exist
    samples: list[Sample]
    imports: list[tuple[str, int]]  # (what was imported, VmRSS after it) in order
    sources_rss_bytes: int  # once the simulated node's fake kubelet serves, before collecting
    mode: str = SEPARATE
    seconds: float = 0.0  # the collections and renders, wall
    engines_up: int = 0  # engines read in the last collection
    engines_rss_bytes: int = 0  # the engines' own process (SEPARATE): not the exporter's
    in_process: MemoryResult | None = None  # as `serve --simulate` builds it
    without_engines: MemoryResult | None = None  # the same with engine scraping off

    def at(self, collections: int) -> Sample:
        return next(s for s in self.samples if s.collections == collections)

    @property
    def final_mb(self) -> float:
        return self.at(COLLECTIONS).rss_bytes / MB

    @property
    def growth_mb(self) -> float:
        return (self.at(COLLECTIONS).rss_bytes - self.at(200).rss_bytes) / MB

    @property
    def block_growth(self) -> int:
        return self.at(COLLECTIONS).blocks - self.at(200).blocks

    @property
    def grpc_mb(self) -> float:
        """RSS the grpc and protobuf imports added (after the other libraries)."""
        rss = dict(self.imports)
        return (rss["grpc, protobuf (the kubelet client)"] - rss[_LIBRARIES]) / MB

    @property
    def ok(self) -> bool:
        return self.final_mb <= TARGET_MB and self.growth_mb <= GROWTH_LIMIT_MB


def _vmrss() -> int:
    """VmRSS of this process in bytes, without importing anything (0 off Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _imports() -> list[tuple[str, int]]:
    """Imports what the exporter imports, in steps, with VmRSS after each."""
    steps = [("the interpreter", _vmrss())]
    import aiohttp  # noqa: F401 -- asyncio with ssl comes with it
    import prometheus_client  # noqa: F401
    import pydantic  # noqa: F401
    import structlog  # noqa: F401

    steps.append((_LIBRARIES, _vmrss()))
    import grpc  # noqa: F401
    from google import protobuf  # noqa: F401

    from exporter.sources.podresources import api_pb2_grpc  # noqa: F401

    steps.append(("grpc, protobuf (the kubelet client)", _vmrss()))
    import bench._common  # noqa: F401
    import exporter.cli  # noqa: F401

    steps.append(("the exporter and the simulator", _vmrss()))
    return steps


@contextlib.asynccontextmanager
async def _node_sources(node: Any, *, engines_inside: bool) -> AsyncIterator[Any]:
    """A simulated node's sources: a fake kubelet on a temporary socket and a temporary
    /proc, in this process, the scenario's metadata, and its engines in this process too
    when `engines_inside` (as `serve --simulate` has them)."""
    from exporter.node import NodeInputs
    from exporter.sources.kubernetes.source import ClusterSource
    from simulator.engines import SimulatedEngines
    from simulator.kubelet import FakeKubelet
    from simulator.nvml import SimulatedNvml
    from simulator.proc import write_proc_root

    with tempfile.TemporaryDirectory(prefix="gpuwork-bench-") as scratch:
        proc = Path(scratch, "proc")
        write_proc_root(node, proc)
        socket_path = str(Path(scratch, "kubelet.sock"))
        kubelet = FakeKubelet(socket_path, lambda: node.kubelet_devices(node.clock()))
        kubelet.start()
        engines = SimulatedEngines(node) if engines_inside else None
        try:
            if engines is not None:
                await engines.start()
            cluster = ClusterSource(node.cluster_view)
            yield NodeInputs(node.scenario.node, SimulatedNvml(node), socket_path, str(proc),
                             cluster, node.scenario.gpu_prices)  # fmt: skip
        finally:
            if engines is not None:
                await engines.stop()
            kubelet.stop()


async def _child(mode: str, wall_start: float | None = None) -> MemoryResult:
    """Builds the exporter as `_serve` makes it (`build_collection`: every source, both
    ledgers, prices), the exposition and the web app on a loopback port, over the
    simulated node's sources: its fake kubelet and /proc, and its engines in another
    process (SEPARATE, on a real clock from `wall_start`), in this one as
    `serve --simulate` has them (IN_PROCESS, on a manual clock), or none (NO_ENGINES)."""
    imports = _imports()
    from aiohttp import web

    from bench._common import FakeClock, quiet_logs, rss_bytes
    from exporter.cli import build_collection, build_exposition, freeze_startup_objects
    from exporter.exposition.server import make_app
    from exporter.settings import load_settings
    from simulator.node import SimulatedNode
    from simulator.scenario import load_scenario

    quiet_logs()
    gc.collect()
    baseline = rss_bytes()
    scrape = "false" if mode == NO_ENGINES else "true"
    settings = load_settings({"simulate": SCENARIO, "engines_scrape": scrape}, {})
    scenario = load_scenario(SCENARIO)
    clock = FakeClock()  # the collection's: the state ledger's window sees 10 s a cycle
    if mode == IN_PROCESS:
        node = SimulatedNode(scenario, clock=clock)
    else:
        node = SimulatedNode(scenario, wall_start=wall_start)  # a real clock, as the engines'
    async with _node_sources(node, engines_inside=mode == IN_PROCESS) as inputs:
        gc.collect()
        sources_rss = rss_bytes()
        exposition = build_exposition()
        # 10 s a cycle, as on a real node
        collection = build_collection(settings, inputs, exposition.publish, monotonic=clock)
        freeze_startup_objects()  # as serve does
        runner = web.AppRunner(make_app(exposition, lambda: collection.ready), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        samples = []
        started = time.perf_counter()
        for done in range(COLLECTIONS + 1):
            if done % EVERY == 0:
                samples.append(
                    Sample(done, rss_bytes(), sys.getallocatedblocks(),
                           inputs.nvml.gpm_samples_outstanding)
                )  # fmt: skip
            if done < COLLECTIONS:
                snapshot = await collection.collect_once()  # renders what scrapes asked for
                clock.advance()
                await exposition.body("", "")  # one scrape a collection
        seconds = time.perf_counter() - started
        if snapshot.attribution is None:
            raise RuntimeError("the collection published no attribution")
        up = sum(1 for w in snapshot.work if w.up)
        pods = {(a.namespace, a.pod) for a in snapshot.attribution.allocations}
        if mode != NO_ENGINES and up != len(pods):
            raise RuntimeError(f"{up} engines read in the last collection")
        await collection.close()
        await runner.cleanup()
    return MemoryResult(baseline, samples, imports, sources_rss, mode, seconds, up)


def _run_child(*args: str) -> MemoryResult:
    """Runs the measurement in a fresh interpreter and reads its JSON answer; waits while
    another process (a test run) holds the simulated engines' addresses."""
    from bench._common import ADDRESS_RETRY_SECONDS, ADDRESS_WAIT_SECONDS, address_taken

    root = Path(__file__).resolve().parent.parent
    deadline = time.monotonic() + ADDRESS_WAIT_SECONDS
    while True:
        child = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--child", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_SECONDS,
            check=False,
        )
        if child.returncode == 0:
            break
        if not address_taken(child.stderr) or time.monotonic() > deadline:
            raise RuntimeError(f"memory child failed ({child.returncode}):\n{child.stderr}")
        print(f"  engine addresses taken by another process; retrying in "
              f"{ADDRESS_RETRY_SECONDS:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
        time.sleep(ADDRESS_RETRY_SECONDS)
    data = json.loads(child.stdout)
    return MemoryResult(
        data["baseline_rss_bytes"],
        [Sample(**s) for s in data["samples"]],
        [(what, rss) for what, rss in data["imports"]],
        data["sources_rss_bytes"],
        data["mode"],
        data["seconds"],
        data["engines_up"],
    )


def run() -> MemoryResult:
    """The whole exporter with the engines in a process of their own; then as
    `serve --simulate` builds it (engines inside), and without engine scraping."""
    from bench._common import engines_process

    wall_start = time.time() - STARTED_AGO
    with engines_process(SCENARIO, wall_start) as engines:
        result = _run_child("--engines-wall-start", repr(wall_start))
        result.engines_rss_bytes = engines.rss_bytes()
    result.in_process = _run_child("--in-process")
    result.without_engines = _run_child("--no-engines")
    return result


def samples_table(r: MemoryResult) -> str:
    lines = [
        "| collections | RSS MB | Python blocks | GPM samples held |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {s.collections} | {s.rss_bytes / MB:.1f} | {s.blocks} | {s.gpm_samples} |"
        for s in r.samples
    ]
    return "\n".join(lines)


def imports_table(r: MemoryResult) -> str:
    lines = ["| after importing | RSS MB | added MB |", "|---|---:|---:|"]
    previous = 0
    for what, rss in r.imports:
        lines.append(f"| {what} | {rss / MB:.1f} | {(rss - previous) / MB:+.1f} |")
        previous = rss
    return "\n".join(lines)


def summary(r: MemoryResult) -> str:
    verdict = "ok" if r.ok else "OVER TARGET"
    lines = [
        f"memory, {SCENARIO}, {COLLECTIONS} collections + renders in a fresh process, the "
        f"{r.engines_up} engines in a process of their own "
        f"({r.engines_rss_bytes / MB:.0f} MB RSS there), the fake kubelet inside",
        f"  RSS after imports {r.baseline_rss_bytes / MB:.1f} MB; with the simulated "
        f"sources serving {r.sources_rss_bytes / MB:.1f} MB; after {COLLECTIONS} "
        f"collections {r.final_mb:.1f} MB (target <= {TARGET_MB:.0f} MB); "
        f"{r.seconds:.0f} s of collections",
        f"  growth 200 -> {COLLECTIONS}: {r.growth_mb:+.2f} MB RSS, {r.block_growth:+d} "
        f"Python blocks (limit {GROWTH_LIMIT_MB:+.1f} MB): {verdict}",
    ]
    for name, other in (("as serve --simulate builds it (engines inside)", r.in_process),
                        ("without engine scraping", r.without_engines)):  # fmt: skip
        if other is not None:
            lines.append(
                f"  {name}: {other.final_mb:.1f} MB after {COLLECTIONS} collections, "
                f"growth {other.growth_mb:+.2f} MB, {other.seconds:.0f} s"
            )
    return "\n".join([*lines, samples_table(r), imports_table(r)])


def main() -> None:
    args = sys.argv[1:]
    if "--child" in args:
        if "--engines-wall-start" in args:
            mode = SEPARATE
            wall_start: float | None = float(args[args.index("--engines-wall-start") + 1])
        elif "--in-process" in args or "--no-engines" in args:
            mode = IN_PROCESS if "--in-process" in args else NO_ENGINES
            wall_start = None
        else:
            raise SystemExit("--child needs --engines-wall-start T, --in-process or --no-engines")
        result = asyncio.run(_child(mode, wall_start))
        print(json.dumps({"baseline_rss_bytes": result.baseline_rss_bytes,
                          "samples": [vars(s) for s in result.samples],
                          "imports": result.imports,
                          "sources_rss_bytes": result.sources_rss_bytes,
                          "mode": result.mode,
                          "seconds": result.seconds,
                          "engines_up": result.engines_up}))  # fmt: skip
        return
    print(summary(run()))


if __name__ == "__main__":
    main()
