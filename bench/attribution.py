"""Collection cycle cost with pod attribution on, against the core alone, on dense-h100.

Two simulated dense-h100 nodes, each with its own manual clock moving 10 s per
cycle: one `Collection` reads NVML only (the core), the other also reads the kubelet and
/proc and joins, as `serve` builds it (`build_collection`): the real `PodResourcesClient`
over gRPC to a `FakeKubelet` on a unix socket, the real `ProcessPods` over a written
/proc, the default tenant rules, and the collection's `WasteLedger` (engine scraping,
a separate source, is switched off). They alternate plain, attributed,
attributed, plain (ABBA) for `ROUNDS` rounds after warm-up; CPU is
`time.process_time`, so the sources' worker threads (and the fake kubelet's server threads,
which run in this process too) count.

Then the added cost is split into its parts, each timed alone on one reading: the
kubelet round trip (`PodResourcesClient.read`), the /proc lookup, the pure join
(`attribute` + `WasteLedger.update`) and the larger family build; and a scrape of
the attributed snapshot is rendered against the floor to show that it does no
attribution work.
Run: `python -m bench.attribution`.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from bench._common import (
    CYCLE_SECONDS,
    FakeClock,
    Sim,
    device_count,
    make_sim,
    median,
    percentile,
    quiet_logs,
)
from bench.render import floor_registry
from exporter.accounting.waste import WasteLedger
from exporter.cli import build_collection, build_registry
from exporter.exposition.families import SnapshotCollector, build_families
from exporter.join.attribution import attribute, gpu_pids
from exporter.model import NodeSnapshot
from exporter.node import NodeInputs
from exporter.settings import load_settings
from exporter.sources.kubernetes.source import ClusterSource
from exporter.sources.podresources.client import PodResourcesClient
from exporter.sources.processes import ProcessPods
from simulator.kubelet import FakeKubelet
from simulator.node import SimulatedNode
from simulator.nvml import SimulatedNvml
from simulator.proc import write_proc_root
from simulator.scenario import load_scenario

SCENARIO = "dense-h100"
WARMUP = 5
ROUNDS = 150  # each round: plain, attributed, attributed, plain
PART_REPEATS = 300  # timed calls of each part on its own
RENDER_ROUNDS = 100


@dataclass
class Attributed:
    """The attributed node: its simulation, its fake kubelet and its /proc."""

    sim: Sim
    node: SimulatedNode
    kubelet: FakeKubelet
    proc_root: str


def attributed_sim(scratch: Path) -> Attributed:
    """A dense-h100 node whose `Collection` runs attribution as `serve` builds it with
    the default settings (`build_collection`), but no engine scraping. The collection's
    clock is the node's manual one, so the ledger sees 10 s a cycle."""
    settings = load_settings({"engines_scrape": "false"}, {})
    clock = FakeClock()
    node = SimulatedNode(load_scenario(SCENARIO), clock=clock)
    nvml = SimulatedNvml(node)
    proc = scratch / "proc"
    write_proc_root(node, proc)
    kubelet = FakeKubelet(str(scratch / "kubelet.sock"), lambda: node.kubelet_devices(clock()))
    kubelet.start()
    inputs = NodeInputs(node.scenario.node, nvml, kubelet.socket_path, str(proc),
                        ClusterSource(node.cluster_view), ())  # fmt: skip
    snapshots = SnapshotCollector()
    collection = build_collection(settings, inputs, snapshots.update, monotonic=clock)
    sim = Sim(clock, nvml, snapshots, collection)
    return Attributed(sim, node, kubelet, str(proc))


