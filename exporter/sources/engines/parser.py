"""Reads an engine's `/metrics` body into an `EngineReading`: only what gpuwork uses, and
only what the body says for certain.

The exporter parses every engine pod of its node each collection (56 bodies of ~600 lines),
so this does not parse the whole exposition; it *searches* it. One compiled pattern, built
from the catalog, matches only the sample lines whose names some engine entry reads and
the `# TYPE` lines of their families: every other line (comments, `_created`, the hundreds
of families gpuwork does not use) is skipped inside the regex engine, and Python code runs
for the ~60 lines that matter. The pattern starts with a newline, which the regex engine
scans for at C speed, then a trie of the wanted names.

Formats: the Prometheus text format 0.0.4 and OpenMetrics 1.0. Sample names are the same
in both (counters' samples end in `_total`), except that OpenMetrics served with
`escaping=underscores` (prometheus_client's default for it) writes `vllm:prompt_tokens_total`
as `vllm_prompt_tokens_total`: both spellings are read as one name. Exemplars and
timestamps are allowed after the value; nothing after `# EOF` is read.

Hostile bodies. A number read wrong is worse than a number missing: a lost series reads as
a held counter, a wrong one as tokens never served. So:
- a body cut short (text without its final newline, OpenMetrics without `# EOF`) is
  refused whole: `ExpositionError("truncated")`;
- a matched line that breaks the grammar (label set, value, what follows it) is not read
  (`invalid_line`); nor one whose label values are not UTF-8 (`invalid_utf8`);
- a value no counter can hold (negative, NaN, ±Inf in a counter, a histogram bucket,
  `_sum` or `_count`; a negative or non-finite request gauge; a ratio outside 0-1 or a
  start time that is no time) is not read (`invalid_value`);
- a series served twice in one body, its labels in any order, is not read at all: which
  copy is right cannot be told (`duplicate_series`);
- a family declared with two types is not read (`type_conflict`).
Each is a `Problem` with its line number. Nothing is summed across series here: counters
and histograms stay per engine series (`ModelReading.counters`), so one series missing
from one body cannot look like a reset of a sum. Only gauges are combined per model (the
KV-cache ratio takes the maximum, request gauges add up). A model exists only by a line
that was read, so a corrupted line never invents one.

Bounds: at most `max_series` matched sample lines are read, at most 16 models per engine
(the first seen), model names cut at 128 characters, series labels at 256; what a cap
leaves out is counted in `EngineReading.dropped_series`. The caller caps the body's size.
The parser holds nothing between calls but a bounded cache of label sets it has parsed.

Why one module of some 640 lines: it is one pass over one grammar. The pattern built from
the catalog, the line checks and the series bookkeeping share the state of that pass;
split apart, each part would need the others' internals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from exporter.errors import ErrorKind, GpuworkError
from exporter.model import EngineReading, Histogram, ModelReading, Problem, SeriesKey
from exporter.sources.engines.catalog import (
    BUILTIN,
    FIELD_AGGREGATION,
    Aggregation,
    Catalog,
    EngineSpec,
    SourceKind,
)

MAX_SERIES = 10_000
MAX_MODELS = 16
MAX_MODEL_CHARS = 128
MAX_SERIES_CHARS = 256
MAX_PROBLEMS = 64  # problems kept with their line; all are counted

NOT_METRICS = ErrorKind.NOT_METRICS
UNKNOWN_ENGINE = ErrorKind.UNKNOWN_ENGINE
TRUNCATED = ErrorKind.TRUNCATED
INVALID_LINE = ErrorKind.INVALID_LINE
INVALID_UTF8 = ErrorKind.INVALID_UTF8
INVALID_VALUE = ErrorKind.INVALID_VALUE
DUPLICATE_SERIES = ErrorKind.DUPLICATE_SERIES
TYPE_CONFLICT = ErrorKind.TYPE_CONFLICT

_BOM = b"\xef\xbb\xbf"
# What an exposition can start with: a comment, or a metric name.
_FIRST_BYTES = frozenset(b"#_:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# A quoted label value with escapes, and a label set: text without `"`, `}` or newline
# between quoted values. Written as unrolled loops: runs of plain bytes are one step each.
_QUOTED = rb'"([^"\\\n]*(?:\\.[^"\\\n]*)*)"'
_LABELS = rb'[^"}\n]*(?:"[^"\\\n]*(?:\\.[^"\\\n]*)*"[^"}\n]*)*'
_NAME = rb"[A-Za-z_][A-Za-z0-9_]*"
_PAIR = _NAME + rb'[ \t]*=[ \t]*"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_LABEL = re.compile(rb"(" + _NAME + rb")[ \t]*=[ \t]*" + _QUOTED)
_LABEL_SET = re.compile(
    rb"[ \t]*(?:" + _PAIR + rb"(?:[ \t]*,[ \t]*" + _PAIR + rb")*[ \t]*,?)?[ \t]*"
)
# What may follow a value: a timestamp, an OpenMetrics exemplar, a carriage return.
_TAIL = re.compile(rb"(?:[ \t]+[-+]?[0-9][0-9.eE+-]*)?(?:[ \t]+#[ \t][^\n]*)?[ \t]*\r?")
_ESCAPE = re.compile(rb"\\(.)")
# Any sample line at all: only asked when no engine's name matched.
_ANY_SAMPLE = re.compile(rb"\n[A-Za-z_:][A-Za-z0-9_:]*(?:\{" + _LABELS + rb"\})?[ \t]+([^ \t\n]+)")
_ANY_SAMPLE_TRIES = 1000


class ExpositionError(GpuworkError, ValueError):
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


# What a sample's value must be to be read.
_ANY, _COUNT, _RATIO, _TIME = range(4)


class _Name(NamedTuple):
    """One wanted sample name, as the index knows it (a tuple: unpacked on the hot path)."""

    canonical: bytes  # the unescaped name
    engine: int  # index into the catalog's engines; their count for names no engine claims alone
    family: bytes  # the family its TYPE line names, without `_total` or histogram suffixes
    bucket: bool
    check: int  # _ANY, _COUNT, _RATIO or _TIME


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one engine's fields are read from the accepted samples."""

    spec: EngineSpec
    model_labels: Mapping[str, int]  # model label -> rank, 0 preferred
    # field -> sources, each (kind, sample names, scale, `name=value` labels to match),
    # preferred first
    fields: tuple[tuple[str, Aggregation, tuple[_SourcePlan, ...]], ...]


