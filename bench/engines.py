"""Engine scraping on dense-h100: the whole collection cycle with 56 vLLM engines, one
engine's parse against prometheus_client's parser, and one engine that never answers.

1. cycle: the 56 engines serve from a process of their own (`python -m
   simulator.engines --scenario dense-h100 --wall-start T`), as engines do on a
   real node, so their serving CPU is not this process's; so does the fake kubelet
   (`python -m bench.engines --kubelet SOCKET --wall-start T`). This process builds what
   `serve` builds with the default settings (`build_collection`) over a simulated NVML
   whose node starts at the same T on a real clock, so NVML, the kubelet and the engines
   agree on the time; the collection's own clock (the state ledger's window) moves 10 s a
   cycle, as between a real node's collections. A cycle is one `Collection.collect_once`:
   NVML, attribution, 56 scrapes and parses, the join, both ledgers and the family build.
   CPU is `time.process_time`, every thread of this process. `EngineSource.read` (scrapes
   and parses) and the family build are timed in every cycle; the parser in a separate
   pass.
2. parse: `parse_engine` on the bodies the simulated vLLM serves (the text format the
   scraper asks for, and OpenMetrics with names intact) against prometheus_client's parsers
   consuming every family, and against single passes over the bytes.
3. hang: one engine accepts the request and never answers. Its fault knob is reachable
   only in the engines' own process, so this runs `SimulatedEngines` in this process,
   scraped by the real `EngineScraper` (2 s timeout).
Run: `python -m bench.engines` (the kubelet child: `python -m bench.engines --kubelet ...`).
`_cycles` also takes another scenario (a name or a file), as `bench/scrape.py` uses it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families

from bench._common import (
    ADDRESS_RETRY_SECONDS,
    ADDRESS_WAIT_SECONDS,
    FakeClock,
    address_taken,
    child_process,
    engines_process,
    median,
    percentile,
    quiet_logs,
)
from exporter.cli import build_collection, freeze_startup_objects
from exporter.exposition.families import SnapshotCollector
from exporter.model import NodeSnapshot
from exporter.node import NodeInputs
from exporter.settings import load_settings
from exporter.sources.engines.parser import EngineParser, parse_engine
from exporter.sources.engines.scraper import (
    ACCEPT,
    EngineScraper,
    EngineTarget,
    ScrapeResult,
    engine_target,
    targets_for,
)
from exporter.sources.engines.source import EngineSource
from exporter.sources.kubernetes.source import ClusterSource
from simulator.engines import SimulatedEngines
from simulator.kubelet import FakeKubelet
from simulator.node import ManualClock, SimulatedNode
from simulator.nvml import SimulatedNvml
from simulator.proc import write_proc_root
from simulator.scenario import load_scenario

SCENARIO = "dense-h100"
ENGINES = 56
STARTED_AGO = 3600.0  # the node's t = 0 an hour before the run: the engines have counted
WARMUP = 5
CYCLES = 200
PROFILE_CYCLES = 30  # the pass with the parser timed inside the cycle
GAP_SECONDS = 0.02  # idle between two cycles (a real node waits the 10 s interval)
CPU_TARGET_MS = 50.0
PARSE_ROUNDS = 150  # each round: every contender once, the order reversed every other round
PARSE_BATCH = 5  # calls per timed sample
HANG_TIMEOUT = 2.0  # the scraper's per-engine timeout (the default --engines.timeout)
HANG_MARGIN = 0.5  # a round with a hanging engine may end this long after the timeout
CALM_ROUNDS = 20
HANG_ROUNDS = 3
TEXT_ACCEPT = "text/plain;version=0.0.4"
# OpenMetrics with names intact: the escaped names prometheus_client writes by default
# clash with its family names in its own strict parser.
OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"


# -- 1. the collection cycle ----------------------------------------------------------------


@dataclass
class CycleSample:
    cpu: float  # seconds, the whole process
    wall: float
    engines_cpu: float  # EngineSource.read alone
    engines_wall: float  # the scrape round: all 56 scrapes, concurrently, plus the ledger
    scrape_max: float  # the slowest single scrape of the round (its own duration)
    scrape_sum: float  # the 56 scrapes' durations added up
    up: int  # engines read this cycle
    publish_cpu: float  # of `cpu`, `SnapshotCollector.update` (the family build)
    gc_cpu: float  # of `cpu`, spent in garbage collections
    full_gc: bool  # a generation-2 collection ran in the cycle
    extra_cpu: float = 0.0  # of `cpu`, `after_publish` (bench/scrape.py's pre-render)
    extra: bool = False  # `after_publish` did its work in this cycle


@dataclass
class Bodies:
    """What the first engine pod serves, fetched over HTTP from the engines' process."""

    url: str
    text: bytes  # Accept: text/plain;version=0.0.4
    openmetrics: bytes  # Accept: OPENMETRICS_ACCEPT
    scraped_type: str  # the Content-Type of the answer to the scraper's own Accept


