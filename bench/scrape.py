"""Scraping `/metrics`: gpuwork-exporter beside Debian's prometheus-node-exporter, the
collection cycle on dense-h100 and on a node twice its size, and the pre-render cost.

1. scrape: `python -m exporter --simulate dense-h100` (the demo's process: engines, fake
   kubelet and the default 10 s collection inside it) and `prometheus-node-exporter`, each
   on a free loopback port. GETs start 60 s after both started; then, per variant (the
   plain text Accept header; Prometheus' own scrape headers, gzip accepted), 300 GETs of
   `/metrics` per program, alternating between the programs (ABBA), one keep-alive
   connection per program and variant. Latency is request sent to body read, as sent
   (gzip still compressed). CPU is the server's, from /proc: utime + stime over the
   variant's GETs divided by the GETs (raw), and, to leave out gpuwork's background
   collections, the on-CPU time of all its threads (schedstat) over the spans from one
   of its GETs to the next that no collection touched, averaged (the estimate).
2. cycles: `Collection.collect_once` as `bench/engines.py` runs it (engines in a process
   of their own, the fake kubelet in another) on dense-h100 and on
   `bench/scenarios/dense-h100-2x.yaml` (16 H100s, 200 vLLM pods).
3. pre-render: what a publication renders for a Prometheus server (`render_forms`, the
   OpenMetrics form gzip-compressed) on the dense-h100 snapshot's registry, against
   `generate_latest` alone and against all four forms; the cycles above alternate with
   and without it.
Run: `python -m bench.scrape` (`--no-scrape` or `--no-cycles` leaves a part out).
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

from bench import engines
from bench._common import ROOT, median, percentile, quiet_logs
from exporter.cli import build_registry
from exporter.exposition.bodies import FORMS, Form, render_forms
from exporter.exposition.families import SnapshotCollector
from harness.processes import end_process
from simulator.scenario import load_scenario

SCENARIO = "dense-h100"
SCENARIO_2X = "bench/scenarios/dense-h100-2x.yaml"  # from the repository root
NODE_EXPORTER = "prometheus-node-exporter"  # Debian's package and its program
SETTLE_SECONDS = 60.0  # the GETs start this long after both programs started
READY_SECONDS = 60.0
GETS = 300  # per program and variant
GET_TIMEOUT = 30.0
# Prometheus 3.x's default scrape headers: scrape_protocols OpenMetricsText1.0.0,
# OpenMetricsText0.0.1, PrometheusText1.0.0, PrometheusText0.0.4 with q-values from 0.6
# down, name escaping `allow-utf-8` on the 1.0.0 formats, gzip accepted.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
TEXT_ACCEPT = "text/plain;version=0.0.4"
VARIANTS: dict[str, dict[str, str]] = {
    "text": {"Accept": TEXT_ACCEPT},
    "prometheus": {
        "Accept": PROMETHEUS_ACCEPT,
        "Accept-Encoding": "gzip",
        "User-Agent": "Prometheus/3.5.0",
        "X-Prometheus-Scrape-Timeout-Seconds": "10",
    },
}
VARIANT_TITLES = {
    "text": f"`Accept: {TEXT_ACCEPT}`",
    "prometheus": "Prometheus 3.x (OpenMetrics first, gzip)",
}
# A collection's NVML read ends at its `last_success` timestamp; the collection is taken
# to run from this long before it until the first body that shows it, plus a margin.
COLLECTION_LEAD = 0.25
COLLECTION_TAIL = 0.05
TRAILING_WAIT = 2.0  # after the GETs, a last GET this much later sees a late collection
MARKER = re.compile(rb'gpuwork_collector_last_success_timestamp_seconds\{collector="nvml"\} (\S+)')
P50_TARGET_RATIO = 1.0
CPU_TARGET_MS = 1.0
CYCLES = 40  # dense-h100, after engines.WARMUP; alternating with and without pre-render
CYCLES_2X = 24
RENDER_REPEATS = 30
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- 1. scrape latency and CPU, side by side ------------------------------------------------


@dataclass
class Server:
    name: str
    args: list[str]
    port: int
    process: subprocess.Popen[bytes] = field(init=False)
    _log: IO[bytes] = field(init=False)

    def start(self) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by stop()
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-3000:]

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.output()}")

    def stop(self) -> None:
        end_process(self.process)
        self._log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stat_cpu(pid: int) -> float:
    """utime + stime of the whole process, seconds (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _thread_cpu_ns(pid: int) -> int:
    """On-CPU time of all the process's threads, nanoseconds, from their schedstat; the
    process's utime + stime (clock ticks) where the kernel has no schedstat."""
    total = 0
    found = False
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                total += int(stat.read().split()[0])
                found = True
        except (OSError, ValueError, IndexError):
            continue  # the thread ended, or no schedstat
    return total if found else round(_stat_cpu(pid) * 1e9)


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _get(connection: http.client.HTTPConnection, path: str,
         headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def _wait_until(ok: Callable[[], bool], servers: Sequence[Server], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for server in servers:
            server.alive()
        try:
            if ok():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{', '.join(s.name for s in servers)} did not answer in {seconds:.0f} s")


def _answers(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        return _get(connection, path, {})[0] == 200
    finally:
        connection.close()


@dataclass
class Get:
    started: float  # unix seconds, when the request was sent
    ended: float
    seconds: float  # latency: request sent to body read
    cpu_ns: int  # the server's threads' CPU just before the request
    sent: int  # body bytes as sent
    decoded: int  # after gzip, if any
    marker: float | None  # gpuwork: its last collection's NVML timestamp


@dataclass
class ScrapeFigures:
    """One program, one variant."""

    program: str
    variant: str
    content_type: str
    content_encoding: str
    gets: list[Get]
    end_cpu_ns: int  # after the last GET (closes the last span)
    end_wall: float
    stat_cpu_s: float  # utime + stime over the GETs
    series: int  # samples in the last body
    collections: list[tuple[float, float]] = field(default_factory=list)  # excluded spans

    def _ms(self, q: float) -> float:
        return percentile([g.seconds for g in self.gets], q) * 1e3

    @property
    def p50_ms(self) -> float:
        return self._ms(50)

    @property
    def p90_ms(self) -> float:
        return self._ms(90)

    @property
    def sent_bytes(self) -> int:
        return round(median([g.sent for g in self.gets]))

    @property
    def decoded_bytes(self) -> int:
        return round(median([g.decoded for g in self.gets]))

    @property
    def raw_cpu_ms(self) -> float:
        """utime + stime over the GETs, per GET: collections in the window included."""
        return self.stat_cpu_s / len(self.gets) * 1e3

    def _spans(self) -> Iterator[tuple[float, float, int]]:
        """(start, end, CPU ns) from each GET of this program to its next."""
        ends = [(g.started, g.cpu_ns) for g in self.gets[1:]] + [(self.end_wall, self.end_cpu_ns)]
        for get, (end, cpu) in zip(self.gets, ends, strict=True):
            yield get.started, end, cpu - get.cpu_ns

    def _clean(self, start: float, end: float) -> bool:
        return not any(start < high and end > low for low, high in self.collections)

    @property
    def clean_spans(self) -> int:
        return sum(1 for start, end, _ in self._spans() if self._clean(start, end))

    @property
    def cpu_ms(self) -> float:
        """The estimate: mean on-CPU time of the spans no collection touched."""
        clean = [cpu for start, end, cpu in self._spans() if self._clean(start, end)]
        return sum(clean) / len(clean) / 1e6 if clean else math.nan


@dataclass
class ScrapeResult:
    figures: dict[tuple[str, str], ScrapeFigures]  # (program, variant)
    rss: dict[str, int]
    node_exporter_version: str
    collect_cpu_ms: float  # gpuwork's CPU outside its clean spans, per collection seen
    collections_seen: int
    settle_seconds: float

    def get(self, program: str, variant: str) -> ScrapeFigures:
        return self.figures[(program, variant)]

    def p50_ratio(self, variant: str) -> float:
        return self.get("gpuwork", variant).p50_ms / self.get("node_exporter", variant).p50_ms

    def cpu_ratio(self, variant: str) -> float:
        return self.get("gpuwork", variant).cpu_ms / self.get("node_exporter", variant).cpu_ms

    @property
    def p50_ok(self) -> bool:
        return all(self.p50_ratio(v) <= P50_TARGET_RATIO for v in VARIANTS)

    @property
    def cpu_max_ms(self) -> float:
        return max(self.get("gpuwork", v).cpu_ms for v in VARIANTS)

    @property
    def cpu_ok(self) -> bool:
        return self.cpu_max_ms < CPU_TARGET_MS


def _check(program: str, content_type: str, body: bytes) -> None:
    """The body is a whole exposition of that program, in the format it says."""
    expected = b"gpuwork_nvml_up" if program == "gpuwork" else b"node_cpu_seconds_total"
    if expected not in body:
        raise AssertionError(f"{program}: the body lacks {expected.decode()}")
    if content_type.startswith("application/openmetrics-text"):
        if not body.endswith(b"# EOF\n"):
            raise AssertionError(f"{program}: an OpenMetrics body without its # EOF")
    elif not body.endswith(b"\n"):
        raise AssertionError(f"{program}: a body cut short")


def _marker(body: bytes) -> float | None:
    found = MARKER.search(body)
    return float(found.group(1)) if found else None


def _series(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


class _Client:
    """One keep-alive connection to one program, for one variant."""

    def __init__(self, program: str, server: Server, headers: dict[str, str]) -> None:
        self.program, self.server, self.headers = program, server, headers
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port,
                                                     timeout=GET_TIMEOUT)  # fmt: skip
        self.gets: list[Get] = []
        self.content_type = self.content_encoding = ""
        self.last_body = b""

    def get(self) -> None:
        cpu = _thread_cpu_ns(self.server.pid)
        started = time.time()
        clock = time.perf_counter()
        status, headers, body = _get(self.connection, "/metrics", self.headers)
        seconds = time.perf_counter() - clock
        ended = time.time()
        if status != 200:
            raise AssertionError(f"{self.program}: /metrics answered {status}")
        self.content_type = headers.get("content-type", "")
        self.content_encoding = headers.get("content-encoding", "identity")
        decoded = gzip.decompress(body) if self.content_encoding == "gzip" else body
        _check(self.program, self.content_type, decoded)
        marker = _marker(decoded) if self.program == "gpuwork" else None
        self.gets.append(Get(started, ended, seconds, cpu, len(body), len(decoded), marker))
        self.last_body = decoded


def _variant(name: str, servers: dict[str, Server]) -> dict[str, ScrapeFigures]:
    headers = VARIANTS[name]
    clients = [_Client(program, server, headers) for program, server in servers.items()]
    gpuwork = next(c for c in clients if c.program == "gpuwork")
    for client in clients:  # a first GET opens the connection; not counted
        client.get()
    published = gpuwork.gets[0].marker  # a collection that published before the window
    for client in clients:
        client.gets.clear()
    stat = {c.program: _stat_cpu(c.server.pid) for c in clients}
    for round_ in range(GETS):
        for client in clients if round_ % 2 == 0 else reversed(clients):
            client.get()
    figures = {}
    for client in clients:
        pid = client.server.pid
        figures[client.program] = ScrapeFigures(
            program=client.program, variant=name, content_type=client.content_type,
            content_encoding=client.content_encoding, gets=client.gets,
            end_cpu_ns=_thread_cpu_ns(pid), end_wall=time.time(),
            stat_cpu_s=_stat_cpu(pid) - stat[client.program],
            series=_series(client.last_body),
        )  # fmt: skip
    time.sleep(TRAILING_WAIT)  # a collection that started near the end has published now
    trailing = _Client("gpuwork", gpuwork.server, headers)
    trailing.get()
    for client in (*clients, trailing):
        client.connection.close()
    figures["gpuwork"].collections = _collections(
        gpuwork.gets, trailing.gets[0].marker, published, figures["gpuwork"].end_wall
    )
    return figures


def _collections(
    gets: Sequence[Get], trailing: float | None, published: float | None, end: float
) -> list[tuple[float, float]]:
    """When gpuwork's collections ran in the window, as far as its bodies tell: from a little
    before each collection's NVML timestamp to a little after the end of the first GET whose
    body shows it; one that only the trailing GET showed runs to the end (if it started
    before it). The collection that `published` names had published before the window."""
    shown: dict[float, float] = {}
    for get in gets:
        if get.marker is not None and get.marker != published:
            shown.setdefault(get.marker, get.ended)
    if trailing is not None and trailing != published and trailing - COLLECTION_LEAD < end:
        shown.setdefault(trailing, math.inf)
    return [(at - COLLECTION_LEAD, end + COLLECTION_TAIL) for at, end in shown.items()]


def _node_exporter() -> str:
    found = shutil.which(NODE_EXPORTER)
    if found is None:
        raise RuntimeError(
            f"{NODE_EXPORTER} not found: install Debian's {NODE_EXPORTER} package "
            f"(apt-get install --no-install-recommends {NODE_EXPORTER}; `make bench` does)"
        )
    return found


def _version(program: str) -> str:
    try:
        answer = subprocess.run([program, "--version"], capture_output=True, text=True,
                                timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = re.search(r"version (\S+)", answer.stdout or answer.stderr)
    return f"node_exporter {found.group(1)}" if found else "unknown"


def run_scrape() -> ScrapeResult:
    program = _node_exporter()
    gpuwork_port, node_port = _free_port(), _free_port()
    servers = {
        "gpuwork": Server("gpuwork-exporter", [
            sys.executable, "-m", "exporter", "--simulate", SCENARIO,
            "--web.listen-address", f"127.0.0.1:{gpuwork_port}", "--log.level", "warning"],
            gpuwork_port),
        "node_exporter": Server(NODE_EXPORTER, [
            program, f"--web.listen-address=127.0.0.1:{node_port}", "--log.level=warn"],
            node_port),
    }  # fmt: skip
    started = time.monotonic()
    for server in servers.values():
        server.start()
    try:
        _wait_until(lambda: _answers(gpuwork_port, "/readyz") and _answers(node_port, "/metrics"),
                    list(servers.values()), READY_SECONDS)  # fmt: skip
        print(f"  both answer after {time.monotonic() - started:.1f} s; GETs start at "
              f"{SETTLE_SECONDS:.0f} s", flush=True)  # fmt: skip
        time.sleep(max(SETTLE_SECONDS - (time.monotonic() - started), 0.0))
        figures: dict[tuple[str, str], ScrapeFigures] = {}
        for name in VARIANTS:
            for who, figure in _variant(name, servers).items():
                figures[(who, name)] = figure
            for server in servers.values():
                server.alive()
        rss = {who: _rss(server.pid) for who, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    gpuwork = [figures[("gpuwork", v)] for v in VARIANTS]
    seen = sum(
        1 for f in gpuwork for low, _ in f.collections if low + COLLECTION_LEAD < f.end_wall
    )  # its NVML read ended in the window
    outside_ns = sum(
        cpu for f in gpuwork for start, end, cpu in f._spans() if not f._clean(start, end)
    )
    unclean = sum(len(f.gets) - f.clean_spans for f in gpuwork)
    per_get_ns = sum(f.cpu_ms * 1e6 * (len(f.gets) - f.clean_spans) for f in gpuwork)
    collect_ms = (outside_ns - per_get_ns) / seen / 1e6 if seen and unclean else math.nan
    return ScrapeResult(figures, rss, _version(program), collect_ms, seen, SETTLE_SECONDS)


PROMETHEUS_FORM: Form = (True, True)  # what a Prometheus server asks for


# -- 2. and 3. the collection cycle, and the pre-render ---------------------------------------


def _prometheus_form(registry: Collector) -> dict[Form, bytes]:
    """What a publication renders for a Prometheus server: OpenMetrics, gzip-compressed
    (`exporter.exposition.bodies` renders the forms scrapes asked for lately)."""
    return render_forms(registry, (PROMETHEUS_FORM,))


class _PreRender:
    """`after_publish` for `engines._cycles`: keeps the registry, and renders what a
    publication renders for Prometheus every other cycle."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry | None = None
        self.calls = 0

    def __call__(self, snapshots: SnapshotCollector) -> bool:
        if self.registry is None:
            self.registry = build_registry(snapshots)
        self.calls += 1
        if self.calls % 2:
            return False
        _prometheus_form(self.registry)
        return True


@dataclass
class CycleFigures:
    scenario: str
    gpus: int
    devices: int
    engines: int
    cycles: int
    cpu_ms: float  # cycles without the pre-render: median
    cpu_p90_ms: float
    wall_ms: float
    engines_cpu_ms: float  # EngineSource.read
    family_ms: float  # SnapshotCollector.update
    with_cpu_ms: float  # cycles with the pre-render (nan without it)
    with_cpu_p90_ms: float
    render_in_cycle_ms: float  # the pre-render inside those cycles, median

    @property
    def added_ms(self) -> float:
        return self.with_cpu_ms - self.cpu_ms


@dataclass
class RenderFigures:
    body_text: int
    body_openmetrics: int
    text_ms: float  # generate_latest
    openmetrics_ms: float  # openmetrics.generate_latest
    prometheus_ms: float  # render_forms: OpenMetrics, gzip-compressed
    all_forms_ms: float  # render_forms: all four forms
    gzip_text: int  # sizes of the gzip-compressed forms
    gzip_openmetrics: int


@dataclass
class CyclesResult:
    dense: CycleFigures
    double: CycleFigures
    render: RenderFigures


def _scenario_shape(scenario: str) -> tuple[int, int, int]:
    """(GPUs, devices, engine pods) of a scenario."""
    loaded = load_scenario(scenario)
    gpus = sum(g.count for g in loaded.gpus)
    devices = sum(g.count * (len([m for m in g.mig if m]) if g.mig else 1) for g in loaded.gpus)
    return gpus, devices, sum(1 for p in loaded.pods if p.engine)


def _cycle_figures(scenario: str, label: str, cycles: int, hook: _PreRender) -> CycleFigures:
    with tempfile.TemporaryDirectory(prefix="gpuwork-bench-") as scratch:
        result, _ = asyncio.run(
            engines._cycles(Path(scratch), scenario, cycles=cycles, profile_cycles=0,
                            after_publish=hook)
        )  # fmt: skip
    gpus, devices, pods = _scenario_shape(scenario)
    if result.min_up != pods:
        raise AssertionError(f"{label}: only {result.min_up} of {pods} engines read in a cycle")
    plain = [s for s in result.samples if not s.extra]
    rendered = [s for s in result.samples if s.extra]

    def ms(samples: Sequence[engines.CycleSample], q: float, key: str = "cpu") -> float:
        return percentile([getattr(s, key) for s in samples], q) * 1e3

    return CycleFigures(
        scenario=label, gpus=gpus, devices=devices, engines=pods, cycles=len(result.samples),
        cpu_ms=ms(plain, 50), cpu_p90_ms=ms(plain, 90), wall_ms=ms(plain, 50, "wall"),
        engines_cpu_ms=ms(plain, 50, "engines_cpu"), family_ms=ms(plain, 50, "publish_cpu"),
        with_cpu_ms=ms(rendered, 50), with_cpu_p90_ms=ms(rendered, 90),
        render_in_cycle_ms=ms(rendered, 50, "extra_cpu"),
    )  # fmt: skip


def _time_renders(registry: CollectorRegistry) -> RenderFigures:
    """Thread CPU of each render, medians of RENDER_REPEATS, taking turns."""
    contenders: dict[str, Callable[[], Any]] = {
        "text": lambda: generate_latest(registry),
        "openmetrics": lambda: openmetrics.generate_latest(registry),  # type: ignore[no-untyped-call]
        "prometheus": lambda: _prometheus_form(registry),
        "all": lambda: render_forms(registry, FORMS),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()  # warm
    for round_ in range(RENDER_REPEATS):
        order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
        for name in order:
            started = time.thread_time()
            contenders[name]()
            times[name].append(time.thread_time() - started)
    made = render_forms(registry, FORMS)
    return RenderFigures(
        body_text=len(generate_latest(registry)),
        body_openmetrics=len(openmetrics.generate_latest(registry)),  # type: ignore[no-untyped-call]
        text_ms=median(times["text"]) * 1e3,
        openmetrics_ms=median(times["openmetrics"]) * 1e3,
        prometheus_ms=median(times["prometheus"]) * 1e3,
        all_forms_ms=median(times["all"]) * 1e3,
        gzip_text=len(made[(False, True)]),
        gzip_openmetrics=len(made[PROMETHEUS_FORM]),
    )


def run_cycles() -> CyclesResult:
    quiet_logs()
    dense_hook = _PreRender()
    dense = _cycle_figures(SCENARIO, SCENARIO, CYCLES, dense_hook)
    double = _cycle_figures(str(ROOT / SCENARIO_2X), "dense-h100-2x", CYCLES_2X, _PreRender())
    assert dense_hook.registry is not None
    return CyclesResult(dense, double, _time_renders(dense_hook.registry))


# -- all of it ----------------------------------------------------------------------------------


@dataclass
class ScrapeBenchResult:
    scrape: ScrapeResult | None
    cycles: CyclesResult | None
    seconds: float


def run(*, scrape: bool = True, cycles: bool = True) -> ScrapeBenchResult:
    started = time.perf_counter()
    s = run_scrape() if scrape else None
    c = run_cycles() if cycles else None
    return ScrapeBenchResult(s, c, time.perf_counter() - started)


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def scrape_table(s: ScrapeResult) -> str:
    lines = [
        "| program | scrape headers | p50 ms | p90 ms | CPU ms / scrape (estimate) "
        "| CPU ms / scrape (raw) | body bytes sent | body bytes decompressed | series "
        "| Content-Type; Content-Encoding |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for variant in VARIANTS:
        for program in ("gpuwork", "node_exporter"):
            f = s.get(program, variant)
            lines.append(
                f"| {program} | {VARIANT_TITLES[variant]} | {f.p50_ms:.2f} | {f.p90_ms:.2f} "
                f"| {_f(f.cpu_ms, 3)} | {f.raw_cpu_ms:.3f} | {f.sent_bytes} | {f.decoded_bytes} "
                f"| {f.series} | {f.content_type}; {f.content_encoding} |"
            )
    for variant in VARIANTS:
        lines.append(
            f"| gpuwork / node_exporter | {VARIANT_TITLES[variant]} | "
            f"{s.p50_ratio(variant):.2f} | | {_f(s.cpu_ratio(variant))} | | | | | |"
        )
    return "\n".join(lines)


def cycles_table(c: CyclesResult) -> str:
    lines = [
        "| node | GPUs / devices / engine pods | cycles | CPU ms p50 | CPU ms p90 | wall ms p50 "
        "| `EngineSource.read` CPU ms | family build CPU ms "
        "| with pre-render: CPU ms p50 / p90 | of it the render ms | added ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for f in (c.dense, c.double):
        with_ = f"{f.with_cpu_ms:.2f} / {f.with_cpu_p90_ms:.2f}"
        lines.append(
            f"| {f.scenario} | {f.gpus} / {f.devices} / {f.engines} | {f.cycles} "
            f"| {f.cpu_ms:.2f} | {f.cpu_p90_ms:.2f} | {f.wall_ms:.2f} | {f.engines_cpu_ms:.2f} "
            f"| {f.family_ms:.2f} | {with_} | {_f(f.render_in_cycle_ms)} | {_f(f.added_ms)} |"
        )
    return "\n".join(lines)


def render_table(c: CyclesResult) -> str:
    r = c.render
    return "\n".join([
        "| render of the dense-h100 registry | CPU ms (median) | bytes |",
        "|---|---:|---:|",
        f"| `generate_latest` (text: what a scrape of the old code serializes) "
        f"| {r.text_ms:.2f} | {r.body_text} |",
        f"| `openmetrics.generate_latest` | {r.openmetrics_ms:.2f} | {r.body_openmetrics} |",
        f"| `render_forms`, OpenMetrics gzip-compressed (for Prometheus) | {r.prometheus_ms:.2f} "
        f"| {r.gzip_openmetrics} |",
        f"| `render_forms`, all four forms (text gzip: {r.gzip_text} bytes) "
        f"| {r.all_forms_ms:.2f} | |",
    ])  # fmt: skip


def summary(r: ScrapeBenchResult) -> str:
    lines = []
    if (s := r.scrape) is not None:
        lines += [
            f"scrape: gpuwork-exporter --simulate {SCENARIO} beside {s.node_exporter_version}; "
            f"{GETS} GETs per program and variant from {s.settle_seconds:.0f} s after start",
            scrape_table(s),
            "  gpuwork p50 / node_exporter p50: "
            + ", ".join(f"{v} {s.p50_ratio(v):.2f}" for v in VARIANTS)
            + f" (target <= {P50_TARGET_RATIO:g}: {'ok' if s.p50_ok else 'OVER'})",
            f"  gpuwork CPU per scrape, estimate: max {_f(s.cpu_max_ms, 3)} ms "
            f"(target < {CPU_TARGET_MS:g} ms: {'ok' if s.cpu_ok else 'OVER'}); collections "
            f"in the windows: {s.collections_seen}, ~{_f(s.collect_cpu_ms, 1)} ms CPU each",
            f"  RSS at the end: gpuwork {s.rss['gpuwork'] / 2**20:.1f} MB, node_exporter "
            f"{s.rss['node_exporter'] / 2**20:.1f} MB",
        ]  # fmt: skip
    if (c := r.cycles) is not None:
        lines += [
            "cycles: engines in their own process, the fake kubelet in another",
            cycles_table(c),
            render_table(c),
        ]
    lines.append(f"took {r.seconds:.0f} s")
    return "\n".join(lines)


def main() -> None:
    args = sys.argv[1:]
    quiet_logs()
    result = run(scrape="--no-scrape" not in args, cycles="--no-cycles" not in args)
    print(summary(result))


if __name__ == "__main__":
    main()