class _SourcePlan(NamedTuple):
    kind: SourceKind
    sample_names: tuple[bytes, ...]
    scale: float
    labels: frozenset[str]  # `name=value` pairs a series must have; empty: any series


def _plan(spec: EngineSpec) -> _Plan:
    fields = tuple(
        (
            name,
            FIELD_AGGREGATION[name],
            tuple(
                _SourcePlan(
                    s.kind,
                    tuple(n.encode() for n in s.sample_names()),
                    s.scale,
                    frozenset(f"{k}={v}" for k, v in s.labels),
                )
                for s in sources
            ),
        )
        for name, sources in spec.sources.items()
    )
    model_labels = {label: rank for rank, label in enumerate(spec.model_labels)}
    return _Plan(spec=spec, model_labels=model_labels, fields=fields)


def _family(name: str, kind: SourceKind | None) -> str:
    if kind in (SourceKind.HISTOGRAM, SourceKind.HISTOGRAM_SUM, SourceKind.HISTOGRAM_COUNT):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix):
                return name.removesuffix(suffix)
    return name.removesuffix("_total")


def _escaped(name: bytes) -> bytes:
    """The name as prometheus_client writes it for OpenMetrics with escaping=underscores."""
    return name.replace(b":", b"_")


def _index(
    specs: Sequence[EngineSpec],
) -> tuple[dict[bytes, _Name], dict[bytes, bytes], re.Pattern[bytes]]:
    """Every wanted sample name in both spellings -> `_Name`; every family name a TYPE line
    may give -> the family; and the pattern finding those lines (and `# EOF`)."""
    names: dict[bytes, _Name] = {}

    def add(name: str, engine: int, kind: SourceKind | None, check: int) -> None:
        key = name.encode()
        if key in names and names[key].engine != engine:
            raise ValueError(f"sample name {name!r} is claimed by two engines")
        entry = _Name(key, engine, _family(name, kind).encode(), name.endswith("_bucket"), check)
        names[key] = names[_escaped(key)] = entry

    for start in {spec.start_time for spec in specs if spec.start_time is not None}:
        add(start, len(specs), None, _TIME)
    for index, spec in enumerate(specs):
        for name in spec.identify:
            add(name, index, None, _ANY)
        for field_name, sources in spec.sources.items():
            for source in sources:
                # A ratio served as such is checked on its line; one scaled or among other
                # series of its family (a label picks it) is checked once read (`_model`).
                plain = source.scale == 1.0 and not source.labels
                check = _RATIO if field_name == "kv_cache_usage_ratio" and plain else _COUNT
                for name in source.sample_names():
                    add(name, index, source.kind, check)
    families: dict[bytes, bytes] = {}
    for key, entry in names.items():
        for spelling in (entry.family, _escaped(entry.family), key):
            families[spelling] = entry.family
    pattern = re.compile(
        rb"\n(?:(# EOF)(?![^\r\n])|# TYPE[ \t]+("
        + _trie(families)
        + rb")[ \t]+([a-z]+)[ \t]*\r?(?![^\n])|("
        + _trie(names)
        + rb")(?:\{("
        + _LABELS
        + rb")\})?[ \t]+([^ \t\n]+)([^\n]*))"
    )
    return names, families, pattern


