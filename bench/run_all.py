"""Runs every benchmark and writes `bench/RESULTS.md`; `make bench` calls this.

Run: `python -m bench.run_all` (`--no-write` prints the markdown only).
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench import (
    attribution,
    collection,
    engines,
    kube_clients,
    kube_memory,
    memory,
    render,
    scrape,
)
from bench._common import machine

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _commit() -> str:
    try:
        answer = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=RESULTS.parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    return answer.stdout.strip() or "unknown"


def _mark(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def _attribution_rows(a: attribution.AttributionBenchResult) -> list[tuple[str, ...]]:
    return [
        ("attribution", "CPU per cycle, with / without attribution (paired median)",
         f"{a.paired_ratio:.2f}", "", ""),
        ("attribution", "CPU per cycle, core / with attribution (medians)",
         f"{a.plain_cpu_ms:.2f} ms / {a.with_cpu_ms:.2f} ms", "", ""),
        ("attribution", "added CPU per cycle (paired median)", f"{a.added_ms:.2f} ms", "", ""),
        ("attribution", "wall per cycle p50, core / with attribution",
         f"{a.plain_wall_p50_ms:.2f} ms / {a.with_wall_p50_ms:.2f} ms", "", ""),
        ("attribution", "join alone: `attribute` + `WasteLedger.update`",
         f"{a.join_ms:.2f} ms", "", ""),
        ("attribution", "kubelet round trip alone: `PodResourcesClient.read`, CPU / wall",
         f"{a.kubelet_cpu_ms:.2f} ms / {a.kubelet_wall_ms:.2f} ms", "", ""),
        ("attribution", "/metrics render of the attributed snapshot, ours / floor (paired)",
         f"{a.render_ratio:.3f}", f"<= {render.TARGET_RATIO}",
         _mark(a.render_ratio <= render.TARGET_RATIO)),
        ("attribution", "kubelet calls during scrapes", str(a.render_kubelet_calls), "0",
         _mark(a.render_kubelet_calls == 0)),
    ]  # fmt: skip


def _engines_rows(e: engines.EnginesBenchResult) -> list[tuple[str, ...]]:
    c, h, t, o = e.cycle, e.hang, e.text, e.openmetrics
    cpu_target = f"<= {engines.CPU_TARGET_MS:.0f} ms"
    return [
        ("engines", "cycle CPU with 56 vLLM engines scraped (engines in their own process), "
         "median", f"{c.cpu_ms_median:.2f} ms", cpu_target,
         _mark(c.cpu_ms_median <= engines.CPU_TARGET_MS)),
        ("engines", "cycle CPU, mean (full garbage collections amortized) / p90",
         f"{c.cpu_ms_mean:.2f} ms / {c.cpu_ms_p90:.2f} ms", f"{cpu_target} (mean)",
         _mark(c.cpu_ms_mean <= engines.CPU_TARGET_MS)),
        ("engines", "cycle CPU without / with a full garbage collection (medians)",
         f"{c.cpu_ms_no_full_gc:.2f} ms / {c.cpu_ms_full_gc:.2f} ms "
         f"({c.full_gc_cycles} of {len(c.samples)} cycles)", "", ""),
        ("engines", "cycle CPU split: `EngineSource.read` (56 scrapes + parses) / the rest",
         f"{c.engines_cpu_ms:.2f} ms / {c.rest_cpu_ms:.2f} ms", "", ""),
        ("engines", "of the scrapes, `parse_engine` x 56 / of the rest, the family build",
         f"{c.parse_ms_per_cycle:.2f} ms / {c.publish_cpu_ms:.2f} ms", "", ""),
        ("engines", "cycle wall p50 / p90", f"{c.wall_ms_median:.2f} ms / {c.wall_ms_p90:.2f} ms",
         "", ""),
        ("engines", "scrape round wall, max over cycles (sum of the 56 scrapes' times, median)",
         f"{c.round_ms_max:.1f} ms ({c.scrape_sum_ms:.0f} ms)", f"<= {c.timeout_s:g} s timeout",
         _mark(c.round_ok)),
        ("engines", "parse one vLLM body (text, what the scraper gets): ours / prometheus_client",
         f"{t.ours_us:.0f} µs / {t.theirs_us:.0f} µs, {t.ours_theirs:.3f}", "", ""),
        ("engines", "parse (text): ours / floor, `count(b\"\\n\")` and `splitlines()`",
         f"{t.ours_count:.1f} and {t.ours_splitlines:.1f}", "", ""),
        ("engines", "parse (OpenMetrics, names intact): ours / prometheus_client",
         f"{o.ours_us:.0f} µs / {o.theirs_us:.0f} µs, {o.ours_theirs:.3f}", "", ""),
        ("engines", "scrape round with one engine never answering / without",
         f"{h.hang_max_s:.3f} s / {h.calm_ms:.1f} ms",
         f"<= {h.timeout_s + engines.HANG_MARGIN:g} s", _mark(h.bounded_ok)),
        ("engines", "with it, the other 55: read / slowest scrape",
         f"{h.others_read} / {h.others_max_ms:.1f} ms",
         f"55 / < {h.timeout_s / 4:g} s", _mark(h.others_ok)),
    ]  # fmt: skip


def _engines_section(e: engines.EnginesBenchResult) -> str:
    c, h = e.cycle, e.hang
    return f"""\
