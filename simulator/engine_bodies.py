"""What a simulated engine serves on `/metrics` for a `ModelStats`, produced the way the
real engine produces it, and the hostile variants of those bodies.

vLLM, SGLang and trtllm-serve expose their metrics with prometheus_client, so here
prometheus_client writes their bodies and negotiates the format (`choose_encoder` on the
`Accept` header), exactly as in the engines' servers:

- vLLM (one API server process, V1 engine): a registry with one collector. The families
  gpuwork reads come from the stats; every other family of the reference exposition
  (`reference/vllm-0.33-v1.metrics.txt`: process_*, python_*, the other vllm: families,
  http_*) is read from that file with prometheus_client's own parser and served with the
  model name and the process start time of the stats (each `_created` keeps its offset
  after the start, as in the reference).
- SGLang and trtllm-serve run prometheus_client in multiprocess mode (SGLang always,
  trtllm-serve through `set_prometheus_multiproc_dir`): the values are written into the
  engine's own multiprocess directory as the library's `MmapedDict` files
  (`counter_<pid>.db`, `gauge_<mode>_<pid>.db`, `histogram_<pid>.db`) and read back by
  `MultiProcessCollector`. So: no `_created`, no process_* families, labels sorted,
  histograms re-accumulated from per-bucket counts, trtllm's gauges (mode `all`) with a
  `pid` label, SGLang's (mode `mostrecent`) without. The collector reads the files in name
  order (the library takes the directory's order) so that a body does not depend on the
  file system.
- TGI: the Rust metrics-exporter-prometheus crate's text, written here by hand (counters
  without `_total`, integer counts, Rust float formatting, a blank line after each
  family). It cannot serve OpenMetrics and ignores the `Accept` header.

A field that is None is not served: a prometheus_client family without children (vLLM
keeps its HELP and TYPE lines; a multiprocess family without any value is absent).

`corrupt` turns a served body into what a broken or hostile engine sends (`BodyFault`).
"""

from __future__ import annotations

import bisect
import functools
import glob
import math
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from exporter.model import Histogram, ModelStats
from simulator.scenario import BodyFault  # the scenario's word for a hostile body

ENGINE_NAMES = ("vllm", "sglang", "tgi", "trtllm")
TEXT_ACCEPT = "text/plain;version=0.0.4"
OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0"
TGI_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
VLLM_REFERENCE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
VLLM_REFERENCE_FILE = "reference/vllm-0.33-v1.metrics.txt"  # in this package

# The reference exposition of a vLLM 0.33 V1 server, as that server wrote it.
_VLLM_REFERENCE = (
    resources.files(__package__).joinpath(VLLM_REFERENCE_FILE).read_text(encoding="utf-8")
)

HTML_ERROR_PAGE = b"""<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


# ------------------------------------------------------------------------------ the API


def render_exposition(
    engine: str, stats: ModelStats, *, process_start_time: float, openmetrics: bool = False
) -> bytes:
    """The body `engine` serves for `stats`, its process started at `process_start_time`
    (unix seconds): to `Accept: text/plain;version=0.0.4`, or with `openmetrics` to
    `Accept: application/openmetrics-text;version=1.0.0` (TGI: text either way)."""
    accept = OPENMETRICS_ACCEPT if openmetrics else TEXT_ACCEPT
    return serve_exposition(engine, stats, process_start_time=process_start_time, accept=accept)[0]


def serve_exposition(
    engine: str, stats: ModelStats, *, process_start_time: float, accept: str
) -> tuple[bytes, str]:
    """(body, Content-Type) as `engine`'s server answers a request with this `Accept`."""
    return _shared(engine, stats.model).serve(
        stats, process_start_time=process_start_time, accept=accept
    )