_NAN = math.nan
_INF = math.inf

# A parsed label set: (model, le, series, the pairs sorted as one bytes string), or the
# kind of its problem. The bytes string is the series' identity (labels in any order):
# the cache hands out the same object each time, so its hash is computed once.
_Labels = tuple[str, float, str, bytes] | str
_NO_LABELS: _Labels = ("", _NAN, "", b"")
# Label sets seen before, per engine: an engine serves the same label sets scrape after
# scrape, so most lines skip label parsing. Cleared when full.
_LABEL_CACHE_MAX = 8192


class EngineParser:
    """Reads `/metrics` bodies against one engine catalog: the pattern built from it, and
    a bounded cache of the label sets seen. One thread at a time (the event loop)."""

    def __init__(self, catalog: Catalog = BUILTIN) -> None:
        self.catalog = catalog
        self._specs = catalog.engines
        self._plans = tuple(_plan(spec) for spec in self._specs)
        self._names, self._families, self._pattern = _index(self._specs)
        self._label_cache: list[dict[bytes, _Labels]] = [{} for _ in range(len(self._specs) + 1)]

    def parse(
        self, body: bytes, *, openmetrics: bool = False, max_series: int = MAX_SERIES
    ) -> EngineReading:
        """The engine's reading from one `/metrics` body. `openmetrics`: the body was
        served as OpenMetrics (it must then end with `# EOF`). Raises `ExpositionError`."""
        specs, plans, names = self._specs, self._plans, self._names
        text, cut = _lines(body, openmetrics)
        end = len(text)
        problems: list[tuple[str, int, str]] = []  # (kind, where, detail)
        counts = [0] * (len(specs) + 1)
        first = [0] * (len(specs) + 1)  # where each engine's first name was seen
        models: list[dict[str, None]] = [{} for _ in range(len(specs) + 1)]  # first seen first
        # (name, model) -> series -> value; for buckets, -> series -> le -> count
        values: dict[tuple[bytes, str], dict[str, float]] = {}
        buckets: dict[tuple[bytes, str], dict[str, dict[float, float]]] = {}
        seen: dict[tuple[bytes, bytes], tuple[str, float, str, bytes]] = {}  # the series read
        duplicated: dict[tuple[bytes, bytes], int] = {}  # -> where seen again
        types: dict[bytes, dict[str, int]] = {}  # family -> type -> where first declared
        start: float | None = None
        read = dropped = 0
        caches = self._label_cache
        tail_ok = _TAIL.fullmatch
        inf = _INF
        for match in self._pattern.finditer(text, 0, end):
            eof, type_family, type_name, name, labels, value_text, tail = match.groups()
            if eof is not None:
                break
            if type_family is not None:
                types.setdefault(self._families[type_family], {}).setdefault(
                    type_name.decode(), match.start()
                )
                continue
            if read >= max_series:
                dropped += 1
                continue
            read += 1
            canonical, engine, _, bucket, check = names[name]
            if not counts[engine]:
                first[engine] = match.start()
            counts[engine] += 1
            if labels:
                cache = caches[engine]
                parsed = cache.get(labels)
                if parsed is None:
                    if len(cache) >= _LABEL_CACHE_MAX:
                        cache.clear()
                    parsed = cache[labels] = _labels(
                        labels, plans[engine] if engine < len(plans) else None
                    )
            else:
                parsed = _NO_LABELS
            if isinstance(parsed, str):
                problems.append((parsed, match.start(), "label set"))
                continue
            model, le, series, identity = parsed
            try:
                if b"_" in value_text or (tail and tail_ok(tail) is None):
                    raise ValueError(value_text)
                value = float(value_text)
            except ValueError:
                problems.append((INVALID_LINE, match.start(), "value or what follows it"))
                continue
            if not check:
                continue  # a family that only tells the engine
            # what a counter, gauge, ratio or time may be; NaN fails every comparison
            if not (
                0 <= value < inf and (check != _RATIO or value <= 1) and (check != _TIME or value)
            ):
                problems.append(
                    (INVALID_VALUE, match.start(), f"{value_text.decode()} in {name.decode()}")
                )
                continue
            if bucket and (le != le or le == -inf):  # no `le`, or not a number
                problems.append((INVALID_LINE, match.start(), "bucket without a numeric le"))
                continue
            key = (canonical, identity)
            if key in seen:
                duplicated.setdefault(key, match.start())
                continue
            if len(series) > MAX_SERIES_CHARS:
                dropped += 1  # a label value too long to export
                continue
            if check == _TIME:
                seen[key] = parsed
                start = value if not labels else start
                continue
            known = models[engine]
            if model not in known:
                if len(known) >= MAX_MODELS:
                    dropped += 1
                    continue
                known[model] = None
            seen[key] = parsed
            if bucket:
                by_series = buckets.get((canonical, model))
                if by_series is None:
                    buckets[(canonical, model)] = {series: {le: value}}
                elif (by_le := by_series.get(series)) is None:
                    by_series[series] = {le: value}
                else:
                    by_le[le] = value
            elif (by_value := values.get((canonical, model))) is None:
                values[(canonical, model)] = {series: value}
            else:
                by_value[series] = value

        for (canonical, _), at in duplicated.items():  # neither copy is read
            problems.append((DUPLICATE_SERIES, at, canonical.decode()))
        for canonical, identity in duplicated:
            model, le, series, _ = seen[(canonical, identity)]
            if names[canonical].check == _TIME:
                start = None
            elif names[canonical].bucket:
                buckets[(canonical, model)][series].pop(le)
            else:
                values[(canonical, model)].pop(series)
        conflicts = {family for family, declared in types.items() if len(declared) > 1}
        for family in sorted(conflicts):  # nothing of the family is read
            problems.append((TYPE_CONFLICT, max(types[family].values()), family.decode()))
            for read_values in (values, buckets):
                for gone in [k for k in read_values if names[k[0]].family == family]:
                    del read_values[gone]

        best = max(range(len(specs)), key=lambda i: (counts[i], -i))
        if counts[best] == 0:
            raise _unknown(text, end)
        if cut:  # refused whole: the missing part may hold any series
            raise ExpositionError(TRUNCATED, cut)
        plan = plans[best]
        ensembles = plan.spec.ensemble_models
        entry = {m for m in models[best] if ensembles is not None and ensembles.fullmatch(m)}
        readings = tuple(
            reading
            for model in models[best]
            if (
                reading := _model(
                    plan,
                    model,
                    values,
                    buckets,
                    problems,
                    steps_only=bool(entry) and model not in entry,
                )
            )
            is not None
        )
        matched = _why(specs, counts, best, text.count(b"\n", 0, first[best] + 1))
        problems.sort(key=lambda p: p[1])
        kinds: dict[str, int] = {}
        for kind, _, _ in problems:
            kinds[kind] = kinds.get(kind, 0) + 1
        return EngineReading(
            engine=specs[best].name,
            models=readings,
            process_start_time=start,
            problems=tuple(
                Problem(kind, text.count(b"\n", 0, at + 1), detail)
                for kind, at, detail in problems[:MAX_PROBLEMS]
            ),
            problem_counts=kinds,
            dropped_series=dropped,
            matched=matched,
        )