**1. The whole cycle.** The 56 engines serve from a process of their own (`python -m
simulator.engines --scenario dense-h100 --wall-start T`), as on a real node, so
their serving CPU is not counted; the fake kubelet runs in a second one (`python -m
bench.engines --kubelet`), so its gRPC server threads, which `bench/attribution.py` counts,
are not counted here either. The benchmark process builds what `serve` builds with the
default settings (`build_collection`: {c.timeout_s:g} s
per-engine timeout) over a simulated NVML whose node starts at the same T on a real clock,
so NVML, the kubelet and the engines agree; the collection's own clock (the state ledger's
window) moves 10 s a cycle as between a real node's collections. After {engines.WARMUP}
warm-up cycles, {len(c.samples)} cycles of `collect_once` \
({engines.GAP_SECONDS * 1e3:.0f} ms apart): NVML, attribution, 56 scrapes and parses,
the join, the state and useful-work ledgers and the family build, all 56 engines read in
every cycle (errors: {c.errors or "none"}). CPU is `time.process_time` of the process,
worker threads included. `EngineSource.read` and
the family build (`publish`) were timed inside every cycle; `parse_engine` in a further
{engines.PROFILE_CYCLES} cycles (thread CPU, the median cycle's 56 calls; one call's median
{c.parse_us_per_engine:.0f} µs). A garbage collection that starts inside a timed part counts
in that part.

{engines.cycle_table(c)}

The p90 is garbage collection: {c.full_gc_cycles} of the {len(c.samples)} cycles ran a full
(generation 2) collection, {c.full_gc_ms:.1f} ms of GC in such a cycle (median), which
puts them at {c.cpu_ms_full_gc:.2f} ms against {c.cpu_ms_no_full_gc:.2f} ms for the others; the
mean ({c.cpu_ms_mean:.2f} ms) carries that cost spread over all cycles. The scrape round's
wall time is that of the slowest scrape, not the sum: median {c.round_ms_median:.1f} ms
(max {c.round_ms_max:.1f} ms) for 56 scrapes whose own times add up to {c.scrape_sum_ms:.0f} ms
(median; the slowest single one {c.scrape_max_ms:.1f} ms). For context, the engines' process
held {c.engines_rss_mb:.0f} MB of RSS.

**2. Parsing one engine's body.** The first engine pod's `/metrics` fetched from the engines'
process ({e.bodies.url}): the reference vLLM exposition with its stats substituted, written
by prometheus_client, in the text format (`Accept: {engines.TEXT_ACCEPT}`; what the scraper's
own Accept header gets: {e.bodies.scraped_type}) and in OpenMetrics with names intact
(`Accept: {engines.OPENMETRICS_ACCEPT}`; the escaped names prometheus_client writes by default
clash with its family names in its own strict parser).
*Ours* is `parse_engine(body)` (its label cache warm, as from the second scrape on);
*prometheus_client* is `text_string_to_metric_families(body.decode())` from
`prometheus_client.parser` (text) or `prometheus_client.openmetrics.parser` (OpenMetrics),
consuming every family, the decode included (it takes str; the decode alone took
{e.text.decode_us:.1f} µs); the *floors* read the bytes once: `body.count(b"\\n")` and
`body.splitlines()`. {engines.PARSE_ROUNDS} rounds of {engines.PARSE_BATCH} calls of each, the
order reversed every other round; times are medians, ratios medians of per-round ratios.

{engines.parse_table(e)}

