"""Reads an engine's `/metrics` body into an `EngineReading`: only what gpuwork uses.

The exporter parses every engine pod of its node each collection (56 bodies of ~600 lines
in 50 ms of CPU), so this does not parse the exposition; it *searches* it. One compiled
pattern, built from the catalog, matches only the sample lines whose names some engine
entry reads: every other line (comments, `_created`, the hundreds of families gpuwork
does not use) is skipped inside the regex engine, and Python code runs for the ~60
lines that matter. The pattern starts with a newline, which the regex engine scans for
at C speed, then a trie of the wanted names.

What it accepts: the Prometheus text format 0.0.4 and OpenMetrics 1.0 (sample names
are the same in both: counters' samples end in `_total`; `_created` samples are not read;
exemplars after ` # ` and timestamps after the value are ignored; nothing after `# EOF`
is read); NaN, +Inf and -Inf values; escaped label values (`\\"`, `\\\\`, `\\n`). It
works on bytes and never decodes the body: invalid UTF-8 only reaches a model name, and
there as U+FFFD.

What it does with imperfect bodies:
- a body cut short (no final newline) loses its last, partial line; the rest counts;
- a non-finite counter, gauge, bucket count, `_sum` or `_count` is absent (a NaN gauge
  says nothing; an infinite token count is not a count);
- an exact duplicate series (same name, same label text) counts once: the first wins;
- several series of one model (vLLM data-parallel `engine="0"`/`engine="1"`,
  prometheus_client multiprocess `pid` labels, SGLang ranks, or a family repeated) are
  summed, per `le` for histogram buckets; the KV-cache ratio takes their maximum;
- a histogram without a `+Inf` bucket or without `_sum` is absent; without `_count` its
  count is the `+Inf` bucket's;
- TYPE and HELP lines are not read: a name is trusted to be what the catalog says.
Counters going backwards (an engine restart) are the caller's business.

Bounds: at most `max_series` matched sample lines are read (duplicates included), at
most 16 models per engine (the first seen), model names cut at 128 characters. The
caller caps the body's size; the parser holds nothing between calls but a bounded cache
of label sets it has parsed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter.engines.catalog import (
    ENGINES,
    FIELD_AGGREGATION,
    Aggregation,
    EngineSpec,
    SourceKind,
)
from exporter.model import EngineReading, Histogram, ModelStats

MAX_SERIES = 10_000
MAX_MODELS = 16
MAX_MODEL_CHARS = 128

NOT_METRICS = "not_metrics"
UNKNOWN_ENGINE = "unknown_engine"

_BOM = b"\xef\xbb\xbf"
# What an exposition can start with: a comment, or a metric name.
_FIRST_BYTES = frozenset(b"#_:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# A quoted label value with escapes, and a label set: text without `"`, `}` or newline
# between quoted values. Written as unrolled loops: runs of plain bytes are one step each.
_QUOTED = rb'"([^"\\\n]*(?:\\.[^"\\\n]*)*)"'
_LABELS = rb'[^"}\n]*(?:"[^"\\\n]*(?:\\.[^"\\\n]*)*"[^"}\n]*)*'
_LABEL = re.compile(rb"([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*" + _QUOTED)
_ESCAPE = re.compile(rb"\\(.)")
# Any sample line at all: only asked when no engine's name matched.
_ANY_SAMPLE = re.compile(rb"\n[A-Za-z_:][A-Za-z0-9_:]*(?:\{" + _LABELS + rb"\})?[ \t]+([^ \t\n]+)")
_ANY_SAMPLE_TRIES = 1000


class ExpositionError(ValueError):
    """The body is not what an engine serves. `kind`: a label value for the errors metric."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _trie(words: Iterable[bytes]) -> bytes:
    """A regex alternation of `words` factored into a trie, so that a line is told apart
    by its first bytes instead of by trying every name in turn."""
    words = sorted(set(words))
    if not words:
        return b"(?!)"
    if len(words) == 1:
        return re.escape(words[0])
    optional = b"" in words
    groups: dict[int, list[bytes]] = {}
    for word in words:
        if word:
            groups.setdefault(word[0], []).append(word[1:])
    branches = []
    for first, rests in groups.items():
        prefix = bytes([first])
        # Fold a chain of single children into one literal.
        while len(rests) > 1 and all(rests) and len({rest[0] for rest in rests}) == 1:
            prefix += rests[0][:1]
            rests = [rest[1:] for rest in rests]
        branches.append(re.escape(prefix) + (_trie(rests) if rests != [b""] else b""))
    body = b"(?:" + b"|".join(branches) + b")"
    return body + b"?" if optional else body


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one engine's `ModelStats` fields are read from the accumulated samples."""

    spec: EngineSpec
    model_labels: Mapping[bytes, int]  # model label -> rank, 0 preferred
    # field -> sources, each (kind, sample names, scale), preferred first
    fields: tuple[
        tuple[str, Aggregation, tuple[tuple[SourceKind, tuple[bytes, ...], float], ...]], ...
    ]
    start_time: bytes | None