def _why(specs: Sequence[EngineSpec], counts: Sequence[int], best: int, line: int) -> str:
    """Which catalog entry matched, and why: for the probe."""
    others = sorted(
        ((counts[i], spec.name) for i, spec in enumerate(specs) if i != best and counts[i]),
        reverse=True,
    )
    runner_up = f"; next: {others[0][1]} with {others[0][0]}" if others else ""
    return (
        f"{specs[best].name}: {counts[best]} sample line(s) of its names, the first at "
        f"line {line}{runner_up}"
    )


def _lines(body: bytes, openmetrics: bool) -> tuple[bytes, str]:
    """The body with a newline before its first line, and why it looks cut short ("" when
    it does not). Raises `ExpositionError` for what is no exposition at all."""
    head = body[:512].lstrip()
    if head.startswith(_BOM):
        head = head[len(_BOM) :].lstrip()
    if not head and len(body) > 512:
        head = body.lstrip()[:1]
    if not head:
        raise ExpositionError(NOT_METRICS, "empty body")
    if head[0] not in _FIRST_BYTES:
        raise ExpositionError(NOT_METRICS, f"body starts with {bytes(head[:16])!r}")
    last = body.rstrip(b"\r\n").rpartition(b"\n")[2]
    if openmetrics and last.rstrip(b" \t") != b"# EOF":
        cut = "an OpenMetrics body without its final `# EOF`"
    elif not openmetrics and not body.endswith(b"\n"):
        cut = "a body cut short: its last line has no newline"
    else:
        cut = ""
    return b"\n" + body, cut