**3. One engine that never answers.** The fault knob (`faults(...).hang`) lives in the
engines' process, so this part runs `SimulatedEngines` for dense-h100 in the benchmark
process (their serving CPU shares its event loop), scraped by the real `EngineScraper`
({h.timeout_s:g} s timeout) at the 56 targets `targets_for` picks. {engines.CALM_ROUNDS} rounds
without a fault: median {h.calm_ms:.1f} ms, p90 {h.calm_p90_ms:.1f} ms, slowest single scrape
{h.calm_slowest_ms:.1f} ms. Then `{h.hung}` accepts the request and never answers, for
{engines.HANG_ROUNDS} rounds: each took {", ".join(f"{r.wall:.3f} s" for r in h.hanging)}; the
hanging scrape reported {", ".join(str(x) for x in h.hung_errors)} after
{", ".join(f"{d:.3f} s" for d in h.hung_durations)}; the other 55 were read every round
({h.others_read} in the worst), the slowest of them in {h.others_max_ms:.1f} ms (median over
the rounds of the slowest: {h.others_median_max_ms:.1f} ms). "Not delayed" is taken as: all
55 read, none slower than a quarter of the timeout."""


def _scrape_rows(x: scrape.ScrapeBenchResult) -> list[tuple[str, ...]]:
    s, c = x.scrape, x.cycles
    assert s is not None and c is not None
    text, prom = (s.get("gpuwork", v) for v in scrape.VARIANTS)
    node_text, node_prom = (s.get("node_exporter", v) for v in scrape.VARIANTS)
    p50_target = f"<= {scrape.P50_TARGET_RATIO:g}"
    cpu_target = f"< {scrape.CPU_TARGET_MS:g} ms"
    mb = 2**20
    d, dd = c.dense, c.double
    rows = [
        ("scrape", "p50, gpuwork / node_exporter, side by side (text 0.0.4)",
         f"{s.p50_ratio('text'):.2f}", p50_target,
         _mark(s.p50_ratio("text") <= scrape.P50_TARGET_RATIO)),
        ("scrape", "p50, gpuwork / node_exporter (Prometheus' headers: OpenMetrics, gzip)",
         f"{s.p50_ratio('prometheus'):.2f}", p50_target,
         _mark(s.p50_ratio("prometheus") <= scrape.P50_TARGET_RATIO)),
        ("scrape", "gpuwork p50 / p90: text; Prometheus' headers",
         f"{text.p50_ms:.2f} / {text.p90_ms:.2f} ms; {prom.p50_ms:.2f} / {prom.p90_ms:.2f} ms",
         "", ""),
        ("scrape", "node_exporter p50 / p90: text; Prometheus' headers",
         f"{node_text.p50_ms:.2f} / {node_text.p90_ms:.2f} ms; "
         f"{node_prom.p50_ms:.2f} / {node_prom.p90_ms:.2f} ms", "", ""),
        ("scrape", "gpuwork CPU per scrape, its collections left out (text / Prometheus')",
         f"{text.cpu_ms:.3f} ms / {prom.cpu_ms:.3f} ms", cpu_target, _mark(s.cpu_ok)),
        ("scrape", "gpuwork CPU per scrape, raw: collections in the window included",
         f"{text.raw_cpu_ms:.3f} ms / {prom.raw_cpu_ms:.3f} ms", "", ""),
        ("scrape", "node_exporter CPU per scrape (text / Prometheus')",
         f"{node_text.cpu_ms:.3f} ms / {node_prom.cpu_ms:.3f} ms", "", ""),
        ("scrape", "CPU per scrape, gpuwork / node_exporter (text / Prometheus')",
         f"{s.cpu_ratio('text'):.2f} / {s.cpu_ratio('prometheus'):.2f}", "", ""),
        ("scrape", "body bytes sent to Prometheus (decompressed), gpuwork / node_exporter",
         f"{prom.sent_bytes} ({prom.decoded_bytes}) / {node_prom.sent_bytes} "
         f"({node_prom.decoded_bytes})", "", ""),
        ("scrape", "series, gpuwork / node_exporter", f"{text.series} / {node_text.series}",
         "", ""),
        ("scrape", "RSS at the end, gpuwork / node_exporter",
         f"{s.rss['gpuwork'] / mb:.1f} MB / {s.rss['node_exporter'] / mb:.1f} MB", "", ""),
        ("scrape", f"cycle CPU p50 / p90, {d.scenario} ({d.engines} engines, their own process)",
         f"{d.cpu_ms:.2f} ms / {d.cpu_p90_ms:.2f} ms", "", ""),
        ("scrape", f"cycle CPU p50 / p90, {dd.scenario} ({dd.gpus} GPUs, {dd.engines} engines)",
         f"{dd.cpu_ms:.2f} ms / {dd.cpu_p90_ms:.2f} ms", "", ""),
    ]  # fmt: skip
    rows += [
        ("scrape", "render per publication for Prometheus (OpenMetrics, gzip) / all four "
         "forms / `generate_latest` alone, dense-h100 registry",
         f"{c.render.prometheus_ms:.2f} ms / {c.render.all_forms_ms:.2f} ms / "
         f"{c.render.text_ms:.2f} ms", "", ""),
        ("scrape", "cycle CPU p50 with / without the pre-render, dense-h100",
         f"{d.with_cpu_ms:.2f} ms / {d.cpu_ms:.2f} ms", "", ""),
        ("scrape", "cycle CPU p50 with / without the pre-render, dense-h100-2x",
         f"{dd.with_cpu_ms:.2f} ms / {dd.cpu_ms:.2f} ms", "", ""),
    ]  # fmt: skip
    return rows


def _scrape_section(x: scrape.ScrapeBenchResult) -> str:
    s, c = x.scrape, x.cycles
    assert s is not None and c is not None
    prerender = (
        "The cycles alternate without and with what a publication renders for a Prometheus\n"
        "server (`render_forms`: OpenMetrics, gzip-compressed) on the registry as `serve`\n"
        "builds it (the snapshot's families and prometheus_client's process, platform and\n"
        "garbage-collector families), called right after the family build. The first CPU\n"
        "columns are the cycles without it."
    )
    collections = (
        f"{s.collections_seen} collections fell in the windows, at about "
        f"{s.collect_cpu_ms:.0f} ms of CPU each\n(engine serving and the fake kubelet included)"
        if s.collections_seen
        else "no collection fell in the windows"
    )
    return f"""\