@dataclass
class CycleResult:
    samples: list[CycleSample]
    parse_ms_per_cycle: float  # the profile pass: parse_engine CPU per cycle, median
    parse_us_per_engine: float  # median of one call, inside the cycle
    parses_per_cycle: float
    timeout_s: float
    errors: dict[str, int]  # the engine source's error counters at the end
    engines_rss_mb: float  # the engines' process, for context: not this process's

    def _ms(self, values: Sequence[float], q: float) -> float:
        return percentile(values, q) * 1e3

    @property
    def cpu_ms_median(self) -> float:
        return self._ms([s.cpu for s in self.samples], 50)

    @property
    def cpu_ms_p90(self) -> float:
        return self._ms([s.cpu for s in self.samples], 90)

    @property
    def cpu_ms_mean(self) -> float:
        return sum(s.cpu for s in self.samples) / len(self.samples) * 1e3

    @property
    def wall_ms_median(self) -> float:
        return self._ms([s.wall for s in self.samples], 50)

    @property
    def wall_ms_p90(self) -> float:
        return self._ms([s.wall for s in self.samples], 90)

    @property
    def engines_cpu_ms(self) -> float:
        return self._ms([s.engines_cpu for s in self.samples], 50)

    @property
    def rest_cpu_ms(self) -> float:
        """Median of each cycle's CPU outside `EngineSource.read`."""
        return self._ms([s.cpu - s.engines_cpu for s in self.samples], 50)

    @property
    def publish_cpu_ms(self) -> float:
        return self._ms([s.publish_cpu for s in self.samples], 50)

    @property
    def engines_share(self) -> float:
        return median([s.engines_cpu / s.cpu for s in self.samples if s.cpu > 0])

    @property
    def round_ms_median(self) -> float:
        return self._ms([s.engines_wall for s in self.samples], 50)

    @property
    def round_ms_p90(self) -> float:
        return self._ms([s.engines_wall for s in self.samples], 90)

    @property
    def round_ms_max(self) -> float:
        return max(s.engines_wall for s in self.samples) * 1e3

    @property
    def scrape_max_ms(self) -> float:
        return self._ms([s.scrape_max for s in self.samples], 50)

    @property
    def scrape_sum_ms(self) -> float:
        return self._ms([s.scrape_sum for s in self.samples], 50)

    @property
    def full_gc_cycles(self) -> int:
        return sum(1 for s in self.samples if s.full_gc)

    @property
    def cpu_ms_no_full_gc(self) -> float:
        return self._ms([s.cpu for s in self.samples if not s.full_gc], 50)

    @property
    def cpu_ms_full_gc(self) -> float:
        return self._ms([s.cpu for s in self.samples if s.full_gc], 50)

    @property
    def full_gc_ms(self) -> float:
        """Median CPU of the garbage collections in a cycle with a full one."""
        return self._ms([s.gc_cpu for s in self.samples if s.full_gc], 50)

    @property
    def min_up(self) -> int:
        return min(s.up for s in self.samples)

    @property
    def cpu_ok(self) -> bool:
        return self.cpu_ms_median <= CPU_TARGET_MS and self.cpu_ms_mean <= CPU_TARGET_MS

    @property
    def round_ok(self) -> bool:
        return self.round_ms_max <= self.timeout_s * 1e3