class EngineExposition:
    """One simulated engine's `/metrics`: its registry, and for a multiprocess engine its
    own multiprocess directory, reused from one request to the next. `close()` removes the
    directory. Thread-safe."""

    def __init__(self, engine: str) -> None:
        if engine not in ENGINE_NAMES:
            raise ValueError(f"no renderer for engine {engine!r}")
        self.engine = engine
        self._lock = threading.Lock()
        self._vllm: _VllmCollector | None = None
        self._files: _MultiprocessFiles | None = None
        self.registry = CollectorRegistry()
        if engine == "vllm":
            self._vllm = _VllmCollector()
            self.registry.register(self._vllm)
        elif engine in _MULTIPROCESS:
            self._files = _MultiprocessFiles(self.registry)

    def serve(
        self, stats: ModelStats, *, process_start_time: float, accept: str
    ) -> tuple[bytes, str]:
        """(body, Content-Type) for a request with this `Accept` header."""
        if self.engine == "tgi":
            return _tgi(stats).encode(), TGI_CONTENT_TYPE
        encoder, content_type = choose_encoder(accept)
        with self._lock:
            if self._vllm is not None:
                self._vllm.stats, self._vllm.start = stats, process_start_time
                return self._vllm.encode(encoder, content_type), content_type
            assert self._files is not None
            self._files.write(_MULTIPROCESS[self.engine](stats))
            return encoder(self.registry), content_type

    def render(
        self, stats: ModelStats, *, process_start_time: float, openmetrics: bool = False
    ) -> bytes:
        accept = OPENMETRICS_ACCEPT if openmetrics else TEXT_ACCEPT
        return self.serve(stats, process_start_time=process_start_time, accept=accept)[0]

    def close(self) -> None:
        with self._lock:
            if self._files is not None:
                self._files.close()


_SHARED_MAX = 64
_shared_lock = threading.Lock()
_shared_expositions: OrderedDict[tuple[str, str], EngineExposition] = OrderedDict()


def _shared(engine: str, model: str) -> EngineExposition:
    """The exposition that `render_exposition` uses for this engine and model: kept for
    the next call, so that each keeps its multiprocess files (least recently used out)."""
    key = (engine, model)
    with _shared_lock:
        exposition = _shared_expositions.get(key)
        if exposition is None:
            exposition = _shared_expositions[key] = EngineExposition(engine)
            if len(_shared_expositions) > _SHARED_MAX:
                _, evicted = _shared_expositions.popitem(last=False)
                evicted.close()
        else:
            _shared_expositions.move_to_end(key)
        return exposition


# ---------------------------------------------------------------------------- vLLM

# Family (as prometheus_client names it: counters without `_total`) -> the ModelStats
# field it shows, for the families gpuwork reads; all finished requests count as
# finished_reason="stop".
_VLLM_FIELDS = {
    "vllm:num_requests_running": "requests_running",
    "vllm:num_requests_waiting": "requests_waiting",
    "vllm:kv_cache_usage_perc": "kv_cache_usage_ratio",
    "vllm:num_preemptions": "preemptions",
    "vllm:prompt_tokens": "prompt_tokens",
    "vllm:generation_tokens": "generation_tokens",
    "vllm:request_success": "requests_finished",
    "vllm:time_to_first_token_seconds": "time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds": "inter_token_latency_seconds",
}
_VLLM_SHARE = ("finished_reason", "stop")  # the request_success series that counts them

_Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Series:
    labels: _Labels  # without `le`, model as in the reference
    created: float | None  # its `_created` after the process start, as in the reference


@dataclass(frozen=True, slots=True)
class _Template:
    """A family of the reference: served as it is (`field` None) or from the stats."""

    family: Metric  # `_created` samples inside, each after its series
    field: str | None
    series: tuple[_Series, ...]


@dataclass(frozen=True, slots=True)
class _Dynamic:
    """A family served from the stats, its label values and `_created` values ready."""

    name: str
    documentation: str
    type: str
    field: str
    labelnames: tuple[str, ...]
    series: tuple[tuple[tuple[str, ...], float | None, bool], ...]  # values, created, share

    def family(self, stats: ModelStats) -> Metric:
        """The family as prometheus_client's Counter, Gauge or Histogram writes it:
        each series' samples followed by its `_created`."""
        value = getattr(stats, self.field)
        if self.type == "histogram":
            histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for values, created, _ in self.series if value is not None else ():
                buckets = [(_go(le), n) for le, n in value.buckets]
                histogram.add_metric(values, buckets, value.sum)
                if created is not None:
                    labels = dict(zip(self.labelnames, values, strict=True))
                    histogram.add_sample(f"{self.name}_created", labels, created)
            return histogram
        if self.type == "counter":
            counter = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for values, created, share in self.series if value is not None else ():
                counter.add_metric(values, value if share else 0.0, created=created)
            return counter
        gauge = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, _, _ in self.series if value is not None else ():
            gauge.add_metric(values, value)
        return gauge