**1. Scrapes, side by side.** `python -m exporter --simulate {scrape.SCENARIO}` (as `make demo`
runs it: the engines, the fake kubelet and the default 10 s collection inside the process)
and Debian's `prometheus-node-exporter` ({s.node_exporter_version}, default collectors), each
on a free loopback port. The GETs start {s.settle_seconds:.0f} s after both started. Per
variant, {scrape.GETS} GETs of `/metrics` per program, alternating between the two (the order
reversed every other round), over one keep-alive connection per program and variant
(`http.client`): first `Accept: {scrape.TEXT_ACCEPT}` alone, as plain clients send it; then
Prometheus 3.x's default scrape headers, `Accept: {scrape.PROMETHEUS_ACCEPT}`,
`Accept-Encoding: gzip`, its User-Agent and scrape timeout header. Latency is from the
request sent to the body read, as sent (compressed bodies are decompressed afterwards, to
check them and count their series: sample lines). CPU is the server process's: *raw* is
utime + stime from `/proc/<pid>/stat` over the variant's GETs, divided by the GETs; gpuwork
also collects in the background, so the *estimate* takes the on-CPU time of all its threads
(`/proc/<pid>/task/*/schedstat`, ns) over each span from one of its GETs to the next, and
averages the spans that no collection touched. A collection is taken to run from
{scrape.COLLECTION_LEAD:g} s before its NVML timestamp
(`gpuwork_collector_last_success_timestamp_seconds{{collector="nvml"}}`, in every body) to
the end of the first GET whose body shows it; {collections}. node_exporter has no
background work: its estimate is over all its spans, and it
gathers its metrics on each scrape.

{scrape.scrape_table(s)}

**2. The collection cycle at twice the dense node.** `bench/engines.py`'s cycle (engines
in a process of their own, the fake kubelet in another, the default settings; CPU is
`time.process_time` of the process) on `{scrape.SCENARIO}` ({scrape.CYCLES} cycles) and on
`{scrape.SCENARIO_2X}` ({scrape.CYCLES_2X} cycles): 16 H100s, 14 split into 7x 1g.10gb and 2
time-sliced whole GPUs of 51 replicas, 200 vLLM pods, 4 tenants over 6 namespaces.
{prerender}

{scrape.cycles_table(c)}

**3. Pre-render.** On the registry of the last dense-h100 cycle's snapshot, thread CPU of
each render, medians of {scrape.RENDER_REPEATS} taking turns.