class _Probe:
    """Times `EngineSource.read` and keeps each round's scrape results, by wrapping the
    two methods on the instances `build_collection` built (nothing else changes)."""

    def __init__(self, source: EngineSource) -> None:
        self.cpu = self.wall = 0.0
        self.results: list[ScrapeResult] = []
        read = source.read
        scraper = source._scraper
        scrape = scraper.scrape

        async def timed_read(*args: Any) -> Any:
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return await read(*args)
            finally:
                self.cpu = time.process_time() - cpu
                self.wall = time.perf_counter() - wall

        async def recorded_scrape(*args: Any) -> list[ScrapeResult]:
            self.results = await scrape(*args)
            return self.results

        source.read = timed_read  # type: ignore[method-assign]
        scraper.scrape = recorded_scrape  # type: ignore[method-assign]


class _GcMeter:
    """CPU spent in garbage collections, and the full (generation 2) ones, while on."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
            return
        self.cpu += time.process_time() - self._started
        self.full += info["generation"] == 2

    def __enter__(self) -> _GcMeter:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self)


@contextlib.contextmanager
def _timed_parser() -> Iterator[list[float]]:
    """`EngineParser.parse` as the scraper calls it, timed (CPU of the calling thread)."""
    times: list[float] = []
    original = EngineParser.parse

    def timed(self: EngineParser, body: bytes, **options: Any) -> Any:
        started = time.thread_time()
        try:
            return original(self, body, **options)
        finally:
            times.append(time.thread_time() - started)

    EngineParser.parse = timed  # type: ignore[method-assign]
    try:
        yield times
    finally:
        EngineParser.parse = original  # type: ignore[method-assign]


def _serve_kubelet(socket_path: str, wall_start: float, scenario: str = SCENARIO) -> None:
    """The child: the scenario's fake kubelet on `socket_path` until SIGTERM."""
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # gRPC's threads inherit the mask
    node = SimulatedNode(load_scenario(scenario), wall_start=wall_start)
    kubelet = FakeKubelet(socket_path, lambda: node.kubelet_devices(node.clock()))
    kubelet.start()
    print("ready", flush=True)
    signal.sigwait(signals)
    kubelet.stop()


async def _fetch_bodies(url: str) -> Bodies:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Accept": TEXT_ACCEPT}) as response:
            text = await response.read()
        async with session.get(url, headers={"Accept": OPENMETRICS_ACCEPT}) as response:
            openmetrics = await response.read()
        async with session.get(url, headers={"Accept": ACCEPT}) as response:
            kind = response.headers.get("Content-Type", "")
    return Bodies(url, text, openmetrics, kind)


