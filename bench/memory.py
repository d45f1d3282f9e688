"""Resident memory of an exporter process over 1,000 collections on dense-h100.

A fresh child process runs the exporter's core as the server would: every cycle
a `Collection.collect_once` (NVML read, snapshot, build_families) and a render
of the `/metrics` registry, the simulated clock moving 10 s per cycle. RSS and
Python's allocated block count are sampled every 100 collections.
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
    def ok(self) -> bool:
        return self.final_mb <= TARGET_MB and self.growth_mb <= GROWTH_LIMIT_MB


async def _child() -> MemoryResult:
    from prometheus_client import generate_latest

    from bench._common import make_sim, quiet_logs, rss_bytes
    from exporter.cli import build_registry

    quiet_logs()
    gc.collect()
    baseline = rss_bytes()
    sim = make_sim("dense-h100")
    registry = build_registry(sim.snapshots)
    samples = []
    for done in range(COLLECTIONS + 1):
        if done % EVERY == 0:
            samples.append(
                Sample(
                    done, rss_bytes(), sys.getallocatedblocks(), sim.nvml.gpm_samples_outstanding
                )
            )
        if done < COLLECTIONS:
            await sim.cycle()
            generate_latest(registry)
    await sim.collection.close()
    return MemoryResult(baseline, samples)


def run() -> MemoryResult:
    """Runs the measurement in a fresh interpreter and reads its JSON answer."""
    root = Path(__file__).resolve().parent.parent
    child = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"memory child failed ({child.returncode}):\n{child.stderr}")
    data = json.loads(child.stdout)
    return MemoryResult(data["baseline_rss_bytes"], [Sample(**s) for s in data["samples"]])


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


def summary(r: MemoryResult) -> str:
    verdict = "ok" if r.ok else "OVER TARGET"
    return "\n".join(
        [
            f"memory, dense-h100, {COLLECTIONS} collections + renders in a fresh process",
            f"  RSS after imports {r.baseline_rss_bytes / MB:.1f} MB; after {COLLECTIONS} "
            f"collections {r.final_mb:.1f} MB (target <= {TARGET_MB:.0f} MB)",
            f"  growth 200 -> {COLLECTIONS}: {r.growth_mb:+.2f} MB RSS, {r.block_growth:+d} "
            f"Python blocks (limit {GROWTH_LIMIT_MB:+.1f} MB): {verdict}",
            samples_table(r),
        ]
    )


def main() -> None:
    if "--child" in sys.argv[1:]:
        result = asyncio.run(_child())
        print(json.dumps({"baseline_rss_bytes": result.baseline_rss_bytes,
                          "samples": [vars(s) for s in result.samples]}))  # fmt: skip
        return
    print(summary(run()))


if __name__ == "__main__":
    main()