{scrape.render_table(c)}"""


def _memory_variants(m: memory.MemoryResult) -> str:
    variants = [
        ("whole exporter, engines in their own process", m),
        ("as `serve --simulate` builds it, engines inside", m.in_process),
        ("without engine scraping", m.without_engines),
    ]
    return "\n".join(
        f"| {name} | {v.final_mb:.1f} | {v.growth_mb:+.2f} | {v.seconds:.0f} |"
        for name, v in variants
        if v is not None
    )


def _memory_rows(m: memory.MemoryResult) -> list[tuple[str, ...]]:
    rows = [
        ("memory", f"RSS after {memory.COLLECTIONS} collections, whole exporter "
         "(engines in their own process, fake kubelet inside)",
         f"{m.final_mb:.1f} MB", f"<= {memory.TARGET_MB:.0f} MB",
         _mark(m.final_mb <= memory.TARGET_MB)),
        ("memory", f"RSS growth, collection 200 -> {memory.COLLECTIONS}",
         f"{m.growth_mb:+.2f} MB", f"<= {memory.GROWTH_LIMIT_MB:+.1f} MB",
         _mark(m.growth_mb <= memory.GROWTH_LIMIT_MB)),
    ]  # fmt: skip
    for name, other in (
        ("as `serve --simulate` builds it (engines in the process)", m.in_process),
        ("without engine scraping", m.without_engines),
    ):
        if other is not None:
            figure = f"{name}: RSS after {memory.COLLECTIONS} collections / growth"
            value = f"{other.final_mb:.1f} MB / {other.growth_mb:+.2f} MB"
            rows.append(("memory", figure, value, "", ""))
    value = f"{m.engines_rss_bytes / memory.MB:.1f} MB"
    rows.append(("memory", "the engines' own process (not the exporter's), RSS", value, "", ""))
    return rows


def _kube_rows(k: kube_memory.KubeMemoryResult) -> list[tuple[str, ...]]:
    if k.skipped:
        return [("kube_memory", "API watch memory for 1,000 pods", f"skipped: {k.skipped}",
                 "", "")]  # fmt: skip
    mb = memory.MB
    return [
        ("kube_memory", f"child RSS after imports / synced with {k.pods} pods",
         f"{k.rss_before / mb:.1f} MB / {k.rss_synced / mb:.1f} MB", "", ""),
        ("kube_memory", "RSS added by the watch, first sync (peak)",
         f"{k.added_mb:+.1f} MB ({k.hwm_synced / mb:.1f} MB)", "", ""),
        ("kube_memory", "held by the synced watcher (tracemalloc): in all / per pod",
         f"{k.held_bytes / 1024:.0f} KiB / {k.per_pod_bytes:.0f} bytes", "", ""),
        ("kube_memory", f"time to sync {k.pods} pods", f"{k.sync_seconds:.2f} s", "", ""),
        ("kube_memory", f"RSS after churn (delete + create {k.pods}), vs first sync",
         f"{k.rss_resynced / mb:.1f} MB ({k.churn_growth_mb:+.1f} MB)",
         f"<= {memory.GROWTH_LIMIT_MB:+.1f} MB",
         _mark(k.churn_growth_mb <= memory.GROWTH_LIMIT_MB)),
    ]  # fmt: skip


def _kube_clients_rows(
    kc: kube_clients.KubeClientsResult, m: memory.MemoryResult
) -> list[tuple[str, ...]]:
    if kc.skipped:
        return [("kube_clients", "thin client against kubernetes_asyncio and kubernetes",
                 f"skipped: {kc.skipped}", "", "")]  # fmt: skip
    thin, rows = kc.run("thin"), []
    for client in kube_clients.CLIENTS[1:]:
        run, extra = kc.run(client), kc.extra_mb(client)
        if thin is None or run is None or extra is None:
            rows.append(("kube_clients", f"{client}", "not measured", "", ""))
            continue
        rows += [
            ("kube_clients", f"{client} / thin client: RSS synced, after churn; CPU s",
             f"{run.rss_synced / thin.rss_synced:.2f}, {run.rss_steady / thin.rss_steady:.2f}; "
             f"{run.cpu / thin.cpu:.2f}", "", ""),
            ("kube_clients", f"exporter RSS with {client} instead of the thin client "
             f"({m.final_mb:.1f} MB {extra:+.1f} MB)", f"{m.final_mb + extra:.1f} MB",
             f"<= {memory.TARGET_MB:.0f} MB", _mark(m.final_mb + extra <= memory.TARGET_MB)),
        ]  # fmt: skip
    return rows


def _kube_clients_section(kc: kube_clients.KubeClientsResult, m: memory.MemoryResult) -> str:
    if kc.skipped:
        return f"Skipped in this run: {kc.skipped}."
    decisions = "\n".join(f"- {line}" for line in kube_clients.decision(kc, m.final_mb))
    return f"""\
The node's pod LIST answer was {kc.list_bytes / memory.MB:.1f} MB of JSON. Ratios are to the
thin client; CPU is the child's (`time.process_time`, threads included), split into the
first LIST and the {kube_clients.STEADY_SECONDS:.0f} s after it.

{kube_clients.table(kc)}

Adopt a library only if the exporter would still hold its budget: the whole exporter's RSS
in this run ({m.final_mb:.1f} MB, memory above) plus the library's extra RSS over the thin
client in the exporter's process (the last column's difference):

{decisions}"""


def _kube_section(k: kube_memory.KubeMemoryResult) -> str:
    if k.skipped:
        return f"Skipped in this run: {k.skipped}."
    mb = memory.MB
    per_pod = k.list_bytes / k.pods / 1024
    return f"""\
The node's pod LIST answer (what the first sync decodes) was {k.list_bytes / mb:.1f} MB of
JSON, {per_pod:.1f} KiB per pod (managed fields included, as the API server
sends them); creating and running the {k.pods} pods took the parent {k.create_seconds:.1f} s.
The watcher holds {k.namespaces} namespaces and applied {k.events} watch events through the
churn; errors: {k.errors or "none"}.

| child process | RSS MB | peak (VmHWM) MB |
|---|---:|---:|
| after imports, before the watcher | {k.rss_before / mb:.1f} | |
| synced: {k.pods} pods from the first LIST | {k.rss_synced / mb:.1f} | {k.hwm_synced / mb:.1f} |
| all {k.pods} pods deleted, seen by the watch | {k.rss_empty / mb:.1f} | |
| {k.pods} new pods created, seen by the watch | {k.rss_resynced / mb:.1f} | \
{k.hwm_resynced / mb:.1f} (since the first sync) |