@dataclass
class AttributionBenchResult:
    rounds: int
    devices: int
    holdings: int
    tenants: int
    plain_cpu_ms: float  # median CPU per cycle
    with_cpu_ms: float
    paired_ratio: float  # median of per-round with / plain
    added_ms: float  # median of per-round (with - plain) per cycle
    plain_wall_p50_ms: float
    with_wall_p50_ms: float
    kubelet_cpu_ms: float  # PodResourcesClient.read, client and in-process server
    kubelet_wall_ms: float
    fake_answer_ms: float  # of it, the fake kubelet building its two answers (server side)
    proc_ms: float  # ProcessPods.pod_uids over the GPU PIDs
    attribute_ms: float  # the pure join
    ledger_ms: float  # WasteLedger.update
    update_plain_ms: float  # SnapshotCollector.update (build_families) on the core snapshot
    update_with_ms: float  # and on the attributed one
    render_plain_ms: float  # generate_latest over build_registry, core snapshot
    render_with_ms: float  # the same, attributed snapshot
    render_floor_ms: float  # prebuilt families of the attributed snapshot
    render_ratio: float  # attributed: ours / floor, paired median
    render_kubelet_calls: int  # kubelet rpcs during all the renders: 0 when scrapes only serve
    samples_plain: int  # gpuwork_* lines served
    samples_with: int
    collect_ms: float  # kubelet, /proc and the join, called in a row

    @property
    def join_ms(self) -> float:
        return self.attribute_ms + self.ledger_ms

    @property
    def parts_ms(self) -> float:
        """Everything timed on its own; the rest of `added_ms` is threads and hops."""
        return (
            self.kubelet_cpu_ms
            + self.proc_ms
            + self.join_ms
            + (self.update_with_ms - self.update_plain_ms)
        )


async def _cycle(sim: Sim) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await sim.cycle()
    return time.process_time() - cpu, time.perf_counter() - wall


async def _cycles(plain: Sim, attributed: Sim) -> tuple[list[tuple[float, float]], ...]:
    for _ in range(WARMUP):
        await plain.cycle()
        await attributed.cycle()
    a: list[tuple[float, float]] = []
    b: list[tuple[float, float]] = []
    for _ in range(ROUNDS):
        a.append(await _cycle(plain))
        b.append(await _cycle(attributed))
        b.append(await _cycle(attributed))
        a.append(await _cycle(plain))
    return a, b


@dataclass
class PartTime:
    cpu: float  # median seconds of one call
    wall: float


def _time_parts(parts: dict[str, Callable[[], object]]) -> dict[str, PartTime]:
    """Each part called once per round, round-robin, so drift hits them all alike."""
    for fn in parts.values():
        for _ in range(5):
            fn()
    cpu: dict[str, list[float]] = {name: [] for name in parts}
    wall: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(PART_REPEATS):
        for name, fn in parts.items():
            started, clock = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - clock)
            cpu[name].append(time.process_time() - started)
    return {name: PartTime(median(cpu[name]), median(wall[name])) for name in parts}


def _gpuwork_samples(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line.startswith(b"gpuwork_"))


def _render_times(
    core: CollectorRegistry, ours: CollectorRegistry, floor: CollectorRegistry
) -> tuple[float, float, float, float]:
    """Medians of core, ours and floor renders, and ours / floor paired (ABBA)."""
    times: dict[str, list[float]] = {"core": [], "ours": [], "floor": []}
    ratios = []

    def timed(name: str, registry: CollectorRegistry) -> float:
        started = time.perf_counter()
        generate_latest(registry)
        spent = time.perf_counter() - started
        times[name].append(spent)
        return spent

    for _ in range(RENDER_ROUNDS):
        mine = timed("ours", ours)
        base = timed("floor", floor) + timed("floor", floor)
        mine += timed("ours", ours)
        timed("core", core)
        ratios.append(mine / base)
    return (median(times["core"]), median(times["ours"]), median(times["floor"]), median(ratios))


async def _run(scratch: Path) -> AttributionBenchResult:
    plain = make_sim(SCENARIO)
    node = attributed_sim(scratch)
    try:
        try:
            a, b = await _cycles(plain, node.sim)
            core = await plain.cycle()
            snapshot = await node.sim.cycle()
            with PodResourcesClient(node.kubelet.socket_path, timeout=5.0) as client:
                parts = _time_parts(_parts(node, client, core, snapshot))
        finally:
            await plain.collection.close()
            await node.sim.collection.close()  # closes its kubelet client too
        return _result(plain, node, core, snapshot, a, b, parts)
    finally:
        node.kubelet.stop()