class _VllmCollector:
    """vLLM's registry, as its API server process fills it; `stats` and `start` are set
    before each collection."""

    def __init__(self) -> None:
        self.stats = ModelStats(model=VLLM_REFERENCE_MODEL)
        self.start = 0.0
        # (model, start, content type) -> the body in parts: the families that do not
        # follow the stats already encoded, the others to encode at each request
        self._encoded: dict[tuple[str, float, str], tuple[bytes | _Dynamic, ...]] = {}

    def collect(self) -> Iterator[Metric]:
        for item in _vllm_families(self.stats.model, self.start):
            yield item.family(self.stats) if isinstance(item, _Dynamic) else item

    def encode(self, encoder: Callable[[_Families], bytes], content_type: str) -> bytes:
        """What `encoder(registry)` returns, the families that do not change encoded once
        per model, start and format: the encoder writes family after family, and ends
        with its trailer (OpenMetrics: `# EOF`)."""
        key = (self.stats.model, self.start, content_type)
        parts = self._encoded.get(key)
        trailer = encoder(_Families(()))
        if parts is None:
            if len(self._encoded) >= 8:
                self._encoded.clear()
            built: list[bytes | _Dynamic] = []
            run: list[Metric] = []
            for item in (*_vllm_families(*key[:2]), None):
                if isinstance(item, Metric):
                    run.append(item)
                    continue
                if run:
                    built.append(encoder(_Families(run)).removesuffix(trailer))
                    run = []
                if item is not None:
                    built.append(item)
            parts = self._encoded[key] = tuple(built)
        body = [
            encoder(_Families((part.family(self.stats),))).removesuffix(trailer)
            if isinstance(part, _Dynamic)
            else part
            for part in parts
        ]
        body.append(trailer)
        return b"".join(body)


@dataclass(frozen=True, slots=True)
class _Families:
    """A collector of these families."""

    families: Sequence[Metric]

    def collect(self) -> Iterable[Metric]:
        return self.families


@functools.cache
def _vllm_templates() -> tuple[tuple[_Template, ...], float]:
    """The reference's families, each counter and histogram with its `_created` samples
    back inside (the text format shows them as gauges `<family>_created`), and the
    reference's process start time."""
    help_texts = {}  # the parser strips trailing blanks; vLLM's HELP keeps them
    for line in _VLLM_REFERENCE.splitlines():
        if line.startswith("# HELP "):
            name, _, text = line[7:].partition(" ")
            help_texts[name] = text
    families = list(text_string_to_metric_families(_VLLM_REFERENCE))
    by_name = {f.name: f for f in families}
    start = next(
        s.value for f in families for s in f.samples if s.name == "process_start_time_seconds"
    )
    templates = []
    for family in families:
        base = family.name.removesuffix("_created")
        if base != family.name and by_name.get(base, family).type in ("counter", "histogram"):
            continue  # folded into its family below
        written = f"{family.name}_total" if family.type == "counter" else family.name
        folded = Metric(family.name, help_texts.get(written, family.documentation), family.type)
        created_family = by_name.get(f"{family.name}_created")
        created = {
            _key(s.labels): s.value
            for s in (created_family.samples if created_family is not None else [])
        }
        if family.type not in ("counter", "histogram"):
            created = {}
        series: dict[_Labels, list[Sample]] = {}
        for sample in family.samples:
            series.setdefault(_key(sample.labels, drop="le"), []).append(sample)
        for labels, samples in series.items():
            folded.samples.extend(samples)
            if labels in created:
                folded.samples.append(
                    Sample(f"{family.name}_created", dict(labels), created[labels])
                )
        templates.append(
            _Template(
                family=folded,
                field=_VLLM_FIELDS.get(family.name),
                series=tuple(
                    _Series(labels, created[labels] - start if labels in created else None)
                    for labels in series
                ),
            )
        )
    return tuple(templates), start


def _key(labels: dict[str, str], *, drop: str = "") -> _Labels:
    return tuple((k, v) for k, v in labels.items() if k != drop)


@functools.lru_cache(maxsize=256)
def _vllm_families(model: str, start: float) -> tuple[Metric | _Dynamic, ...]:
    """The reference's families for this model and process start: the static ones ready
    to serve, the ones from the stats ready to fill."""
    templates, reference_start = _vllm_templates()
    items: list[Metric | _Dynamic] = []
    for template in templates:
        family = template.family
        if template.field is not None:
            labelnames = tuple(k for k, _ in template.series[0].labels)
            items.append(
                _Dynamic(
                    name=family.name,
                    documentation=family.documentation,
                    type=family.type,
                    field=template.field,
                    labelnames=labelnames,
                    series=tuple(
                        (
                            tuple(_with_model(dict(s.labels), model).values()),
                            None if s.created is None else start + s.created,
                            family.name != "vllm:request_success" or _VLLM_SHARE in s.labels,
                        )
                        for s in template.series
                    ),
                )
            )
            continue
        static = Metric(family.name, family.documentation, family.type)
        for sample in family.samples:
            value = sample.value
            if sample.name == "process_start_time_seconds":
                value = start
            elif sample.name == f"{family.name}_created":
                value = start + (sample.value - reference_start)
            static.samples.append(
                sample._replace(labels=_with_model(sample.labels, model), value=value)
            )
        items.append(static)
    return tuple(items)