def _plan(spec: EngineSpec) -> _Plan:
    fields = tuple(
        (
            name,
            FIELD_AGGREGATION[name],
            tuple((s.kind, tuple(n.encode() for n in s.sample_names()), s.scale) for s in sources),
        )
        for name, sources in spec.sources.items()
    )
    return _Plan(
        spec=spec,
        model_labels={label.encode(): rank for rank, label in enumerate(spec.model_labels)},
        fields=fields,
        start_time=spec.start_time.encode() if spec.start_time is not None else None,
    )


def _index(specs: Sequence[EngineSpec]) -> tuple[dict[bytes, tuple[int, bool]], re.Pattern[bytes]]:
    """Every wanted sample name -> (engine index, is a bucket); and the pattern finding
    their sample lines (and `# EOF`). Names several engines read (the process start
    time) get the index `len(specs)`: they identify no engine."""
    names: dict[bytes, tuple[int, bool]] = {}
    for name in {spec.start_time for spec in specs if spec.start_time is not None}:
        names[name.encode()] = (len(specs), False)
    for index, spec in enumerate(specs):
        for name in spec.sample_names():
            key = name.encode()
            if key in names:
                raise ValueError(f"sample name {name!r} is claimed by two engines")
            names[key] = (index, name.endswith("_bucket"))
    pattern = re.compile(
        rb"\n(?:(# EOF)(?![^\r\n])|("
        + _trie(names)
        + rb")(?:\{("
        + _LABELS
        + rb")\})?[ \t]+([^ \t\n]+))"
    )
    return names, pattern


_SPECS: tuple[EngineSpec, ...] = tuple(ENGINES.values())
_PLANS: tuple[_Plan, ...] = tuple(_plan(spec) for spec in _SPECS)
_NAMES, _SAMPLE = _index(_SPECS)
_NO_LABELS: Mapping[bytes, int] = {}
_NAN = math.nan
_INF = math.inf

# Label sets seen before -> (model, le), per engine: an engine serves the same label sets
# scrape after scrape, so most lines skip label parsing. Cleared when full.
_LABEL_CACHE_MAX = 8192
_label_cache: list[dict[bytes, tuple[str, float]]] = [{} for _ in range(len(_SPECS) + 1)]


def parse_engine(body: bytes, *, max_series: int = MAX_SERIES) -> EngineReading:
    """The engine's reading from one `/metrics` body. Raises `ExpositionError`."""
    text, end = _lines(body)
    counts = [0] * (len(_SPECS) + 1)
    models: list[dict[str, None]] = [{} for _ in range(len(_SPECS) + 1)]  # first seen first
    scalars: dict[tuple[bytes, str], list[float]] = {}  # (name, model) -> [sum, max]
    buckets: dict[tuple[bytes, str], dict[float, float]] = {}  # (name, model) -> le -> n
    seen: set[tuple[bytes, bytes | None]] = set()
    read = 0
    names = _NAMES
    caches = _label_cache
    isfinite = math.isfinite
    for match in _SAMPLE.finditer(text, 0, end):
        eof, name, labels, value_text = match.groups()
        if eof is not None or read >= max_series:
            break
        read += 1
        series = (name, labels)
        if series in seen:
            continue
        seen.add(series)
        engine, bucket = names[name]
        if labels:
            cache = caches[engine]
            parsed = cache.get(labels)
            if parsed is None:
                if len(cache) >= _LABEL_CACHE_MAX:
                    cache.clear()
                parsed = cache[labels] = _labels(labels, engine)
            model, le = parsed
        else:
            model, le = "", _NAN
        counts[engine] += 1
        known = models[engine]
        if model not in known:
            if len(known) >= MAX_MODELS:
                continue
            known[model] = None
        try:
            value = float(value_text)
        except ValueError:
            continue
        if not isfinite(value):
            continue
        key = (name, model)
        if bucket:
            if le != le or le == -_INF:  # no `le`, or not a number
                continue
            by_le = buckets.get(key)
            if by_le is None:
                buckets[key] = {le: value}
            else:
                by_le[le] = by_le.get(le, 0.0) + value
        else:
            acc = scalars.get(key)
            if acc is None:
                scalars[key] = [value, value]
            else:
                acc[0] += value
                if value > acc[1]:
                    acc[1] = value

    best = max(range(len(_SPECS)), key=lambda i: (counts[i], -i))
    if counts[best] == 0:
        raise _unknown(text, end)
    plan = _PLANS[best]
    stats = []
    for model in models[best]:
        model_stats = _model_stats(plan, model, scalars, buckets)
        if model_stats is not None:
            stats.append(model_stats)
    start = None
    if plan.start_time is not None:
        acc = scalars.get((plan.start_time, ""))
        start = acc[1] if acc is not None else None
    return EngineReading(engine=plan.spec.name, models=tuple(stats), process_start_time=start)