def _labels(labels: bytes, plan: _Plan | None) -> _Labels:
    """(model, le, series, sorted pairs) of one label set, or the kind of its problem.
    The model is "" where no model label is set, `le` NaN where there is none or it is no
    number; `series` holds every other label, sorted."""
    if not _LABEL_SET.fullmatch(labels):
        return INVALID_LINE
    pairs = sorted(_LABEL.findall(labels))
    if len({name for name, _ in pairs}) != len(pairs):
        return INVALID_LINE  # a label given twice
    wanted = plan.model_labels if plan is not None else {}
    model: str | None = None
    model_rank = len(wanted)
    le = _NAN
    others = []
    for name_bytes, value_bytes in pairs:
        try:
            name = name_bytes.decode()
            value = _unescape(value_bytes).decode("utf-8")
        except UnicodeDecodeError:
            return INVALID_UTF8
        if name == "le":
            try:
                le = float(value)
            except ValueError:
                le = _NAN
        elif name in wanted:
            if wanted[name] < model_rank:
                model, model_rank = value, wanted[name]
        else:
            others.append(f"{name}={value}")
    series = ",".join(others)
    name_of_model = ""
    if model is not None and plan is not None:
        model = model[:MAX_MODEL_CHARS]
        name_of_model = "" if model in plan.spec.unnamed_models else model
    identity = b",".join(b'%s="%s"' % pair for pair in pairs)
    return name_of_model, le, series, identity


def _unescape(raw: bytes) -> bytes:
    if b"\\" not in raw:
        return raw
    return _ESCAPE.sub(lambda m: b"\n" if m.group(1) == b"n" else m.group(1), raw)


