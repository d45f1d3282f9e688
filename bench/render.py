"""`/metrics` render time against the floor of prometheus_client itself.

Floor: `generate_latest` over a registry whose collector hands back families
built ahead of time, plus the process, platform and gc collectors the exporter
registers. Ours: `generate_latest` over `build_registry(SnapshotCollector)`,
the registry a scrape serializes. The two run in alternating ABBA order.
Run: `python -m bench.render`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bench._common import device_count, make_sim, median, percentile, quiet_logs
from exporter.cli import build_registry
from exporter.exposition.bodies import Exposition
from exporter.exposition.families import SnapshotCollector, build_families
from exporter.exposition.server import make_app
from exporter.model import NodeSnapshot

ROUNDS = 200  # each round renders A, B, B, A
BATCH = 3  # renders per timed sample
HTTP_GETS = 200
TARGET_RATIO = 1.5
# What Prometheus 3 sends by default: it negotiates OpenMetrics first.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


class _Prebuilt(Collector):
    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def floor_registry(snapshot: NodeSnapshot) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Prebuilt(build_families(snapshot)))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


@dataclass
class RenderResult:
    devices: int
    ours_ms: float
    floor_ms: float
    ratio_of_medians: float
    paired_ratio: float  # median of per-round ours/floor
    update_ms: float  # SnapshotCollector.update: build_families, off the scrape path
    body_bytes: int
    http_p50_ms: float  # text format (Accept: */*)
    http_p90_ms: float
    http_direct_ms: float  # direct render timed in the same rounds as the GETs
    http_body_bytes: int
    http_gets: int
    http_om_p50_ms: float  # OpenMetrics, as Prometheus negotiates it
    http_om_body_bytes: int
    http_encoding: str

    @property
    def ok(self) -> bool:
        return self.paired_ratio <= TARGET_RATIO


def _time_batch(render: Callable[[], bytes]) -> float:
    started = time.perf_counter()
    for _ in range(BATCH):
        render()
    return (time.perf_counter() - started) / BATCH


def _gpuwork_lines(body: bytes) -> list[bytes]:
    return [line for line in body.splitlines() if b"gpuwork_" in line]


@dataclass
class _HttpTimes:
    text: list[float]
    openmetrics: list[float]
    direct: list[float]
    text_bytes: int = 0
    openmetrics_bytes: int = 0
    encoding: str = ""  # Content-Encoding answered to the client's Accept-Encoding: gzip


async def _get(session: aiohttp.ClientSession, url: str, accept: str) -> tuple[float, bytes, str]:
    started = time.perf_counter()
    async with session.get(url, headers={"Accept": accept}) as response:
        body = await response.read()
        response.raise_for_status()
        encoding = response.headers.get("Content-Encoding", "")
    return time.perf_counter() - started, body, encoding


async def _http(
    snapshots: SnapshotCollector, registry: CollectorRegistry, snapshot: NodeSnapshot
) -> _HttpTimes:
    """GETs of /metrics served as `serve` serves it: bytes rendered at publication."""
    exposition = Exposition(snapshots, registry)
    await exposition.publish(snapshot)
    runner = web.AppRunner(make_app(exposition, ready=lambda: True), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    times = _HttpTimes([], [], [])
    try:
        async with aiohttp.ClientSession() as session:  # one keep-alive connection
            for i in range(HTTP_GETS + 10):
                text_s, text, times.encoding = await _get(session, url, "*/*")
                om_s, om, _ = await _get(session, url, PROMETHEUS_ACCEPT)
                direct_s = _time_batch(lambda: generate_latest(registry))
                if i >= 10:  # the first rounds open the connection and warm up
                    times.text.append(text_s)
                    times.openmetrics.append(om_s)
                    times.direct.append(direct_s)
                times.text_bytes, times.openmetrics_bytes = len(text), len(om)
    finally:
        await runner.cleanup()
    return times


async def _snapshot() -> NodeSnapshot:
    sim = make_sim("dense-h100")
    for _ in range(3):  # GPM activity needs two samples; the third is a steady cycle
        snapshot = await sim.cycle()
    await sim.collection.close()
    return snapshot


def run() -> RenderResult:
    quiet_logs()
    snapshot = asyncio.run(_snapshot())
    sim_collector = SnapshotCollector()
    started = time.perf_counter()
    for _ in range(20):
        sim_collector.update(snapshot)
    update_s = (time.perf_counter() - started) / 20

    ours = build_registry(sim_collector)  # built once, as `serve` does
    floor = floor_registry(snapshot)
    body = generate_latest(ours)
    if _gpuwork_lines(body) != _gpuwork_lines(generate_latest(floor)):
        raise AssertionError("the floor registry does not serve the same gpuwork families")

    ours_s: list[float] = []
    floor_s: list[float] = []
    paired: list[float] = []
    for _ in range(ROUNDS):
        a1 = _time_batch(lambda: generate_latest(ours))
        b1 = _time_batch(lambda: generate_latest(floor))
        b2 = _time_batch(lambda: generate_latest(floor))
        a2 = _time_batch(lambda: generate_latest(ours))
        ours_s += (a1, a2)
        floor_s += (b1, b2)
        paired.append((a1 + a2) / (b1 + b2))

    http = asyncio.run(_http(sim_collector, ours, snapshot))
    return RenderResult(
        devices=device_count(snapshot),
        ours_ms=median(ours_s) * 1e3,
        floor_ms=median(floor_s) * 1e3,
        ratio_of_medians=median(ours_s) / median(floor_s),
        paired_ratio=median(paired),
        update_ms=update_s * 1e3,
        body_bytes=len(body),
        http_p50_ms=median(http.text) * 1e3,
        http_p90_ms=percentile(http.text, 90) * 1e3,
        http_direct_ms=median(http.direct) * 1e3,
        http_body_bytes=http.text_bytes,
        http_gets=len(http.text),
        http_om_p50_ms=median(http.openmetrics) * 1e3,
        http_om_body_bytes=http.openmetrics_bytes,
        http_encoding=http.encoding or "identity",
    )


def summary(r: RenderResult) -> str:
    verdict = "ok" if r.ok else "OVER TARGET"
    return "\n".join(
        [
            f"render /metrics, dense-h100 ({r.devices} devices), {ROUNDS} ABBA rounds "
            f"x {BATCH} renders",
            f"  ours  (build_registry + SnapshotCollector): {r.ours_ms:.3f} ms median",
            f"  floor (pre-built families, same collectors): {r.floor_ms:.3f} ms median",
            f"  ours/floor: {r.paired_ratio:.3f} paired median, {r.ratio_of_medians:.3f} of "
            f"medians (target <= {TARGET_RATIO}: {verdict})",
            f"  body: {r.body_bytes} bytes; SnapshotCollector.update (same snapshot, "
            f"tight loop): {r.update_ms:.3f} ms",
            f"  HTTP GET /metrics over loopback, {r.http_gets} rounds:",
            f"    text:        p50 {r.http_p50_ms:.3f} ms, p90 {r.http_p90_ms:.3f} ms, "
            f"{r.http_body_bytes} bytes (direct render, same rounds: {r.http_direct_ms:.3f} ms)",
            f"    OpenMetrics: p50 {r.http_om_p50_ms:.3f} ms, {r.http_om_body_bytes} bytes "
            f"(Prometheus' Accept header); Content-Encoding with gzip accepted: "
            f"{r.http_encoding}",
        ]
    )


def main() -> None:
    print(summary(run()))


if __name__ == "__main__":
    main()