def _go(value: float) -> str:
    """A value as prometheus_client writes it (Go's float formatting)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _with_model(labels: dict[str, str], model: str) -> dict[str, str]:
    return {k: model if k == "model_name" else v for k, v in labels.items()}


# ------------------------------------------------- prometheus_client, multiprocess mode

_Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class _Family:
    """One metric as an engine process declares and sets it."""

    kind: _Kind
    name: str  # counters without `_total`
    help: str
    series: Sequence[tuple[dict[str, str], float | Histogram | None]]
    pid: int  # the process that holds it
    mode: str = ""  # a gauge's multiprocess_mode


# (file name, key, value, timestamp) of one value in a multiprocess directory
_Entry = tuple[str, str, float, float]


@functools.lru_cache(maxsize=8192)
def _mmap_key(metric: str, sample: str, labels: _Labels, help_text: str) -> str:
    names, values = [k for k, _ in labels], [v for _, v in labels]
    return str(mmap_key(metric, sample, names, values, help_text))


def _entries(families: Iterable[_Family]) -> list[_Entry]:
    """The values as the engine's processes write them: a Counter's `<name>_total`, a
    Gauge's value (its timestamp for the `mostrecent` modes), a Histogram's `_sum` and the
    count of each bucket alone (not cumulative)."""
    now = time.time()
    entries: list[_Entry] = []
    for family in families:
        for labels, value in family.series:
            if value is None:
                continue
            pairs = tuple(labels.items())
            if isinstance(value, Histogram):
                file = f"histogram_{family.pid}.db"
                key = _mmap_key(family.name, f"{family.name}_sum", pairs, family.help)
                entries.append((file, key, value.sum, 0.0))
                previous = 0.0
                for le, n in value.buckets:
                    bucket = (*pairs, ("le", _go(le)))
                    key = _mmap_key(family.name, f"{family.name}_bucket", bucket, family.help)
                    entries.append((file, key, n - previous, 0.0))
                    previous = n
            elif family.kind == "counter":
                key = _mmap_key(family.name, f"{family.name}_total", pairs, family.help)
                entries.append((f"counter_{family.pid}.db", key, value, 0.0))
            else:
                key = _mmap_key(family.name, family.name, pairs, family.help)
                stamp = now if "mostrecent" in family.mode else 0.0
                entries.append((f"gauge_{family.mode}_{family.pid}.db", key, value, stamp))
    return entries


class _NameOrderCollector(MultiProcessCollector):
    """prometheus_client's MultiProcessCollector, reading the files in name order."""

    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        super().__init__(registry, path=path)  # type: ignore[no-untyped-call]
        self.path = path

    def collect(self) -> Iterable[Metric]:
        files = sorted(glob.glob(os.path.join(self.path, "*.db")))
        return self.merge(files, accumulate=True)  # type: ignore[no-any-return,no-untyped-call]