def _model(
    plan: _Plan,
    model: str,
    values: Mapping[tuple[bytes, str], Mapping[str, float]],
    buckets: Mapping[tuple[bytes, str], Mapping[str, Mapping[float, float]]],
    problems: list[tuple[str, int, str]],
    *,
    steps_only: bool = False,
) -> ModelReading | None:
    """`steps_only`: the model is a step of an ensemble in the same body, so its finished
    requests were counted at the ensemble already and are not read."""
    counters: dict[SeriesKey, float] = {}
    histograms: dict[SeriesKey, Histogram] = {}
    gauges: dict[str, float] = {}
    for field_name, aggregation, sources in plan.fields:
        if steps_only and field_name == "requests_finished":
            continue
        for kind, sample_names, scale, labels in sources:
            if kind is SourceKind.HISTOGRAM:
                found = _histograms(sample_names, model, values, buckets, scale, labels)
                histograms.update(((field_name, series), h) for series, h in found.items())
                if found:
                    break
                continue
            by_series = values.get((sample_names[0], model))
            if by_series and labels:
                by_series = {s: v for s, v in by_series.items() if _has(s, labels)}
            if not by_series:
                continue
            if kind is SourceKind.GAUGE:
                combined = (
                    max(by_series.values())
                    if aggregation is Aggregation.MAX
                    else sum(by_series.values())
                )
                value = combined * scale
                if field_name == "kv_cache_usage_ratio" and value > 1:
                    problems.append((INVALID_VALUE, -1, f"KV-cache ratio {value:g} of {model!r}"))
                    break
                gauges[field_name] = value
            else:
                counters.update(((field_name, s), v * scale) for s, v in by_series.items())
            break
    if not counters and not histograms and not gauges:
        return None
    return ModelReading(
        model=model,
        counters=counters,
        histograms=histograms,
        requests_running=gauges.get("requests_running"),
        requests_waiting=gauges.get("requests_waiting"),
        kv_cache_usage_ratio=gauges.get("kv_cache_usage_ratio"),
    )


def _has(series: str, labels: frozenset[str]) -> bool:
    """Whether a series (`name=value` pairs joined by commas) has every pair of `labels`."""
    return labels <= set(series.split(","))


def _histograms(
    sample_names: tuple[bytes, ...],
    model: str,
    values: Mapping[tuple[bytes, str], Mapping[str, float]],
    buckets: Mapping[tuple[bytes, str], Mapping[str, Mapping[float, float]]],
    scale: float = 1.0,
    labels: frozenset[str] = frozenset(),
) -> dict[str, Histogram]:
    """Each series' histogram, its bounds and sum times `scale`; one without a `+Inf`
    bucket or a `_sum` is absent, one without `_count` counts its `+Inf` bucket."""
    bucket_name, sum_name, count_name = sample_names
    sums = values.get((sum_name, model), {})
    counts = values.get((count_name, model), {})
    found = {}
    for series, by_le in buckets.get((bucket_name, model), {}).items():
        if _INF not in by_le or series not in sums or (labels and not _has(series, labels)):
            continue
        found[series] = Histogram(
            buckets=tuple(sorted((le * scale, n) for le, n in by_le.items())),
            count=counts.get(series, by_le[_INF]),
            sum=sums[series] * scale,
        )
    return found


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


BUILTIN_PARSER = EngineParser(BUILTIN)


def parse_engine(
    body: bytes, *, openmetrics: bool = False, max_series: int = MAX_SERIES
) -> EngineReading:
    """`EngineParser.parse` against the built-in catalog."""
    return BUILTIN_PARSER.parse(body, openmetrics=openmetrics, max_series=max_series)


__all__ = [
    "BUILTIN_PARSER",
    "DUPLICATE_SERIES",
    "INVALID_LINE",
    "INVALID_UTF8",
    "INVALID_VALUE",
    "MAX_MODELS",
    "MAX_MODEL_CHARS",
    "MAX_PROBLEMS",
    "MAX_SERIES",
    "NOT_METRICS",
    "TRUNCATED",
    "TYPE_CONFLICT",
    "UNKNOWN_ENGINE",
    "EngineParser",
    "ExpositionError",
    "parse_engine",
]
