"""The engine catalog: which inference engine a pod runs, and where each `ModelStats`
field comes from in that engine's `/metrics`. One entry per engine; a new engine is one
more entry in `ENGINES` and nothing else.

Every name below was looked up in the engine's own source or documentation; the comment
beside each entry says where. Names are *sample* names as they appear on the sample lines
of the exposition (`vllm:prompt_tokens_total`, not the OpenMetrics family name
`vllm:prompt_tokens`), so the same entry serves the Prometheus text format 0.0.4 and
OpenMetrics 1.0: prometheus_client writes counters' samples with `_total` in both.

A field lists its sources in preference order: the parser takes, per model, the first
source that has a finite value. Renamed families therefore list the current name first
and the older one after it (vLLM's `kv_cache_usage_perc` before V0's
`gpu_cache_usage_perc`). A field an engine does not serve is left out of its entry.

How several series of one model combine (vLLM data parallelism: `engine="0"`,
`engine="1"`; prometheus_client multiprocess mode: a `pid` label on gauges; SGLang's
`dp_rank`/`tp_rank`): counters, request gauges and histograms are summed (per `le` for
buckets), the KV-cache ratio takes the maximum (`FIELD_AGGREGATION`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


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
    """One family an engine serves, read as `kind`, multiplied by `scale`."""

    name: str  # the sample name (counter, gauge) or the histogram's base name
    kind: SourceKind
    scale: float = 1.0  # e.g. 0.01 for a percent 0-100 into a ratio 0-1

    def sample_names(self) -> tuple[str, ...]:
        """The names of the sample lines this source reads."""
        if self.kind is SourceKind.HISTOGRAM:
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        if self.kind is SourceKind.HISTOGRAM_SUM:
            return (f"{self.name}_sum",)
        if self.kind is SourceKind.HISTOGRAM_COUNT:
            return (f"{self.name}_count",)
        return (self.name,)


# The `ModelStats` fields an engine entry can fill, and the kinds each accepts.
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

FIELD_AGGREGATION: Mapping[str, Aggregation] = MappingProxyType(
    {
        name: Aggregation.MAX if name == "kv_cache_usage_ratio" else Aggregation.SUM
        for name in FIELDS
    }
)


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """One inference engine: where it serves its metrics, how to tell it, what to read."""

    name: str  # "vllm", "sglang", "tgi", "trtllm": `EngineReading.engine`
    default_port: int
    default_path: str
    # Sample names that identify the engine on top of its sources (any one present is
    # enough): families it serves from start-up, before the first request.
    identify: tuple[str, ...]
    # Labels that may hold the model name, first found wins; none: every series is model "".
    model_labels: tuple[str, ...]
    sources: Mapping[str, tuple[Source, ...]]  # ModelStats field -> sources, preferred first
    start_time: str | None = None  # a gauge of the process start time, unix seconds
    # Model label values that mean "no name" (trtllm-serve writes "undefined"): model "".
    unnamed_models: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name, sources in self.sources.items():
            if name not in FIELDS:
                raise ValueError(f"{self.name}: {name!r} is not a ModelStats field")
            histogram = name in HISTOGRAM_FIELDS
            for source in sources:
                if (source.kind is SourceKind.HISTOGRAM) != histogram:
                    raise ValueError(f"{self.name}: {name} cannot read a {source.kind} source")

    def sample_names(self) -> frozenset[str]:
        """Every sample name that identifies this engine: its sources and `identify`."""
        names = set(self.identify)
        for sources in self.sources.values():
            for source in sources:
                names.update(source.sample_names())
        return frozenset(names)


def _counter(name: str) -> Source:
    return Source(name, SourceKind.COUNTER)


def _gauge(name: str, scale: float = 1.0) -> Source:
    return Source(name, SourceKind.GAUGE, scale)


def _histogram(name: str) -> Source:
    return Source(name, SourceKind.HISTOGRAM)


PROCESS_START_TIME = "process_start_time_seconds"  # prometheus_client's process collector

# vLLM, OpenAI-compatible server (`vllm serve`), port 8000, `/metrics`.
# V1 names: vllm/v1/metrics/loggers.py (PrometheusStatLogger), as served by vLLM 0.33 in
# the project's reference body (simulator/reference/vllm-0.33-v1.metrics.txt);
# labels `model_name`, `engine`.
# V0 names: vllm/engine/metrics.py (class Metrics), labels `model_name` from
# vllm/engine/llm_engine.py (`labels=dict(model_name=...served_model_name)`).
# Renames, per the deprecation comments in vllm/v1/metrics/loggers.py (0.11):
#   vllm:gpu_cache_usage_perc -> vllm:kv_cache_usage_perc (deprecated in 0.9.2, hidden in
#   0.11 unless --show-hidden-metrics-for-version);
#   vllm:time_per_output_token_seconds -> vllm:inter_token_latency_seconds (0.11).
# Both `_perc` gauges are ratios already: HELP "KV-cache usage. 1 means 100 percent usage."
VLLM = EngineSpec(
    name="vllm",
    default_port=8000,
    default_path="/metrics",
    identify=(
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:cache_config_info",
        "vllm:e2e_request_latency_seconds_count",
    ),
    model_labels=("model_name",),
    sources={
        "prompt_tokens": (_counter("vllm:prompt_tokens_total"),),
        "generation_tokens": (_counter("vllm:generation_tokens_total"),),
        "requests_running": (_gauge("vllm:num_requests_running"),),
        "requests_waiting": (_gauge("vllm:num_requests_waiting"),),
        # by `finished_reason` (stop, length, abort, error, repetition): summed
        "requests_finished": (_counter("vllm:request_success_total"),),
        "kv_cache_usage_ratio": (
            _gauge("vllm:kv_cache_usage_perc"),  # V1, 0.9.2 and later
            _gauge("vllm:gpu_cache_usage_perc"),  # V0, and V1 up to 0.10
        ),
        "preemptions": (_counter("vllm:num_preemptions_total"),),  # V0 and V1
        "time_to_first_token_seconds": (_histogram("vllm:time_to_first_token_seconds"),),
        "inter_token_latency_seconds": (
            _histogram("vllm:inter_token_latency_seconds"),  # 0.11 and later
            _histogram("vllm:time_per_output_token_seconds"),  # V0, and V1 up to 0.11
        ),
    },
    start_time=PROCESS_START_TIME,  # single-process servers only; absent in multiprocess mode
)

# SGLang (`python -m sglang.launch_server --enable-metrics`), port 30000 (ServerArgs.port),
# `/metrics` on the API port: docs/references/production_metrics.md ("curl
# http://localhost:30000/metrics"). Names: python/sglang/srt/metrics/collector.py
# (SchedulerMetricsCollector, TokenizerMetricsCollector). Labels: `model_name` and
# `engine_type` (tokenizer), plus `tp_rank`, `pp_rank`, `moe_ep_rank`, `dp_rank`
# (scheduler), set in scheduler_metrics_mixin.py / tokenizer_manager.py. SGLang always
# runs prometheus_client in multiprocess mode: no `_created`, no process_* families.
# `sglang:token_usage` is used tokens / KV pool size, a ratio. Older releases served
# `sglang:time_per_output_token_seconds` (the docs' example output) where newer ones
# serve `sglang:inter_token_latency_seconds`. Preemption is "retraction" in SGLang; the
# counter `sglang:num_retracted_requests_total` replaced a gauge of the same meaning.
SGLANG = EngineSpec(
    name="sglang",
    default_port=30000,
    default_path="/metrics",
    identify=(
        "sglang:num_running_reqs",
        "sglang:num_queue_reqs",
        "sglang:token_usage",
        "sglang:num_used_tokens",
        "sglang:gen_throughput",
        "sglang:cache_hit_rate",
        "sglang:max_total_num_tokens",
    ),
    model_labels=("model_name",),
    sources={
        "prompt_tokens": (_counter("sglang:prompt_tokens_total"),),
        "generation_tokens": (_counter("sglang:generation_tokens_total"),),
        "requests_running": (_gauge("sglang:num_running_reqs"),),
        "requests_waiting": (_gauge("sglang:num_queue_reqs"),),
        "requests_finished": (_counter("sglang:num_requests_total"),),
        "kv_cache_usage_ratio": (_gauge("sglang:token_usage"),),
        "preemptions": (_counter("sglang:num_retracted_requests_total"),),
        "time_to_first_token_seconds": (_histogram("sglang:time_to_first_token_seconds"),),
        "inter_token_latency_seconds": (
            _histogram("sglang:inter_token_latency_seconds"),
            _histogram("sglang:time_per_output_token_seconds"),
        ),
    },
)

# Hugging Face text-generation-inference. The container sets PORT=80 (Dockerfile) and the
# router serves `/metrics` on it (router/src/server.rs, route "/metrics"); it also listens
# on --prometheus-port 9000. Names: router/src/server.rs (describe_* and the
# metrics::counter!/gauge!/histogram! calls), backends/v3/src/{backend,queue}.rs,
# router/src/validation.rs; listed in docs/source/reference/metrics.md (v3.3.7). Rendered
# by the metrics-exporter-prometheus crate: counters without `_total`, no model label, no
# process_* families. Tokens come from the per-request histograms' `_sum`:
# `tgi_request_input_length` is observed at validation, `tgi_request_generated_tokens` at
# each successful response. `tgi_request_mean_time_per_token_duration` is each request's
# mean time per output token (the docs: "inter-token latency"); TGI has no TTFT histogram.
TGI = EngineSpec(
    name="tgi",
    default_port=80,
    default_path="/metrics",
    identify=(
        "tgi_request_count",
        "tgi_batch_max_total_tokens",
        "tgi_batch_current_max_tokens",
        "tgi_batch_inference_count",
        "tgi_request_duration_count",
    ),
    model_labels=(),
    sources={
        "prompt_tokens": (Source("tgi_request_input_length", SourceKind.HISTOGRAM_SUM),),
        "generation_tokens": (Source("tgi_request_generated_tokens", SourceKind.HISTOGRAM_SUM),),
        "requests_running": (_gauge("tgi_batch_current_size"),),
        "requests_waiting": (_gauge("tgi_queue_size"),),
        "requests_finished": (_counter("tgi_request_success"),),
        "inter_token_latency_seconds": (_histogram("tgi_request_mean_time_per_token_duration"),),
    },
)

# TensorRT-LLM `trtllm-serve`, port 8000 (its --port default), Prometheus text on
# `/prometheus/metrics`, mounted only with `return_perf_metrics` (and iteration stats for
# the gauges); its `/metrics` answers JSON iteration stats, not an exposition
# (tensorrt_llm/serve/openai_server.py: mount_metrics, register_routes; the docs' example
# examples/serve/prometheus_metrics.py reads http://localhost:8000/prometheus/metrics).
# Names: tensorrt_llm/metrics/collector.py (MetricsCollector, prefix "trtllm_"). Per
# NVIDIA Dynamo's TensorRT-LLM metrics page, 1.1.0rc5 served only request_success_total,
# e2e_request_latency_seconds, time_to_first_token_seconds, time_per_output_token_seconds
# and request_queue_time_seconds; kv_cache_hit_rate and kv_cache_utilization came next,
# the token counters and the request gauges (iteration stats) in later releases.
# `trtllm_kv_cache_utilization` is usedNumBlocks / maxNumBlocks, a ratio. Labels:
# `model_name`, `engine_type`, both set to "undefined" by OpenAIServer. Multiprocess mode
# (set_prometheus_multiproc_dir): gauges carry a `pid` label, no process_* families.
TRTLLM = EngineSpec(
    name="trtllm",
    default_port=8000,
    default_path="/prometheus/metrics",
    identify=(
        "trtllm_e2e_request_latency_seconds_count",
        "trtllm_request_queue_time_seconds_count",
        "trtllm_kv_cache_hit_rate",
    ),
    model_labels=("model_name",),
    sources={
        "prompt_tokens": (_counter("trtllm_prompt_tokens_total"),),
        "generation_tokens": (_counter("trtllm_generation_tokens_total"),),
        "requests_running": (_gauge("trtllm_num_requests_running"),),
        "requests_waiting": (_gauge("trtllm_num_requests_waiting"),),
        "requests_finished": (
            _counter("trtllm_request_success_total"),  # by finished_reason: summed
            _counter("trtllm_num_requests_completed_total"),
        ),
        "kv_cache_usage_ratio": (_gauge("trtllm_kv_cache_utilization"),),
        "time_to_first_token_seconds": (_histogram("trtllm_time_to_first_token_seconds"),),
        "inter_token_latency_seconds": (_histogram("trtllm_time_per_output_token_seconds"),),
    },
    unnamed_models=frozenset({"undefined"}),
)

ENGINES: Mapping[str, EngineSpec] = MappingProxyType(
    {spec.name: spec for spec in (VLLM, SGLANG, TGI, TRTLLM)}
)

__all__ = [
    "ENGINES",
    "FIELDS",
    "FIELD_AGGREGATION",
    "HISTOGRAM_FIELDS",
    "PROCESS_START_TIME",
    "SCALAR_FIELDS",
    "Aggregation",
    "EngineSpec",
    "Source",
    "SourceKind",
]