def _parts(
    node: Attributed, client: PodResourcesClient, core: NodeSnapshot, snapshot: NodeSnapshot
) -> dict[str, Callable[[], object]]:
    """The added work of a cycle, piece by piece, on the last reading; `client` is a
    second kubelet client like the collection's, its channel kept open across reads."""
    reading = snapshot.nvml
    if reading is None or snapshot.attribution is None or snapshot.ledger is None:
        raise AssertionError("the attributed node published no attribution")
    cluster = node.node.cluster_view()
    rules = load_settings({}, {}).tenant_rule_list
    processes = ProcessPods(node.proc_root)
    devices = client.read()
    pids = gpu_pids(reading)
    pid_pods = processes.pod_uids(pids)
    joined = attribute(reading, devices, cluster, rules, pid_pods)
    ledger = WasteLedger(window=60.0, busy_threshold=0.05, max_step=3 * CYCLE_SECONDS)
    now = [0.0]

    def update() -> None:
        now[0] += CYCLE_SECONDS
        ledger.update(reading, joined, now[0])

    def collect() -> None:  # what the loop's kubelet and /proc reads and the join do
        attribute(reading, client.read(), cluster, rules, processes.pod_uids(gpu_pids(reading)))

    def answers() -> None:
        node.kubelet.list_response()
        node.kubelet.allocatable_response()

    return {
        "kubelet": client.read,
        "answers": answers,
        "proc": lambda: processes.pod_uids(pids),
        "attribute": lambda: attribute(reading, devices, cluster, rules, pid_pods),
        "ledger": update,
        "collect": collect,
        "families_core": lambda: build_families(core),
        "families_with": lambda: build_families(snapshot),
    }


def _result(
    plain: Sim,
    node: Attributed,
    core: NodeSnapshot,
    snapshot: NodeSnapshot,
    a: list[tuple[float, float]],
    b: list[tuple[float, float]],
    parts: dict[str, PartTime],
) -> AttributionBenchResult:
    assert snapshot.attribution is not None
    if device_count(core) != device_count(snapshot):
        raise AssertionError("the two nodes read different devices")
    pairs = [
        ((a[i][0] + a[i + 1][0]), (b[i][0] + b[i + 1][0])) for i in range(0, len(a), 2)
    ]  # one round: (plain, plain), (attributed, attributed)

    # a scrape: the registry serve builds over each node's SnapshotCollector
    ours, core_registry = build_registry(node.sim.snapshots), build_registry(plain.snapshots)
    calls_before = sum(node.kubelet.calls.values())
    render_core, render_ours, render_floor, render_ratio = _render_times(
        core_registry, ours, floor_registry(snapshot)
    )
    render_calls = sum(node.kubelet.calls.values()) - calls_before
    if node.sim.snapshots.collect() is not node.sim.snapshots.collect():
        raise AssertionError("SnapshotCollector.collect builds something per scrape")

    def ms(name: str) -> float:
        return parts[name].cpu * 1e3

    return AttributionBenchResult(
        rounds=ROUNDS,
        devices=device_count(snapshot),
        holdings=len(snapshot.attribution.holdings),
        tenants=len({h.tenant for h in snapshot.attribution.holdings}),
        plain_cpu_ms=median([cpu for cpu, _ in a]) * 1e3,
        with_cpu_ms=median([cpu for cpu, _ in b]) * 1e3,
        paired_ratio=median([w / p for p, w in pairs]),
        added_ms=median([(w - p) / 2 for p, w in pairs]) * 1e3,
        plain_wall_p50_ms=percentile([wall for _, wall in a], 50) * 1e3,
        with_wall_p50_ms=percentile([wall for _, wall in b], 50) * 1e3,
        kubelet_cpu_ms=ms("kubelet"),
        kubelet_wall_ms=parts["kubelet"].wall * 1e3,
        fake_answer_ms=ms("answers"),
        proc_ms=ms("proc"),
        attribute_ms=ms("attribute"),
        ledger_ms=ms("ledger"),
        collect_ms=ms("collect"),
        update_plain_ms=ms("families_core"),
        update_with_ms=ms("families_with"),
        render_plain_ms=render_core * 1e3,
        render_with_ms=render_ours * 1e3,
        render_floor_ms=render_floor * 1e3,
        render_ratio=render_ratio,
        render_kubelet_calls=render_calls,
        samples_plain=_gpuwork_samples(generate_latest(core_registry)),
        samples_with=_gpuwork_samples(generate_latest(ours)),
    )