class _MultiprocessFiles:
    """One engine's multiprocess directory: rewritten in place while the same series are
    served, written anew when they change."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="gpuwork-engine-")
        self._files: dict[str, MmapedDict] = {}
        self._layout: tuple[tuple[str, str], ...] = ()
        _NameOrderCollector(registry, self._dir.name)

    def write(self, entries: Sequence[_Entry]) -> None:
        layout = tuple((file, key) for file, key, _, _ in entries)
        if layout != self._layout:
            self._remove_files()
            self._layout = layout
        for file, key, value, stamp in entries:
            mmaped = self._files.get(file)
            if mmaped is None:
                path = os.path.join(self._dir.name, file)
                mmaped = self._files[file] = MmapedDict(path)  # type: ignore[no-untyped-call]
            mmaped.write_value(key, value, stamp)  # type: ignore[no-untyped-call]

    def _remove_files(self) -> None:
        for file, mmaped in self._files.items():
            mmaped.close()  # type: ignore[no-untyped-call]
            os.remove(os.path.join(self._dir.name, file))
        self._files.clear()

    def close(self) -> None:
        self._remove_files()
        self._layout = ()
        self._dir.cleanup()


def _spread(bounds: Sequence[float], count: float, mean: float) -> Histogram:
    """A plausible histogram of `count` observations around `mean`: a quarter at or
    below half the mean, the rest at or below twice it."""
    low = bisect.bisect_left(bounds, mean / 2)
    high = bisect.bisect_left(bounds, 2 * mean)
    counts = [0.0] * low + [float(math.floor(count / 4))] * (high - low)
    counts += [count] * (len(bounds) - high)
    buckets = (*zip(bounds, counts, strict=True), (math.inf, count))
    return Histogram(buckets=buckets, count=count, sum=count * mean)


def _total(*values: float | None) -> float:
    return sum(v for v in values if v is not None)


# SGLang: python/sglang/srt/metrics/collector.py (TokenizerMetricsCollector: prompt,
# generation, cached tokens, requests, TTFT, ITL, e2e; SchedulerMetricsCollector: the
# gauges, multiprocess_mode "mostrecent", and the retraction counter), labels from
# tokenizer_manager.py and the scheduler. The tokenizer manager and the scheduler are
# processes of their own.
_SGLANG_E2E_BUCKETS = (
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0,
    200.0, 400.0, 600.0, 1200.0, 1800.0, 2400.0,
)  # fmt: skip
_SGLANG_MAX_TOTAL_TOKENS = 487_000.0
_SGLANG_TOKENIZER_PID = 1  # the server's main process
_SGLANG_SCHEDULER_PID = 97  # a child of it


def _sglang(stats: ModelStats) -> list[_Entry]:
    tokenizer = {"engine_type": "unified", "model_name": stats.model}
    scheduler = {**tokenizer, "moe_ep_rank": "0", "pp_rank": "0", "tp_rank": "0"}
    finished = stats.requests_finished
    running = stats.requests_running or 0.0
    usage = stats.kv_cache_usage_ratio or 0.0

    def tok(kind: _Kind, name: str, help_text: str, value: float | Histogram | None) -> _Family:
        return _Family(kind, name, help_text, [(tokenizer, value)], _SGLANG_TOKENIZER_PID)

    def sched(name: str, help_text: str, value: float | None, kind: _Kind = "gauge") -> _Family:
        mode = "mostrecent" if kind == "gauge" else ""
        return _Family(kind, name, help_text, [(scheduler, value)], _SGLANG_SCHEDULER_PID, mode)

    return _entries([
        tok("counter", "sglang:prompt_tokens", "Number of prefill tokens processed.",
            stats.prompt_tokens),
        tok("counter", "sglang:generation_tokens", "Number of generation tokens processed.",
            stats.generation_tokens),
        tok("counter", "sglang:cached_tokens", "Number of cached prompt tokens.",
            math.floor(_total(stats.prompt_tokens) * 0.3)),
        tok("counter", "sglang:num_requests", "Number of requests processed.", finished),
        tok("counter", "sglang:num_so_requests",
            "Number of structured output requests processed.", 0.0),
        tok("counter", "sglang:num_aborted_requests", "Number of requests aborted.", 0.0),
        tok("histogram", "sglang:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.", stats.time_to_first_token_seconds),
        tok("histogram", "sglang:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.", stats.inter_token_latency_seconds),
        tok("histogram", "sglang:e2e_request_latency_seconds",
            "Histogram of End-to-end request latency in seconds",
            _spread(_SGLANG_E2E_BUCKETS, math.floor(_total(finished)), 6.0)),
        sched("sglang:num_running_reqs", "The number of running requests.",
              stats.requests_running),
        sched("sglang:num_used_tokens", "The number of used tokens.",
              float(round(usage * _SGLANG_MAX_TOTAL_TOKENS))),
        sched("sglang:token_usage", "The token usage.", stats.kv_cache_usage_ratio),
        sched("sglang:gen_throughput", "The generation throughput (token/s).", running * 31.5),
        sched("sglang:num_queue_reqs", "The number of requests in the waiting queue.",
              stats.requests_waiting),
        sched("sglang:num_grammar_queue_reqs",
              "The number of requests in the grammar waiting queue.", 0.0),
        sched("sglang:cache_hit_rate", "The prefix cache hit rate.", 0.3),
        sched("sglang:max_total_num_tokens",
              "Maximum total number of tokens in the KV cache pool.", _SGLANG_MAX_TOTAL_TOKENS),
        sched("sglang:num_retracted_reqs", "The number of retracted requests.", 0.0),
        sched("sglang:num_retracted_requests", "Total number of retracted requests.",
              stats.preemptions, kind="counter"),
        sched("sglang:utilization", "The utilization.", min(running / 64, 1.0)),
        sched("sglang:engine_startup_time", "The time taken for the engine to start up.", 41.7),
        sched("sglang:is_cuda_graph", "Whether the batch is using CUDA graph.", 1.0),
    ])  # fmt: skip


# trtllm-serve: tensorrt_llm/metrics/collector.py (MetricsCollector); labels
# model_name="undefined", engine_type="undefined" (tensorrt_llm/serve/openai_server.py);
# gauges in the default multiprocess_mode "all", which adds a `pid` label.
_TRTLLM_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
_TRTLLM_PID = 1  # trtllm-serve as the container's first process
_TRTLLM_MAX_BLOCKS = 30_000.0


def _trtllm(stats: ModelStats) -> list[_Entry]:
    labels = {"engine_type": "undefined", "model_name": "undefined"}
    finished = stats.requests_finished
    usage = stats.kv_cache_usage_ratio
    count = math.floor(_total(finished))

    def one(kind: _Kind, name: str, help_text: str, value: float | Histogram | None) -> _Family:
        return _Family(kind, name, help_text, [(labels, value)], _TRTLLM_PID, "all")

    return _entries([
        _Family("counter", "trtllm_request_success", "Count of successfully processed requests.",
                [({**labels, "finished_reason": "stop"}, finished),
                 ({**labels, "finished_reason": "length"}, None if finished is None else 0.0)],
                _TRTLLM_PID),
        one("histogram", "trtllm_e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            _spread(_TRTLLM_LATENCY_BUCKETS, count, 6.0)),
        one("histogram", "trtllm_time_to_first_token_seconds",
            "Histogram of time to first token in seconds.", stats.time_to_first_token_seconds),
        one("histogram", "trtllm_time_per_output_token_seconds",
            "Histogram of time per output token in seconds.", stats.inter_token_latency_seconds),
        one("histogram", "trtllm_request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            _spread(_TRTLLM_LATENCY_BUCKETS, count, 0.4)),
        one("counter", "trtllm_prompt_tokens",
            "Cumulative number of prompt (input) tokens processed.", stats.prompt_tokens),
        one("counter", "trtllm_generation_tokens",
            "Cumulative number of generation (output) tokens produced.", stats.generation_tokens),
        one("gauge", "trtllm_kv_cache_hit_rate", "KV cache hit rate", 0.25),
        one("gauge", "trtllm_kv_cache_utilization", "KV cache utilization", usage),
        one("gauge", "trtllm_num_requests_running", "Number of active requests",
            stats.requests_running),
        one("gauge", "trtllm_num_requests_waiting", "Number of queued requests",
            stats.requests_waiting),
        one("counter", "trtllm_num_requests_completed",
            "Total number of completed requests across iterations", finished),
        one("gauge", "trtllm_max_num_active_requests", "Maximum number of active requests",
            2048.0),
        one("gauge", "trtllm_kv_cache_max_blocks", "Maximum number of KV cache blocks",
            _TRTLLM_MAX_BLOCKS),
        one("gauge", "trtllm_kv_cache_used_blocks", "Number of used KV cache blocks",
            float(round((usage or 0.0) * _TRTLLM_MAX_BLOCKS))),
    ])  # fmt: skip


_MULTIPROCESS: dict[str, Callable[[ModelStats], list[_Entry]]] = {
    "sglang": _sglang,
    "trtllm": _trtllm,
}


# --------------------------------------------------------------------------------- TGI

# router/src/server.rs: the duration buckets (35, geometric from 0.0001 * 1.5), the
# token-count buckets (100, multiples of max_input_tokens / 100 and max_total_tokens / 100);
# the launcher's defaults: max_input_tokens 4095, max_total_tokens 4096.
_TGI_DURATION_BUCKETS = tuple(0.0001 * 1.5**i for i in range(1, 36))
_TGI_INPUT_BUCKETS = tuple((4095 / 100) * (i + 1) for i in range(100))
_TGI_TOTAL_BUCKETS = tuple((4096 / 100) * (i + 1) for i in range(100))
_TGI_HELP = {
    "tgi_request_success": "Number of successful requests",
    "tgi_request_count": "Total number of requests",
    "tgi_queue_size": "Current queue size",
    "tgi_batch_current_size": "Current batch size",
    "tgi_batch_current_max_tokens": "Maximum tokens for the current batch",
    "tgi_request_input_length": "Input token length per request",
    "tgi_request_generated_tokens": "Generated tokens per request",
    "tgi_request_max_new_tokens": "Maximum new tokens per request",
    "tgi_request_duration": "Total time spent processing the request",
    "tgi_request_queue_duration": "Time spent in the queue per request",
    "tgi_request_mean_time_per_token_duration": "Mean time per token per request",
}


def _rust(value: float) -> str:
    """An f64 as Rust's `Display` writes it: integral values without a fraction."""
    if value == math.inf:
        return "inf"
    if math.isfinite(value) and value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