async def _cycles(
    scratch: Path,
    scenario: str = SCENARIO,
    *,
    cycles: int = CYCLES,
    profile_cycles: int = PROFILE_CYCLES,
    after_publish: Callable[[SnapshotCollector], bool] | None = None,
) -> tuple[CycleResult, Bodies]:
    """The cycle benchmark on `scenario` (a built-in name or a file path). `after_publish`,
    when given, runs right after each cycle's family build and says whether it did its
    work; its CPU is kept apart in each sample (`extra_cpu`, `extra`)."""
    wall_start = time.time() - STARTED_AGO
    settings = load_settings({"simulate": scenario}, {})
    node = SimulatedNode(load_scenario(scenario), wall_start=wall_start)  # a real clock
    nvml = SimulatedNvml(node)
    proc = scratch / "proc"
    write_proc_root(node, proc)
    socket_path = str(scratch / "kubelet.sock")
    kubelet_args = ["-m", "bench.engines", "--kubelet", socket_path, "--wall-start",
                    repr(wall_start), "--scenario", scenario]  # fmt: skip
    with (
        child_process(kubelet_args),
        engines_process(scenario, wall_start) as served,
    ):
        inputs = NodeInputs(node.scenario.node, nvml, socket_path, str(proc),
                            ClusterSource(node.cluster_view), settings.gpu_prices)  # fmt: skip
        ledger_clock = FakeClock()  # the state ledger's window sees 10 s a cycle
        snapshots = SnapshotCollector()
        published = [0.0]
        extra: list[Any] = [0.0, False]  # after_publish: CPU, whether it did its work

        def publish(snapshot: NodeSnapshot) -> None:
            started = time.process_time()
            snapshots.update(snapshot)
            published[0] = time.process_time() - started
            if after_publish is not None:
                started = time.process_time()
                ran = after_publish(snapshots)
                extra[:] = [time.process_time() - started, ran]

        collection = build_collection(settings, inputs, publish, monotonic=ledger_clock)
        engines = collection.sources.engines
        if not isinstance(engines, EngineSource):
            raise RuntimeError("engine scraping is off by default")
        probe = _Probe(engines)
        freeze_startup_objects()  # as serve does
        for _ in range(WARMUP):
            await collection.collect_once()
            ledger_clock.advance()
        samples = []
        for _ in range(cycles):
            await asyncio.sleep(GAP_SECONDS)
            with _GcMeter() as collected:
                cpu, wall = time.process_time(), time.perf_counter()
                snapshot = await collection.collect_once()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            ledger_clock.advance()
            durations = [r.duration_seconds for r in probe.results]
            samples.append(
                CycleSample(cpu, wall, probe.cpu, probe.wall, max(durations, default=0.0),
                            sum(durations), sum(1 for w in snapshot.work if w.up),
                            published[0], collected.cpu, collected.full > 0, extra[0],
                            extra[1])
            )  # fmt: skip
        per_cycle = []  # parse CPU of each profiled cycle
        with _timed_parser() as parses:
            for _ in range(profile_cycles):
                await asyncio.sleep(GAP_SECONDS)
                before = len(parses)
                await collection.collect_once()
                ledger_clock.advance()
                per_cycle.append(sum(parses[before:]))
        first = node.cluster_view().pods[min(node.cluster_view().pods)]
        target = engine_target(first)
        assert target is not None
        bodies = await _fetch_bodies(target.url)
        engines_rss = served.rss_bytes()
        await collection.close()
    result = CycleResult(
        samples=samples,
        parse_ms_per_cycle=median(per_cycle) * 1e3,
        parse_us_per_engine=median(parses) * 1e6,
        parses_per_cycle=len(parses) / max(profile_cycles, 1),
        timeout_s=settings.engines_timeout,
        errors=dict(engines.errors),
        engines_rss_mb=engines_rss / 2**20,
    )
    return result, bodies


# -- 2. parsing one engine's body -----------------------------------------------------------


@dataclass
class ParseResult:
    format: str  # "text" or "OpenMetrics"
    body_bytes: int
    lines: int
    families: int  # what prometheus_client yields
    samples: int
    ours_us: float  # medians of one call
    theirs_us: float
    count_us: float  # body.count(b"\n")
    splitlines_us: float  # body.splitlines()
    decode_us: float  # body.decode(): theirs needs str, included in theirs_us
    ours_theirs: float  # medians of per-round ratios
    ours_count: float
    ours_splitlines: float


def _time_contenders(
    contenders: dict[str, Callable[[], object]],
) -> dict[str, list[float]]:
    """Seconds per call of each contender, one batch of each per round, the order reversed
    every other round, so drift and noise hit them all alike."""
    for fn in contenders.values():
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for round_ in range(PARSE_ROUNDS):
        for name in order if round_ % 2 == 0 else reversed(order):
            fn = contenders[name]
            started = time.perf_counter()
            for _ in range(PARSE_BATCH):
                fn()
            times[name].append((time.perf_counter() - started) / PARSE_BATCH)
    return times


