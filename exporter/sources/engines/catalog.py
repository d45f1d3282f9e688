"""The engine catalog: which inference engine a pod runs, and where each `ModelStats`
field comes from in that engine's `/metrics`.

One mechanism for every engine: the built-in entries are the YAML file beside this
module (`catalog.yaml`, each entry with a comment saying where its names came from), and
a user's catalog (`--engines.catalog=FILE`) is the same format, its entries added to the
built-in ones or replacing one of the same name. A file is checked whole before it is
used: an error names the file, the line and what is allowed (`CatalogError`).

pydantic checks the shape of a file (the same library that checks the flags); the
loader below keeps the line of every node PyYAML read, so that an error pydantic reports
at a path (`engines[2].fields.prompt_tokens[0]`) is reported at its line too.

How several series of one model combine (vLLM data parallelism: `engine="0"`,
`engine="1"`; multiprocess mode: a `pid` label on gauges; SGLang's ranks): counters,
request gauges and histograms are summed (per `le` for buckets), the KV-cache ratio
takes the maximum (`FIELD_AGGREGATION`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exporter.errors import GpuworkError


class SourceKind(StrEnum):
    """How a source family is read."""

    COUNTER = "counter"  # the sample itself
    GAUGE = "gauge"  # the sample itself
    HISTOGRAM = "histogram"  # `<name>_bucket{le}`, `<name>_sum`, `<name>_count`
    HISTOGRAM_SUM = "histogram_sum"  # `<name>_sum` alone: e.g. tokens summed over requests
    HISTOGRAM_COUNT = "histogram_count"  # `<name>_count` alone: e.g. requests observed


class Aggregation(StrEnum):
    """How the series of one model (several engine processes or ranks) combine."""

    SUM = "sum"
    MAX = "max"


@dataclass(frozen=True, slots=True)
class Source:
    """One family an engine serves, read as `kind`, multiplied by `scale` (for a
    histogram: its bounds and sum), from the series whose labels include `labels`."""

    name: str  # the sample name (counter, gauge) or the histogram's base name
    kind: SourceKind
    scale: float = 1.0  # e.g. 0.01 for a percent 0-100 into a ratio, 0.001 for ms
    labels: tuple[tuple[str, str], ...] = ()  # e.g. (("request_type", "waiting"),)

    def sample_names(self) -> tuple[str, ...]:
        """The names of the sample lines this source reads."""
        if self.kind is SourceKind.HISTOGRAM:
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        if self.kind is SourceKind.HISTOGRAM_SUM:
            return (f"{self.name}_sum",)
        if self.kind is SourceKind.HISTOGRAM_COUNT:
            return (f"{self.name}_count",)
        return (self.name,)


# The `ModelStats` fields an engine entry can fill.
SCALAR_FIELDS = (
    "prompt_tokens",
    "generation_tokens",
    "requests_running",
    "requests_waiting",
    "requests_finished",
    "kv_cache_usage_ratio",
    "preemptions",
)
HISTOGRAM_FIELDS = ("time_to_first_token_seconds", "inter_token_latency_seconds")
FIELDS = SCALAR_FIELDS + HISTOGRAM_FIELDS
GAUGE_FIELDS = frozenset({"requests_running", "requests_waiting", "kv_cache_usage_ratio"})

FIELD_AGGREGATION: Mapping[str, Aggregation] = MappingProxyType(
    {
        name: Aggregation.MAX if name == "kv_cache_usage_ratio" else Aggregation.SUM
        for name in FIELDS
    }
)

PROCESS_START_TIME = "process_start_time_seconds"  # prometheus_client's process collector


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """One inference engine: where it serves its metrics, how to tell it, what to read."""

    name: str  # "vllm", "triton", ...: `EngineReading.engine`
    ports: tuple[int, ...]  # where it serves /metrics by default, most likely first
    paths: tuple[str, ...]
    # Sample names that identify the engine on top of its sources (any one is enough):
    # families it serves from start-up, before the first request.
    identify: tuple[str, ...]
    # Labels that may hold the model name, first found wins; none: every series is model "".
    model_labels: tuple[str, ...]
    sources: Mapping[str, tuple[Source, ...]]  # ModelStats field -> sources, preferred first
    start_time: str | None = None  # a gauge of the process start time, unix seconds
    # Model label values that mean "no name" (trtllm-serve writes "undefined"): model "".
    unnamed_models: frozenset[str] = field(default_factory=frozenset)
    # Models that take requests and pass them to others (Triton ensembles, BLS): where a
    # body has one, only such models' finished requests are read.
    ensemble_models: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        for name, sources in self.sources.items():
            if name not in FIELDS:
                raise ValueError(f"{self.name}: {name!r} is not a ModelStats field")
            for source in sources:
                if problem := _kind_problem(name, source.kind):
                    raise ValueError(f"{self.name}: {problem}")

    @property
    def default_port(self) -> int:
        return self.ports[0]

    @property
    def default_path(self) -> str:
        return self.paths[0]

    def sample_names(self) -> frozenset[str]:
        """Every sample name that identifies this engine: its sources and `identify`."""
        names = set(self.identify)
        for sources in self.sources.values():
            for source in sources:
                names.update(source.sample_names())
        return frozenset(names)


def _kind_problem(field_name: str, kind: SourceKind) -> str:
    """Why `field_name` cannot be read from a `kind` source ("" when it can)."""
    if (kind is SourceKind.HISTOGRAM) != (field_name in HISTOGRAM_FIELDS):
        return f"{field_name} cannot read a {kind} source"
    if field_name in GAUGE_FIELDS and kind is not SourceKind.GAUGE:
        return f"{field_name} is a gauge and cannot read a {kind} source"
    if field_name not in GAUGE_FIELDS and kind is SourceKind.GAUGE:
        return f"{field_name} counts up and cannot read a gauge"
    return ""


class CatalogError(GpuworkError, ValueError):
    """A catalog file that cannot be used: `file:line: what is wrong`."""


@dataclass(frozen=True, slots=True)
class Catalog:
    """The engines the exporter recognises, in the order they are tried on a tie."""

    engines: tuple[EngineSpec, ...]
    origin: Mapping[str, str] = field(default_factory=dict)  # engine -> "file:line"

    def __post_init__(self) -> None:
        owner: dict[str, str] = {}
        for spec in self.engines:
            for name in sorted(spec.sample_names()):
                other = owner.setdefault(name, spec.name)
                if other != spec.name:
                    raise CatalogError(
                        f"{self.origin.get(spec.name, spec.name)}: sample name {name!r} is "
                        f"already read by engine {other!r}: a body must tell one engine"
                    )

    def __getitem__(self, name: str) -> EngineSpec:
        for spec in self.engines:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.engines)

    def with_entries(self, entries: Catalog) -> Catalog:
        """This catalog with `entries` added; an entry of a known name replaces it."""
        replaced = {spec.name: spec for spec in entries.engines}
        kept = tuple(replaced.pop(spec.name, spec) for spec in self.engines)
        return Catalog(kept + tuple(replaced.values()), {**self.origin, **entries.origin})


# --- the file format -----------------------------------------------------------------

_METRIC_NAME = r"^[A-Za-z_:][A-Za-z0-9_:]{0,199}$"
_LABEL_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
_PATH = r"^/[A-Za-z0-9._~/-]{0,255}$"  # a plain absolute path: no query, no host
MAX_ENGINES = 64
MAX_SOURCES = 8
_Names = list[str]


class _SourceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    counter: str | None = Field(None, pattern=_METRIC_NAME)
    gauge: str | None = Field(None, pattern=_METRIC_NAME)
    histogram: str | None = Field(None, pattern=_METRIC_NAME)
    histogram_sum: str | None = Field(None, pattern=_METRIC_NAME)
    histogram_count: str | None = Field(None, pattern=_METRIC_NAME)
    scale: float = Field(1.0, gt=0, allow_inf_nan=False)
    labels: dict[str, str] = Field(default_factory=dict, max_length=4)

    @model_validator(mode="after")
    def _one_kind(self) -> _SourceEntry:
        kinds = [kind for kind in SourceKind if getattr(self, kind.value) is not None]
        if len(kinds) != 1:
            allowed = ", ".join(kind.value for kind in SourceKind)
            raise ValueError(f"give exactly one of {allowed} (the family's name)")
        for name in self.labels:
            if not re.match(_LABEL_NAME, name) or name == "le":
                raise ValueError(f"{name!r} cannot be a label to match")
        return self

    def source(self) -> Source:
        kind = next(kind for kind in SourceKind if getattr(self, kind.value) is not None)
        labels = tuple(sorted(self.labels.items()))
        return Source(getattr(self, kind.value), kind, self.scale, labels)


_Sources = list[_SourceEntry]
_FIELD_SOURCES = Field(None, min_length=1, max_length=MAX_SOURCES)


class _FieldsEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_tokens: _Sources | None = _FIELD_SOURCES
    generation_tokens: _Sources | None = _FIELD_SOURCES
    requests_running: _Sources | None = _FIELD_SOURCES
    requests_waiting: _Sources | None = _FIELD_SOURCES
    requests_finished: _Sources | None = _FIELD_SOURCES
    kv_cache_usage_ratio: _Sources | None = _FIELD_SOURCES
    preemptions: _Sources | None = _FIELD_SOURCES
    time_to_first_token_seconds: _Sources | None = _FIELD_SOURCES
    inter_token_latency_seconds: _Sources | None = _FIELD_SOURCES


class _EngineEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    ports: list[int] = Field(min_length=1, max_length=4)
    paths: list[str] = Field(default_factory=lambda: ["/metrics"], min_length=1, max_length=4)
    identify: _Names = Field(default_factory=list, max_length=32)
    model_labels: _Names = Field(default_factory=list, max_length=4)
    unnamed_models: _Names = Field(default_factory=list, max_length=8)
    start_time: str | None = Field(None, pattern=_METRIC_NAME)
    ensemble_models: str | None = Field(None, max_length=256)
    fields: _FieldsEntry

    @model_validator(mode="after")
    def _values(self) -> _EngineEntry:
        for port in self.ports:
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is not 1-65535")
        for path in self.paths:
            if not re.match(_PATH, path) or "//" in path or "/../" in f"{path}/":
                raise ValueError(f"path {path!r} is not a plain absolute path")
        for name in self.identify:
            if not re.match(_METRIC_NAME, name):
                raise ValueError(f"{name!r} in identify is not a metric name")
        for name in self.model_labels:
            if not re.match(_LABEL_NAME, name):
                raise ValueError(f"{name!r} in model_labels is not a label name")
        if self.ensemble_models is not None:
            try:
                re.compile(self.ensemble_models)
            except re.error as error:
                raise ValueError(f"ensemble_models is no regular expression: {error}") from None
        return self


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engines: list[_EngineEntry] = Field(min_length=1, max_length=MAX_ENGINES)


# path inside the document (keys and indexes) -> its 1-based line
_Lines = dict[tuple[str | int, ...], int]


def parse_catalog(text: str, where: str = "<catalog>") -> Catalog:
    """The catalog a YAML text describes. Raises `CatalogError` naming `where` and a line."""
    try:
        document, lines = _load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise CatalogError(f"{where}{line}: not YAML: {problem}") from None
    except _DuplicateKeyError as error:
        raise CatalogError(f"{where}:{error.line}: {error.key!r} is given twice") from None
    try:
        parsed = _CatalogFile.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        loc = tuple(first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        at = _at(lines, loc)
        raise CatalogError(f"{where}:{at}: {_dotted(loc) or 'the file'}: {message}") from None
    engines = []
    origin: dict[str, str] = {}
    for index, entry in enumerate(parsed.engines):
        path: tuple[str | int, ...] = ("engines", index)
        if entry.name in origin:
            raise CatalogError(
                f"{where}:{_at(lines, (*path, 'name'))}: engine {entry.name!r} is given twice"
            )
        origin[entry.name] = f"{where}:{_at(lines, path)}"
        sources: dict[str, tuple[Source, ...]] = {}
        for field_name in FIELDS:
            given = getattr(entry.fields, field_name)
            if given is None:
                continue
            sources[field_name] = tuple(source.source() for source in given)
            for number, source in enumerate(sources[field_name]):
                if problem := _kind_problem(field_name, source.kind):
                    at = _at(lines, (*path, "fields", field_name, number))
                    raise CatalogError(f"{where}:{at}: {entry.name}: {problem}")
        engines.append(
            EngineSpec(
                name=entry.name,
                ports=tuple(entry.ports),
                paths=tuple(entry.paths),
                identify=tuple(entry.identify),
                model_labels=tuple(entry.model_labels),
                sources=MappingProxyType(sources),
                start_time=entry.start_time,
                unnamed_models=frozenset(entry.unnamed_models),
                ensemble_models=re.compile(entry.ensemble_models)
                if entry.ensemble_models is not None
                else None,
            )
        )
    return Catalog(tuple(engines), origin)


def load_catalog(path: str | Path = "") -> Catalog:
    """The built-in catalog with the entries of the user's file at `path` ("": none)."""
    if not str(path):
        return BUILTIN
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogError(f"{path}: cannot read the engine catalog: {error}") from None
    return BUILTIN.with_entries(parse_catalog(text, str(path)))