@functools.lru_cache(maxsize=256)
def _rust_bucket_heads(name: str, bounds: tuple[float, ...]) -> tuple[str, ...]:
    return tuple(
        f'{name}_bucket{{le="{"+Inf" if le == math.inf else _rust(le)}"}} ' for le in bounds
    )


class _RustWriter:
    """Families as the metrics-exporter-prometheus crate writes them."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def _head(self, name: str, kind: str) -> None:
        help_text = _TGI_HELP.get(name)
        if help_text is not None:
            self.parts.append(f"# HELP {name} {help_text}\n")
        self.parts.append(f"# TYPE {name} {kind}\n")

    def scalar(self, name: str, kind: str, value: float | None) -> None:
        if value is None:
            return
        self._head(name, kind)
        shown = str(math.floor(value)) if kind == "counter" else _rust(value)
        self.parts.append(f"{name} {shown}\n\n")

    def histogram(self, name: str, histogram: Histogram | None) -> None:
        if histogram is None:
            return
        self._head(name, "histogram")
        heads = _rust_bucket_heads(name, tuple(le for le, _ in histogram.buckets))
        self.parts.extend(
            f"{head}{math.floor(n)}\n"
            for head, (_, n) in zip(heads, histogram.buckets, strict=True)
        )
        self.parts.append(f"{name}_sum {_rust(histogram.sum)}\n")
        self.parts.append(f"{name}_count {math.floor(histogram.count)}\n\n")

    def text(self) -> str:
        return "".join(self.parts)


def _tgi(stats: ModelStats) -> str:
    finished = math.floor(_total(stats.requests_finished))
    seen = finished + math.floor(_total(stats.requests_running, stats.requests_waiting))
    w = _RustWriter()
    w.scalar("tgi_request_count", "counter", float(seen))
    w.scalar("tgi_request_success", "counter", stats.requests_finished)
    w.scalar("tgi_queue_size", "gauge", stats.requests_waiting)
    w.scalar("tgi_batch_current_size", "gauge", stats.requests_running)
    w.scalar("tgi_batch_current_max_tokens", "gauge", _total(stats.requests_running) * 1024)
    w.scalar("tgi_batch_max_total_tokens", "gauge", 65536.0)
    if stats.prompt_tokens is not None:
        mean = stats.prompt_tokens / seen if seen else 0.0
        shape = _spread(_TGI_INPUT_BUCKETS, float(seen), mean)
        w.histogram("tgi_request_input_length", _with_sum(shape, stats.prompt_tokens))
    if stats.generation_tokens is not None:
        mean = stats.generation_tokens / finished if finished else 0.0
        shape = _spread(_TGI_TOTAL_BUCKETS, float(finished), mean)
        w.histogram("tgi_request_generated_tokens", _with_sum(shape, stats.generation_tokens))
    w.histogram("tgi_request_max_new_tokens", _spread(_TGI_TOTAL_BUCKETS, float(seen), 512.0))
    w.histogram("tgi_request_duration", _spread(_TGI_DURATION_BUCKETS, float(finished), 6.0))
    w.histogram("tgi_request_queue_duration", _spread(_TGI_DURATION_BUCKETS, float(finished), 0.2))
    w.histogram("tgi_request_mean_time_per_token_duration", stats.inter_token_latency_seconds)
    return w.text()


def _with_sum(histogram: Histogram, total: float) -> Histogram:
    return Histogram(buckets=histogram.buckets, count=histogram.count, sum=total)


# ---------------------------------------------------------------------- hostile bodies


# engine -> (the sample that shows prompt tokens, the one that shows generation tokens)
TOKEN_SAMPLES = {
    "vllm": ("vllm:prompt_tokens_total", "vllm:generation_tokens_total"),
    "sglang": ("sglang:prompt_tokens_total", "sglang:generation_tokens_total"),
    "trtllm": ("trtllm_prompt_tokens_total", "trtllm_generation_tokens_total"),
    "tgi": ("tgi_request_input_length_sum", "tgi_request_generated_tokens_sum"),
}
INVALID_UTF8 = b"\xff\xfe"
COUNTER_DIP_RATIO = 0.9
_PAIR = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def corrupt(body: bytes, fault: BodyFault, engine: str) -> bytes:
    """`body`, served by `engine`, as the fault makes it (text or OpenMetrics alike). A
    fault on a sample the body does not hold leaves the body as it is."""
    if engine not in TOKEN_SAMPLES:
        raise ValueError(f"no renderer for engine {engine!r}")
    prompt, generation = TOKEN_SAMPLES[engine]
    if fault is BodyFault.HTML_200:
        return HTML_ERROR_PAGE
    if fault is BodyFault.TRUNCATED:
        return _truncated(body)
    target = prompt if fault in (BodyFault.INVALID_UTF8, BodyFault.NEGATIVE_VALUE) else generation
    found = _find_sample(body, target)
    if found is None:
        return body
    start, end = found
    line = body[start:end]
    head, _, value_text = line.rpartition(b" ")
    value = float(value_text)
    if fault is BodyFault.INVALID_UTF8:
        return _invalid_utf8(body, start, end, target)
    if fault is BodyFault.DUPLICATE_SERIES:
        twin = _reordered(head) + b" " + _format(engine, 2 * value)
        return body[:end] + b"\n" + twin + body[end:]
    if fault is BodyFault.NAN_VALUE:
        new = b"NaN"
    elif fault is BodyFault.NEGATIVE_VALUE:
        new = _format(engine, -value if value > 0 else -5.0)
    else:  # COUNTER_DIP
        new = _format(engine, value * COUNTER_DIP_RATIO)
    return body[:start] + head + b" " + new + body[end:]


def _find_sample(body: bytes, name: str) -> tuple[int, int] | None:
    """(start, end) of the first sample line of `name`, its newline excluded; the name as
    written, or as OpenMetrics escapes it (`:` as `_`)."""
    for written in dict.fromkeys((name, name.replace(":", "_"))):
        for follow in (b"{", b" "):
            prefix = written.encode() + follow
            if body.startswith(prefix):
                start = 0
            else:
                at = body.find(b"\n" + prefix)
                if at < 0:
                    continue
                start = at + 1
            end = body.find(b"\n", start)
            return start, len(body) if end < 0 else end
    return None


def _format(engine: str, value: float) -> bytes:
    return (_rust(value) if engine == "tgi" else _go(value)).encode()


def _reordered(head: bytes) -> bytes:
    """A sample's name and labels with the labels in reverse order."""
    name, brace, rest = head.partition(b"{")
    if not brace:
        return head
    pairs = _PAIR.findall(rest)
    return name + b"{" + b",".join(k + b'="' + v + b'"' for k, v in reversed(pairs)) + b"}"