def run() -> AttributionBenchResult:
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="gpuwork-bench-") as scratch:
        return asyncio.run(_run(Path(scratch)))


def parts_table(r: AttributionBenchResult) -> str:
    rows = [
        ("kubelet round trip, `PodResourcesClient.read` (List + GetAllocatableResources)",
         r.kubelet_cpu_ms, f"wall {r.kubelet_wall_ms:.2f} ms"),
        ("of it, the fake kubelet building its answers (server side, in this process)",
         r.fake_answer_ms, "not spent by a real exporter"),
        ("/proc: `ProcessPods.pod_uids` over the GPU PIDs", r.proc_ms, ""),
        ("the join: `attribute`", r.attribute_ms, ""),
        ("the ledger: `WasteLedger.update`", r.ledger_ms, ""),
        ("larger family build: `build_families`, attributed - core",
         r.update_with_ms - r.update_plain_ms,
         f"{r.update_with_ms:.2f} ms - {r.update_plain_ms:.2f} ms"),
        ("sum of the parts (the fake's answers counted once)", r.parts_ms, ""),
        ("kubelet, /proc and the join in a row, plus the ledger and the larger family build",
         r.collect_ms + r.ledger_ms + r.update_with_ms - r.update_plain_ms,
         f"collect {r.collect_ms:.2f} ms"),
        ("measured: added CPU per cycle (paired median)", r.added_ms, ""),
    ]  # fmt: skip
    lines = ["| part | CPU ms / cycle | note |", "|---|---:|---|"]
    lines += [f"| {name} | {ms:.2f} | {note} |" for name, ms, note in rows]
    return "\n".join(lines)


def summary(r: AttributionBenchResult) -> str:
    return "\n".join(
        [
            f"attribution on {SCENARIO} ({r.devices} devices, {r.holdings} pod holdings, "
            f"{r.tenants} tenants), {r.rounds} ABBA rounds",
            f"  CPU per cycle (median): core {r.plain_cpu_ms:.2f} ms, with attribution "
            f"{r.with_cpu_ms:.2f} ms; with / without {r.paired_ratio:.2f} (paired), "
            f"added {r.added_ms:.2f} ms",
            f"  wall per cycle p50: core {r.plain_wall_p50_ms:.2f} ms, with attribution "
            f"{r.with_wall_p50_ms:.2f} ms",
            f"  join alone (attribute + ledger) {r.join_ms:.3f} ms; kubelet round trip "
            f"{r.kubelet_cpu_ms:.2f} ms CPU / {r.kubelet_wall_ms:.2f} ms wall",
            f"  scrape: render core {r.render_plain_ms:.2f} ms ({r.samples_plain} samples), "
            f"attributed {r.render_with_ms:.2f} ms ({r.samples_with} samples), floor "
            f"{r.render_floor_ms:.2f} ms, ours / floor {r.render_ratio:.3f}; "
            f"kubelet calls during renders: {r.render_kubelet_calls}",
            parts_table(r),
        ]
    )


def main() -> None:
    print(summary(run()))


if __name__ == "__main__":
    main()