class _DuplicateKeyError(Exception):
    def __init__(self, key: str, line: int) -> None:
        self.key, self.line = key, line


def _load(text: str) -> tuple[Any, _Lines]:
    """The document as plain data, and the line of every mapping value and list item."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: _Lines = {}
        document = _plain(loader, node, (), lines) if node is not None else None
    finally:
        loader.dispose()
    return document, lines


def _plain(loader: yaml.SafeLoader, node: yaml.Node, path: tuple[str | int, ...],
           lines: _Lines) -> Any:  # fmt: skip
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                key = str(key)
            if key in mapping:
                raise _DuplicateKeyError(str(key), key_node.start_mark.line + 1)
            mapping[key] = _plain(loader, value_node, (*path, str(key)), lines)
            lines[(*path, str(key))] = key_node.start_mark.line + 1
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [_plain(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _at(lines: _Lines, loc: Sequence[str | int]) -> int:
    """The line of the deepest node of `loc` that the file has."""
    path = tuple(loc)
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _dotted(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _builtin() -> Catalog:
    text = resources.files(__package__).joinpath("catalog.yaml").read_text(encoding="utf-8")
    return parse_catalog(text, "exporter/sources/engines/catalog.yaml")


BUILTIN: Catalog = _builtin()
ENGINES: Mapping[str, EngineSpec] = MappingProxyType({s.name: s for s in BUILTIN.engines})

__all__ = [
    "BUILTIN",
    "ENGINES",
    "FIELDS",
    "FIELD_AGGREGATION",
    "HISTOGRAM_FIELDS",
    "PROCESS_START_TIME",
    "SCALAR_FIELDS",
    "Aggregation",
    "Catalog",
    "CatalogError",
    "EngineSpec",
    "Source",
    "SourceKind",
    "load_catalog",
    "parse_catalog",
]