def _invalid_utf8(body: bytes, start: int, end: int, name: str) -> bytes:
    """The bytes in the middle of the line's model label value; a sample without one
    (TGI) gets them in its family's HELP text instead."""
    line = body[start:end]
    for label in (b'model_name="', b'model="'):
        at = line.find(label)
        if at >= 0:
            value_start = at + len(label)
            value_end = line.find(b'"', value_start)
            middle = start + (value_start + max(value_end, value_start)) // 2
            return body[:middle] + INVALID_UTF8 + body[middle:]
    family = name.removesuffix("_sum").encode()
    help_line = body.find(b"# HELP " + family + b" ")
    if help_line < 0:
        return body[:start] + INVALID_UTF8 + body[start:]
    middle = help_line + len(b"# HELP ") + len(family) + 1
    return body[:middle] + INVALID_UTF8 + body[middle:]


def _truncated(body: bytes) -> bytes:
    """The body cut in the middle of a line that starts in its second half (never the
    `# EOF` line, which is then gone too): no final newline."""
    half = len(body) // 2
    start = 0
    fallback: tuple[int, int] | None = None
    for line in body.split(b"\n"):
        end = start + len(line)
        if len(line) >= 2 and line != b"# EOF":
            if start >= half:
                return body[: start + len(line) // 2]
            fallback = (start, end)
        start = end + 1
    if fallback is None:
        return body[:half]
    return body[: fallback[0] + (fallback[1] - fallback[0]) // 2]


__all__ = [
    "ENGINE_NAMES",
    "HTML_ERROR_PAGE",
    "VLLM_REFERENCE_MODEL",
    "BodyFault",
    "EngineExposition",
    "corrupt",
    "render_exposition",
    "serve_exposition",
]
