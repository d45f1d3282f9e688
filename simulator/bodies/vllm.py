"""vLLM's `/metrics` body: the reference exposition of a vLLM 0.33 V1 server
(`reference/vllm-0.33-v1.metrics.txt` in the `simulator` package) served for a
`ModelStats` by one prometheus_client collector, as vLLM's API server process fills its
registry."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from exporter.model import ModelStats

VLLM_REFERENCE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
VLLM_REFERENCE_FILE = "reference/vllm-0.33-v1.metrics.txt"  # in the `simulator` package

# The reference exposition of a vLLM 0.33 V1 server, as that server wrote it.
_VLLM_REFERENCE = (
    resources.files("simulator").joinpath(VLLM_REFERENCE_FILE).read_text(encoding="utf-8")
)

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

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Series:
    labels: Labels  # without `le`, model as in the reference
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
                buckets = [(go(le), n) for le, n in value.buckets]
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


class VllmCollector:
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
        series: dict[Labels, list[Sample]] = {}
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


def _key(labels: dict[str, str], *, drop: str = "") -> Labels:
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


def go(value: float) -> str:
    """A value as prometheus_client writes it (Go's float formatting)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _with_model(labels: dict[str, str], model: str) -> dict[str, str]:
    return {k: model if k == "model_name" else v for k, v in labels.items()}


__all__ = [
    "VLLM_REFERENCE_FILE",
    "VLLM_REFERENCE_MODEL",
    "Labels",
    "VllmCollector",
    "go",
]