A synced watcher, its connection closed, holds {k.held_bytes / 1024:.0f} KiB under
tracemalloc (store and view); one on a node without pods holds
{k.held_empty_bytes / 1024:.0f} KiB (namespaces and fixed parts), so a pod costs
{k.per_pod_bytes:.0f} bytes. RSS is far above that after the first sync: the LIST is
decoded whole (`json.loads` of the {k.list_bytes / mb:.1f} MB answer) and the objects the
store keeps (its strings are the decoded tree's own) lie among the tree's in the
allocator's arenas, so freeing the tree gives little back. With the pods deleted those
arenas empty and RSS falls; the store rebuilt from watch events, one object at a time,
costs little. The peak of the churn is its own (VmHWM reset after the first sync).
Every re-list (after 410 Gone or an API server outage) decodes a whole answer again."""


def markdown(
    r: render.RenderResult,
    c: collection.CollectionResult,
    a: attribution.AttributionBenchResult,
    e: engines.EnginesBenchResult,
    m: memory.MemoryResult,
    k: kube_memory.KubeMemoryResult,
    kc: kube_clients.KubeClientsResult,
    x: scrape.ScrapeBenchResult,
    seconds: float,
) -> str:
    info = machine()
    figures = [
        ("render", "/metrics render, ours / floor (paired median)",
         f"{r.paired_ratio:.3f}", f"<= {render.TARGET_RATIO}", _mark(r.ok)),
        ("render", "render time, ours / floor (medians)",
         f"{r.ours_ms:.3f} ms / {r.floor_ms:.3f} ms", "", ""),
        ("render", "HTTP GET /metrics p50 / p90 (text)",
         f"{r.http_p50_ms:.2f} ms / {r.http_p90_ms:.2f} ms", "", ""),
        ("render", "HTTP GET /metrics p50 (OpenMetrics)", f"{r.http_om_p50_ms:.2f} ms", "", ""),
        ("render", "body size (text / OpenMetrics)",
         f"{r.http_body_bytes} / {r.http_om_body_bytes} bytes", "", ""),
        *_scrape_rows(x),
        ("collection", "CPU per cycle (median / mean)",
         f"{c.cpu_ms_median:.2f} ms / {c.cpu_ms_mean:.2f} ms", "", ""),
        ("collection", "CPU per device", f"{c.per_device_us:.0f} µs", "", ""),
        ("collection", "wall per cycle p50 / p99",
         f"{c.wall_p50_ms:.2f} ms / {c.wall_p99_ms:.2f} ms", "", ""),
        ("collection", "NVML calls per cycle (steady / first)",
         f"{c.calls} / {c.cold_calls}", "", ""),
        ("collection", "share of cycle inside simulated NVML", f"{c.simulator_share:.0%}", "", ""),
        ("collection", "cycle time outside simulated NVML / of it build_families",
         f"{c.own_ms:.2f} ms / {c.build_families_ms:.2f} ms", "", ""),
        *_attribution_rows(a),
        *_engines_rows(e),
        *_memory_rows(m),
        ("memory", "RSS after imports, before any collection",
         f"{m.baseline_rss_bytes / memory.MB:.1f} MB", "", ""),
        ("memory", "of the imports, grpc + protobuf (the kubelet client)",
         f"{m.grpc_mb:+.1f} MB", "", ""),
        *_kube_rows(k),
        *_kube_clients_rows(kc, m),
    ]  # fmt: skip
    rows = "\n".join(f"| {b} | {f} | {v} | {t} | {ok} |" for b, f, v, t, ok in figures)
    return f"""# Benchmark results

Generated by `python -m bench.run_all` (`make bench`); rerunning it rewrites this
file. Edit the text in `bench/run_all.py`, not here.

- Command: `.venv/bin/python -m bench.run_all` from the repository root
- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {_commit()}; run took {seconds:.0f} s
- Machine: nproc {info["nproc"]}, {info["cpu"]}, {info["platform"]}
- Python {info["python"]}, prometheus_client {version("prometheus_client")}, \
aiohttp {version("aiohttp")}, nvidia-ml-py {version("nvidia-ml-py")}, \
grpcio {version("grpcio")}, protobuf {version("protobuf")}
- Node: the simulated `dense-h100` scenario (8x H100, 7x 1g.10gb MIG each: 56 devices) \
unless said otherwise; the simulated clock moves 10 s per collection.

Shared CI-class machines are noisy: compare ratios measured side by side in one
run; absolute times are context only.

| benchmark | figure | value | target | met |
|---|---|---:|---:|:-:|
{rows}

## render: `/metrics` against the prometheus_client floor (`bench/render.py`)

Serializes the `/metrics` registry of a steady dense-h100 snapshot. *Ours* is
`generate_latest` over `build_registry(SnapshotCollector)`, built once as `serve`
builds it, after `SnapshotCollector.update(snapshot)`. The *floor* is
`generate_latest` over a registry whose one collector returns the list
`build_families(snapshot)` built ahead of time, plus the same process, platform
and gc collectors; both serve identical `gpuwork_*` lines (checked). The two
alternate in {render.ROUNDS} ABBA rounds of {render.BATCH} renders; the ratio is the
median of per-round ratios. `SnapshotCollector.update` (the family build, off
the scrape path) took {r.update_ms:.2f} ms on the same snapshot in a tight loop.
For context, {r.http_gets} rounds of HTTP GETs over loopback against `make_app`
on an ephemeral port (aiohttp client, one keep-alive connection), with
`Accept: */*` (text) and with Prometheus' OpenMetrics-first Accept header. The
response is not compressed (Content-Encoding: {r.http_encoding}) although the
client accepts gzip.

## scrape: gpuwork-exporter beside prometheus-node-exporter (`bench/scrape.py`)

{_scrape_section(x)}

## collection: cycle cost (`bench/collection.py`)

CPU (`time.process_time`, so the NVML worker thread counts) and wall time of
{c.cycles} `Collection.collect_once` cycles after {collection.WARMUP} warm-up cycles: the
NVML read in the worker thread, the snapshot, and `SnapshotCollector.update`.
NVML calls are `NvmlReading.nvml_calls`. The simulated NVML is Python, so most
of a cycle is the simulator: a separate {collection.PROFILE_CYCLES}-cycle pass wraps it in a
timer to split the cycle into time inside simulated NVML calls and the rest
(the exporter's own work plus the wrapper's overhead); `build_families` there is
timed inside the loop, garbage collections included. The scaling table runs
four nodes of 1g.10gb MIG instances with one busy pod each (1 = 1 GPU x1,
8 = 2 GPUs x4, 56 = 8 GPUs x7, 112 = 16 GPUs x7) round-robin, one cycle of each
per round for {collection.SCALING_ROUNDS} rounds; figures are medians.

{collection.scaling_table(c.scaling)}

## attribution: cycle cost with pod attribution (`bench/attribution.py`)

Two simulated dense-h100 nodes ({a.devices} devices; {a.holdings} pods holding them, {a.tenants}
tenants), each with its own manual clock moving 10 s per cycle. One `Collection` reads NVML
only (the core); the other also runs attribution as `serve` builds it with the default
settings (`build_collection`): the real `PodResourcesClient` over gRPC to a
`FakeKubelet` on a unix socket, the real `ProcessPods` over a written /proc, the default
tenant rules, and the `WasteLedger` (on the node's clock). Engine scraping, a source of its
own, is off on both.
They alternate core, attributed, attributed, core for {a.rounds} rounds after
{attribution.WARMUP} warm-up cycles each. CPU is `time.process_time`: the sources' worker
threads count, and so do the fake kubelet's gRPC server threads, which run in this process;
the "with" figure therefore overestimates what a real node's exporter spends (it does not build the
kubelet's answers). The ratio and the added time are medians of per-round figures.

The parts were then timed alone on the last reading, one call of each per round
({attribution.PART_REPEATS} rounds, median CPU). What the parts do not cover is spent where no
part was timed alone: the collection's hops to the kubelet's and /proc's worker threads,
switches between them, the event loop and the gRPC threads, and the garbage collection of
more objects.

{attribution.parts_table(a)}

A scrape does no attribution work: `SnapshotCollector.collect` returns the list built at the
end of the cycle. Rendering `/metrics` ({attribution.RENDER_ROUNDS} ABBA rounds) of the
attributed snapshot took {a.render_with_ms:.2f} ms for {a.samples_with} `gpuwork_*` samples,
against {a.render_floor_ms:.2f} ms for its families prebuilt (ours / floor
{a.render_ratio:.3f}), and {a.render_plain_ms:.2f} ms for the core snapshot's
{a.samples_plain}: the difference is the extra samples. The fake kubelet answered
{a.render_kubelet_calls} calls during all the renders.

## engines: 56 vLLM engines scraped every cycle (`bench/engines.py`)

{_engines_section(e)}

## memory: resident memory over {memory.COLLECTIONS} collections (`bench/memory.py`)

A fresh `python -m bench.memory --child` process builds the exporter as `serve` builds it: a
`Collection` with every source, both ledgers and engine scraping (`build_collection`,
default settings), the `/metrics` exposition and the web app
on a loopback port, over the simulated dense-h100 node. It runs {memory.COLLECTIONS} cycles of
`collect_once` (NVML, attribution, 56 engine scrapes, snapshot, family build) plus a
`generate_latest` render, sampling VmRSS, Python's allocated block count and the simulated
NVML's outstanding GPM samples every {memory.EVERY} collections. The collection's own clock
(the state ledger's 60 s window) is a manual one moving 10 s a cycle, as between a real
node's collections, however fast the cycles follow each other here.

The measured process is the whole exporter as on a real node: the 56 engines serve from a
process of their own (`python -m simulator.engines`, started by the benchmark's
parent; {m.engines_rss_bytes / memory.MB:.1f} MB of RSS there, not counted), and the simulated
node reads on a real clock from the engines' own start time, so both agree. Two pieces of the
simulation stay inside the measured process: the fake kubelet's gRPC server (small: its
grpc and protobuf imports are the client's too) and the written /proc (files on disk). The
{memory.COLLECTIONS} collections took {m.seconds:.0f} s. RSS was \
{m.sources_rss_bytes / memory.MB:.1f} MB once the simulated sources served, before the
first collection. "Not growing" is taken as at most {memory.GROWTH_LIMIT_MB:.0f} MB of RSS
growth from collection 200 to {memory.COLLECTIONS}.

The target is the issue's {memory.TARGET_MB:.0f} MB for the whole exporter (NVML, pod
attribution, engine scraping), and it is \
{"met" if m.final_mb <= memory.TARGET_MB else "not met"}. The earlier
{memory.CORE_TARGET_MB:.0f} MB target was set for the NVML core alone, before the kubelet
client (whose grpc and protobuf imports alone add {m.grpc_mb:.1f} MB) and engine scraping;
this process imports all of it ({m.baseline_rss_bytes / memory.MB:.1f} MB before the first
collection), so that target no longer describes it and is not applied here.

Two more fresh children, for context and without a target: as
`gpuwork-exporter --simulate dense-h100` builds it (the engines' HTTP servers
inside the process, their serving work and buffers counted; the node on the manual clock),
and without engine scraping (no engines anywhere). A real node's exporter also keeps the
Kubernetes API watch, measured on its own in kube_memory.

| process | RSS after {memory.COLLECTIONS} MB | growth 200 -> {memory.COLLECTIONS} MB | \
collections s |
|---|---:|---:|---:|
{_memory_variants(m)}

The whole exporter's samples:

{memory.samples_table(m)}

Most of the RSS is imports, present before the first collection:

{memory.imports_table(m)}

## kube_memory: the API watch with 1,000 pods on the node (`bench/kube_memory.py`)

A real etcd and kube-apiserver v1.20 on loopback (`harness/kube_apiserver.py`; the binary from
`$GPUWORK_KUBE_APISERVER` or `make kube-apiserver`'s cache, never built here). The parent
creates {kube_memory.PODS} pods bound to the node (`spec.nodeName` set; Helm-style labels,
seven annotations, an init container and three containers with five named ports, an owner
reference, and a kubelet-like running status), {kube_memory.OTHER_PODS} on another node,
spread over {kube_memory.NAMESPACES} tenant namespaces. A fresh
`python -m bench.kube_memory --child` process imports the exporter (`exporter.cli`) and runs a
`ClusterWatcher` with the exporter's own token (RBAC from `deploy/rbac.yaml`) and the
default tenant rules' label keys until it holds every pod running. The parent then deletes
the {kube_memory.PODS} pods and creates {kube_memory.PODS} new ones; the child samples RSS
once the watcher has seen each. Last, the child syncs two new watchers under tracemalloc.

{_kube_section(k)}

## kube_clients: the thin client against kubernetes_asyncio and kubernetes (`bench/kube_clients.py`)

The same kind of cluster and pods as kube_memory ({kube_clients.PODS} on the node,
{kube_clients.OTHER_PODS} on another, {kube_clients.NAMESPACES} tenant namespaces). One fresh
`python -m bench.kube_clients --child CLIENT` process per client lists and watches the node's
pods (`fieldSelector=spec.nodeName`) and the namespaces with the exporter's token: the thin
client (`ClusterWatcher`); `kubernetes_asyncio` and `kubernetes` (sync, one thread per
watch), each listing and then running `watch.Watch().stream` from the list's
resourceVersion, the objects kept in a dict as an informer keeps them. After the sync the
parent makes the same churn for each ({kube_clients.CHURN} pod status updates in
{kube_clients.CHURN_BATCHES} batches a second apart); RSS and CPU are taken again
{kube_clients.STEADY_SECONDS:.0f} s after the sync, the churn seen. "Import alone" is the RSS
a fresh interpreter gains importing the client; the last column is the same process once it
has imported `exporter.cli` too, so dependencies the exporter has anyway count once.

{_kube_clients_section(kc, m)}
"""


def main() -> None:
    started = time.perf_counter()
    print("== render", flush=True)
    r = render.run()
    print(render.summary(r), flush=True)
    print("== collection", flush=True)
    c = collection.run()
    print(collection.summary(c), flush=True)
    print("== attribution", flush=True)
    a = attribution.run()
    print(attribution.summary(a), flush=True)
    print("== engines (56 simulated vLLM engines in their own process)", flush=True)
    e = engines.run()
    print(engines.summary(e), flush=True)
    print("== memory (fresh processes)", flush=True)
    m = memory.run()
    print(memory.summary(m), flush=True)
    print("== kube memory (real kube-apiserver, fresh process)", flush=True)
    k = kube_memory.run()
    print(kube_memory.summary(k), flush=True)
    print("== kube clients (real kube-apiserver, a fresh process per client)", flush=True)
    kc = kube_clients.run()
    print(kube_clients.summary(kc, m.final_mb), flush=True)
    print("== scrape (gpuwork-exporter beside prometheus-node-exporter; cycles at 2x)",
          flush=True)  # fmt: skip
    x = scrape.run()
    print(scrape.summary(x), flush=True)
    text = markdown(r, c, a, e, m, k, kc, x, time.perf_counter() - started)
    if "--no-write" not in sys.argv[1:]:
        RESULTS.write_text(text)
        print(f"== wrote {RESULTS}")
    print(text)


if __name__ == "__main__":
    main()