def _lines(body: bytes) -> tuple[bytes, int]:
    """The body with a newline before its first line, and where its last complete line
    ends: a line without its newline was cut short and is not read."""
    head = body[:512].lstrip()
    if head.startswith(_BOM):
        head = head[len(_BOM) :].lstrip()
    if not head and len(body) > 512:
        head = body.lstrip()[:1]
    if not head:
        raise ExpositionError(NOT_METRICS, "empty body")
    if head[0] not in _FIRST_BYTES:
        raise ExpositionError(NOT_METRICS, f"body starts with {bytes(head[:16])!r}")
    text = b"\n" + body
    return text, text.rfind(b"\n") + 1


def _labels(labels: bytes, engine: int) -> tuple[str, float]:
    """(model, le) of one label set: model "" where it names none, le NaN where there is
    no `le` or it is not a number."""
    wanted = _PLANS[engine].model_labels if engine < len(_PLANS) else _NO_LABELS
    model: bytes | None = None
    model_rank = len(wanted)
    le = _NAN
    for label, value in _LABEL.findall(labels):
        if label == b"le":
            try:
                le = float(value)
            except ValueError:
                le = _NAN
        else:
            rank = wanted.get(label, model_rank)
            if rank < model_rank:
                model, model_rank = value, rank
    if model is None:
        return "", le
    return _model_name(model, _PLANS[engine].spec.unnamed_models), le


def _model_name(raw: bytes, unnamed: Iterable[str]) -> str:
    if b"\\" in raw:
        raw = _ESCAPE.sub(_unescape, raw)
    name = raw.decode("utf-8", "replace")[:MAX_MODEL_CHARS]
    return "" if name in unnamed else name


def _unescape(match: re.Match[bytes]) -> bytes:
    char = match.group(1)
    return b"\n" if char == b"n" else char


def _model_stats(
    plan: _Plan,
    model: str,
    scalars: Mapping[tuple[bytes, str], list[float]],
    buckets: Mapping[tuple[bytes, str], Mapping[float, float]],
) -> ModelStats | None:
    values: dict[str, float | Histogram] = {}
    for field_name, aggregation, sources in plan.fields:
        for kind, sample_names, scale in sources:
            found: float | Histogram | None
            if kind is SourceKind.HISTOGRAM:
                found = _histogram(sample_names, model, scalars, buckets)
            else:
                acc = scalars.get((sample_names[0], model))
                if acc is None:
                    continue
                found = (acc[1] if aggregation is Aggregation.MAX else acc[0]) * scale
            if found is not None:
                values[field_name] = found
                break
    if not values:
        return None
    return ModelStats(model=model, **values)  # type: ignore[arg-type]


def _histogram(
    sample_names: tuple[bytes, ...],
    model: str,
    scalars: Mapping[tuple[bytes, str], list[float]],
    buckets: Mapping[tuple[bytes, str], Mapping[float, float]],
) -> Histogram | None:
    bucket_name, sum_name, count_name = sample_names
    by_le = buckets.get((bucket_name, model))
    total = scalars.get((sum_name, model))
    if by_le is None or _INF not in by_le or total is None:
        return None
    count = scalars.get((count_name, model))
    return Histogram(
        buckets=tuple(sorted(by_le.items())),
        count=count[0] if count is not None else by_le[_INF],
        sum=total[0],
    )


def _unknown(text: bytes, end: int) -> ExpositionError:
    """Why no engine matched: an exposition of something else, or no exposition at all."""
    for tries, match in enumerate(_ANY_SAMPLE.finditer(text, 0, end)):
        if tries >= _ANY_SAMPLE_TRIES:
            break
        try:
            float(match.group(1))
        except ValueError:
            continue
        return ExpositionError(UNKNOWN_ENGINE, "no engine of the catalog serves these metrics")
    return ExpositionError(NOT_METRICS, "no sample line in the body")


__all__ = [
    "MAX_MODELS",
    "MAX_MODEL_CHARS",
    "MAX_SERIES",
    "NOT_METRICS",
    "UNKNOWN_ENGINE",
    "ExpositionError",
    "parse_engine",
]
