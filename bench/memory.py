"""Resident memory of an exporter process over 1,000 collections on dense-h100.

A fresh child process builds what `gpuwork-exporter --simulate dense-h100` builds
(the simulated node's fake kubelet, /proc and engines, the collection with the
attributor, the ledger and engine scraping, the registry and the web app) and runs it
as the server would: every cycle a `Collection.collect_once` (NVML read, attribution,
engine scrapes, snapshot, build_families) and a render of the `/metrics` registry, the
simulated clock moving 10 s per cycle. RSS and Python's allocated block count are
sampled every 100 collections.
A second child does the same without engine scraping (`--child --no-engines`).
Run: `python -m bench.memory` (the child is `python -m bench.memory --child`).
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

COLLECTIONS = 1000
EVERY = 100
TARGET_MB = 60.0
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

    from exporter.podresources import api_pb2_grpc  # noqa: F401

    steps.append(("grpc, protobuf (the kubelet client)", _vmrss()))
    import bench._common  # noqa: F401
    import exporter.cli  # noqa: F401

    steps.append(("the exporter and the simulator", _vmrss()))
    return steps


async def _child(engines: bool = True) -> MemoryResult:
    """Builds what `gpuwork-exporter --simulate dense-h100` (`serve`) builds, on a manual
    clock: the simulated node's fake kubelet, /proc and engines (`pod_sources`), the
    collection as `_serve` makes it (attributor, ledger, engine scraping, prices), the
    registry, and the web app on a loopback port."""
    imports = _imports()
    from aiohttp import web
    from prometheus_client import generate_latest

    from bench._common import FakeClock, quiet_logs, rss_bytes
    from exporter.cli import (
        build_attributor,
        build_engines,
        build_ledger,
        build_registry,
        pod_sources,
    )
    from exporter.collection import Collection
    from exporter.config import load_settings
    from exporter.metrics import SnapshotCollector
    from exporter.nvml_reader import NvmlReader
    from exporter.server import make_app
    from exporter.simulation.fake_nvml import SimulatedNvml
    from exporter.simulation.node import SimulatedNode
    from exporter.simulation.scenario import load_scenario

    quiet_logs()
    gc.collect()
    baseline = rss_bytes()
    settings = load_settings({"simulate": "dense-h100"}, {})
    clock = FakeClock()
    scenario = load_scenario("dense-h100")
    nvml = SimulatedNvml(SimulatedNode(scenario, clock=clock))
    stop = asyncio.Event()
    async with pod_sources(settings, nvml, scenario.node, stop) as sources:
        if sources is None:
            raise RuntimeError("serve --simulate builds no pod sources")
        gc.collect()
        sources_rss = rss_bytes()
        snapshots = SnapshotCollector()
        collection = Collection(
            NvmlReader(nvml),
            node=scenario.node,
            publish=snapshots.update,
            timeout=settings.collect_timeout,
            attributor=build_attributor(settings, sources),
            ledger=build_ledger(settings),
            engines=build_engines(settings) if engines else None,
            cluster=sources.cluster,
            cluster_errors=sources.cluster_errors,
            prices=settings.gpu_prices,
            monotonic=clock,  # the ledger's clock: 10 s a cycle, as on a real node
        )
        registry = build_registry(snapshots)
        runner = web.AppRunner(make_app(registry, lambda: collection.ready), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        samples = []
        for done in range(COLLECTIONS + 1):
            if done % EVERY == 0:
                samples.append(
                    Sample(done, rss_bytes(), sys.getallocatedblocks(),
                           nvml.gpm_samples_outstanding)
                )  # fmt: skip
            if done < COLLECTIONS:
                snapshot = await collection.collect_once()
                clock.advance()
                generate_latest(registry)
        if snapshot.attribution is None:
            raise RuntimeError("the collection published no attribution")
        await collection.close()
        await runner.cleanup()
    return MemoryResult(baseline, samples, imports, sources_rss)


def _run_child(*args: str) -> MemoryResult:
    """Runs the measurement in a fresh interpreter and reads its JSON answer."""
    root = Path(__file__).resolve().parent.parent
    child = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"memory child failed ({child.returncode}):\n{child.stderr}")
    data = json.loads(child.stdout)
    return MemoryResult(
        data["baseline_rss_bytes"],
        [Sample(**s) for s in data["samples"]],
        [(what, rss) for what, rss in data["imports"]],
        data["sources_rss_bytes"],
    )


def run() -> MemoryResult:
    """The process as `serve --simulate` builds it, and again without engine scraping."""
    result = _run_child()
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
        f"memory, dense-h100, {COLLECTIONS} collections + renders in a fresh process",
        f"  RSS after imports {r.baseline_rss_bytes / MB:.1f} MB; with the simulated "
        f"sources serving {r.sources_rss_bytes / MB:.1f} MB; after {COLLECTIONS} "
        f"collections {r.final_mb:.1f} MB (target <= {TARGET_MB:.0f} MB)",
        f"  growth 200 -> {COLLECTIONS}: {r.growth_mb:+.2f} MB RSS, {r.block_growth:+d} "
        f"Python blocks (limit {GROWTH_LIMIT_MB:+.1f} MB): {verdict}",
    ]
    if r.without_engines is not None:
        lines.append(
            f"  without engine scraping: {r.without_engines.final_mb:.1f} MB after "
            f"{COLLECTIONS} collections, growth {r.without_engines.growth_mb:+.2f} MB"
        )
    return "\n".join([*lines, samples_table(r), imports_table(r)])


def main() -> None:
    if "--child" in sys.argv[1:]:
        result = asyncio.run(_child(engines="--no-engines" not in sys.argv[1:]))
        print(json.dumps({"baseline_rss_bytes": result.baseline_rss_bytes,
                          "samples": [vars(s) for s in result.samples],
                          "imports": result.imports,
                          "sources_rss_bytes": result.sources_rss_bytes}))  # fmt: skip
        return
    print(summary(run()))


if __name__ == "__main__":
    main()