def _parse(body: bytes, openmetrics: bool) -> ParseResult:
    theirs_parser = openmetrics_families if openmetrics else text_families
    reading = parse_engine(body, openmetrics=openmetrics)
    if reading.engine != "vllm" or not reading.models or reading.problems:
        raise AssertionError(f"the body reads as {reading}")
    families = list(theirs_parser(body.decode()))

    def theirs() -> None:
        collections.deque(theirs_parser(body.decode()), maxlen=0)  # every family, parsed

    times = _time_contenders(
        {
            "ours": lambda: parse_engine(body, openmetrics=openmetrics),
            "theirs": theirs,
            "count": lambda: body.count(b"\n"),
            "splitlines": body.splitlines,
            "decode": body.decode,
        }
    )

    def us(name: str) -> float:
        return median(times[name]) * 1e6

    def ratio(other: str) -> float:
        return median([a / b for a, b in zip(times["ours"], times[other], strict=True)])

    return ParseResult(
        format="OpenMetrics" if openmetrics else "text",
        body_bytes=len(body),
        lines=body.count(b"\n"),
        families=len(families),
        samples=sum(len(f.samples) for f in families),
        ours_us=us("ours"),
        theirs_us=us("theirs"),
        count_us=us("count"),
        splitlines_us=us("splitlines"),
        decode_us=us("decode"),
        ours_theirs=ratio("theirs"),
        ours_count=ratio("count"),
        ours_splitlines=ratio("splitlines"),
    )


# -- 3. one engine that never answers -------------------------------------------------------


@dataclass
class ScrapeRound:
    wall: float
    results: list[ScrapeResult]

    def others(self, hung: EngineTarget | None) -> list[ScrapeResult]:
        return [r for r in self.results if r.target != hung]


@dataclass
class HangResult:
    timeout_s: float
    hung_target: EngineTarget  # the engine that never answers
    calm: list[ScrapeRound]
    hanging: list[ScrapeRound]
    hung_errors: list[str | None]  # what the hanging engine's scrape reported, per round
    hung_durations: list[float]

    @property
    def calm_ms(self) -> float:
        return median([r.wall for r in self.calm]) * 1e3

    @property
    def calm_p90_ms(self) -> float:
        return percentile([r.wall for r in self.calm], 90) * 1e3

    @property
    def calm_slowest_ms(self) -> float:
        """The slowest single scrape in any calm round."""
        return max(r.duration_seconds for c in self.calm for r in c.results) * 1e3

    @property
    def hang_s(self) -> float:
        return median([r.wall for r in self.hanging])

    @property
    def hang_max_s(self) -> float:
        return max(r.wall for r in self.hanging)

    @property
    def hung(self) -> str:
        return f"{self.hung_target.namespace}/{self.hung_target.pod}"

    def _others(self) -> list[ScrapeResult]:
        return [r for h in self.hanging for r in h.others(self.hung_target)]

    @property
    def others_read(self) -> int:
        """Of the others, how many were read in the worst hanging round."""
        return min(
            sum(1 for r in h.others(self.hung_target) if r.error is None) for h in self.hanging
        )

    @property
    def others_max_ms(self) -> float:
        """The slowest of the other 55 scrapes in any round with the hanging engine."""
        return max(r.duration_seconds for r in self._others()) * 1e3

    @property
    def others_median_max_ms(self) -> float:
        """Per hanging round, the slowest of the others; the median over the rounds."""
        hung = self.hung_target
        return median([max(r.duration_seconds for r in h.others(hung))
                       for h in self.hanging]) * 1e3  # fmt: skip

    @property
    def bounded_ok(self) -> bool:
        return self.hang_max_s <= self.timeout_s + HANG_MARGIN and all(
            e == "timeout" for e in self.hung_errors
        )

    @property
    def others_ok(self) -> bool:
        """All 55 read, none of them anywhere near waiting for the hanging one."""
        return self.others_read == ENGINES - 1 and self.others_max_ms < self.timeout_s * 1e3 / 4


async def _start(engines: SimulatedEngines) -> None:
    """Starts listening, waiting while another process (a test run) holds the addresses."""
    deadline = time.monotonic() + ADDRESS_WAIT_SECONDS
    while True:
        try:
            await engines.start()
            return
        except OSError as error:
            await engines.stop()
            if not address_taken(error) or time.monotonic() > deadline:
                raise
            print(f"  engine addresses taken by another process; retrying in "
                  f"{ADDRESS_RETRY_SECONDS:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
            await asyncio.sleep(ADDRESS_RETRY_SECONDS)


async def _round(scraper: EngineScraper, targets: list[EngineTarget]) -> ScrapeRound:
    started = time.perf_counter()
    results = await scraper.scrape(targets)
    return ScrapeRound(time.perf_counter() - started, results)


async def _hang() -> HangResult:
    settings = load_settings({}, {})
    node = SimulatedNode(load_scenario(SCENARIO), clock=ManualClock(STARTED_AGO))
    engines = SimulatedEngines(node, poll_seconds=0)  # the clock stands: nobody restarts
    await _start(engines)
    try:
        targets = targets_for(node.cluster_view().pods, engines.addresses)
        if len(targets) != ENGINES:
            raise AssertionError(f"{len(targets)} engine targets, not {ENGINES}")
        scraper = EngineScraper(timeout=HANG_TIMEOUT, max_bytes=settings.engines_max_bytes)
        for _ in range(2):
            await scraper.scrape(targets)
        calm = [await _round(scraper, targets) for _ in range(CALM_ROUNDS)]
        hung = targets[len(targets) // 2]
        engines.faults(hung.namespace, hung.pod).hang = True
        hanging = [await _round(scraper, targets) for _ in range(HANG_ROUNDS)]
        engines.faults(hung.namespace, hung.pod).hang = False
        await scraper.close()
    finally:
        await engines.stop()
    mine = [next(r for r in h.results if r.target == hung) for h in hanging]
    return HangResult(
        timeout_s=HANG_TIMEOUT,
        hung_target=hung,
        calm=calm,
        hanging=hanging,
        hung_errors=[r.error for r in mine],
        hung_durations=[r.duration_seconds for r in mine],
    )


# -- all three ------------------------------------------------------------------------------


@dataclass
class EnginesBenchResult:
    cycle: CycleResult
    bodies: Bodies
    text: ParseResult
    openmetrics: ParseResult
    hang: HangResult

    @property
    def parse(self) -> ParseResult:
        """The parse the scraper does: on the body the scraper's Accept header gets."""
        return self.openmetrics if "openmetrics" in self.bodies.scraped_type else self.text


def run() -> EnginesBenchResult:
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="gpuwork-bench-") as scratch:
        cycle, bodies = asyncio.run(_cycles(Path(scratch)))
    if cycle.min_up != ENGINES:
        raise AssertionError(f"only {cycle.min_up} of {ENGINES} engines read in some cycle")
    text = _parse(bodies.text, openmetrics=False)
    openmetrics = _parse(bodies.openmetrics, openmetrics=True)
    hang = asyncio.run(_hang())
    return EnginesBenchResult(cycle, bodies, text, openmetrics, hang)


def parse_table(r: EnginesBenchResult) -> str:
    lines = [
        "| body | bytes | lines | prometheus_client families / samples | ours µs "
        '| prometheus_client µs | ours / theirs | `count(b"\\n")` µs | ours / count '
        "| `splitlines()` µs | ours / splitlines |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in (r.text, r.openmetrics):
        lines.append(
            f"| {p.format} | {p.body_bytes} | {p.lines} | {p.families} / {p.samples} "
            f"| {p.ours_us:.0f} | {p.theirs_us:.0f} | {p.ours_theirs:.3f} | {p.count_us:.1f} "
            f"| {p.ours_count:.1f} | {p.splitlines_us:.1f} | {p.ours_splitlines:.1f} |"
        )
    return "\n".join(lines)


def cycle_table(c: CycleResult) -> str:
    rows = [
        ("the whole cycle", f"{c.cpu_ms_median:.2f}", f"{c.cpu_ms_p90:.2f}",
         f"{c.wall_ms_median:.2f}", f"{c.wall_ms_p90:.2f}"),
        ("`EngineSource.read`: 56 scrapes and parses",
         f"{c.engines_cpu_ms:.2f}", "", f"{c.round_ms_median:.2f}", f"{c.round_ms_p90:.2f}"),
        ("of it, `parse_engine` x 56 (separate pass, thread CPU)",
         f"{c.parse_ms_per_cycle:.2f}", "", "", ""),
        ("the rest: NVML, attribution, join, both ledgers, family build",
         f"{c.rest_cpu_ms:.2f}", "", "", ""),
        ("of it, the family build (`SnapshotCollector.update`)",
         f"{c.publish_cpu_ms:.2f}", "", "", ""),
    ]  # fmt: skip
    lines = ["| part | CPU ms p50 | CPU ms p90 | wall ms p50 | wall ms p90 |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {a} | {b} | {c_} | {d} | {e} |" for a, b, c_, d, e in rows]
    return "\n".join(lines)


def summary(r: EnginesBenchResult) -> str:
    c, h = r.cycle, r.hang
    return "\n".join(
        [
            f"engines on {SCENARIO}: {ENGINES} vLLM engines in a separate process, "
            f"{len(c.samples)} cycles",
            f"  CPU per cycle: median {c.cpu_ms_median:.2f} ms, p90 {c.cpu_ms_p90:.2f} ms, "
            f"mean {c.cpu_ms_mean:.2f} ms (target <= {CPU_TARGET_MS:.0f} ms: "
            f"{'ok' if c.cpu_ok else 'OVER'})",
            f"  full garbage collections in {c.full_gc_cycles} cycles ({c.full_gc_ms:.1f} ms "
            f"of GC there): CPU median {c.cpu_ms_full_gc:.2f} ms with, "
            f"{c.cpu_ms_no_full_gc:.2f} ms without",
            f"  wall per cycle: median {c.wall_ms_median:.2f} ms, p90 {c.wall_ms_p90:.2f} ms",
            f"  EngineSource.read: {c.engines_cpu_ms:.2f} ms CPU ({c.engines_share:.0%} of a "
            f"cycle), round wall median {c.round_ms_median:.2f} ms, p90 {c.round_ms_p90:.2f} "
            f"ms, max {c.round_ms_max:.2f} ms (timeout {c.timeout_s:g} s); slowest scrape "
            f"{c.scrape_max_ms:.2f} ms, sum of the 56 {c.scrape_sum_ms:.1f} ms (medians)",
            f"  parse inside the cycle: {c.parse_ms_per_cycle:.2f} ms per cycle, "
            f"{c.parse_us_per_engine:.0f} µs per engine ({c.parses_per_cycle:.0f} per cycle)",
            f"  the rest of the cycle: {c.rest_cpu_ms:.2f} ms CPU, of it the family build "
            f"{c.publish_cpu_ms:.2f} ms; engine errors: "
            f"{c.errors or 'none'}; the engines' process RSS {c.engines_rss_mb:.0f} MB",
            cycle_table(c),
            f"parse, one vLLM body from {r.bodies.url} (scraper gets {r.bodies.scraped_type}):",
            parse_table(r),
            f"hang: {h.hung} never answers, timeout {h.timeout_s:g} s",
            f"  round without it: median {h.calm_ms:.1f} ms, p90 {h.calm_p90_ms:.1f} ms "
            f"(slowest scrape {h.calm_slowest_ms:.1f} ms)",
            f"  round with it: median {h.hang_s:.3f} s, max {h.hang_max_s:.3f} s; it reported "
            f"{h.hung_errors} after {[round(d, 3) for d in h.hung_durations]} s",
            f"  the other {ENGINES - 1}: {h.others_read} read in the worst round, slowest "
            f"{h.others_max_ms:.1f} ms (median over rounds of the slowest "
            f"{h.others_median_max_ms:.1f} ms)",
        ]
    )


def main() -> None:
    args = sys.argv[1:]
    if "--kubelet" in args:
        scenario = args[args.index("--scenario") + 1] if "--scenario" in args else SCENARIO
        _serve_kubelet(args[args.index("--kubelet") + 1],
                       float(args[args.index("--wall-start") + 1]), scenario)  # fmt: skip
        return
    print(summary(run()))


if __name__ == "__main__":
    main()
