"""Triton Inference Server's `/metrics` body (metrics port 8002) for an LLM served with the
TensorRT-LLM backend, written by hand as prometheus-cpp's `TextSerializer` writes it.

Where each fact comes from (facts only, no code taken):

- prometheus-cpp `core/src/text_serializer.cc`: `# HELP` then `# TYPE` per family, no blank
  lines, no timestamps, names as registered (no `_total` added to counters); the stream in
  the classic locale with precision `max_digits10 - 1` (16) in the default float format,
  i.e. C's `%.16g`; `Nan`, `+Inf`, `-Inf`. A histogram series: `_count`, `_sum`, then each
  `_bucket` (cumulative, integer counts) with `le` last and the `+Inf` bucket equal to the
  count. `Registry::Collect` gives the counter families, then the gauges, then the
  histograms, each kind in registration order; a family without series is not written.
  Labels are a `std::map`, so they are written in name order (`le` appended last), and
  the simulator writes a family's series in the order of their label maps.
- Triton core `src/metrics.cc`: the per-model families (labels `model`, `version`), their
  HELP texts, the GPU families (label `gpu_uuid`) and the optional first-response
  histogram (`--metrics-config histogram_latencies=true`; buckets 100, 500, 2000, 5000 ms).
  `nv_inference_request_failure` carries a `reason` label since Triton 24.x (REJECTED,
  CANCELED, BACKEND, OTHER).
- tensorrtllm_backend `inflight_batcher_llm/src/custom_metrics_reporter/
  custom_metrics_reporter.cc`: the `nv_trt_llm_*` and `nv_llm_*_token_len` families,
  labelled `model="tensorrt_llm",version="1"` and one category label.
- The tensorrtllm_backend model repository (`all_models/inflight_batcher_llm`): an
  `ensemble` of `preprocessing`, `tensorrt_llm` and `postprocessing`. Streaming
  (decoupled) runs `postprocessing` once per generated token.

The truth's model name cannot appear: Triton names models after their repository folders.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.model import Histogram, ModelStats
from simulator.bodies.tgi import spread, total

TRITON_CONTENT_TYPE = "text/plain; charset=utf-8"  # Triton's HTTP metrics endpoint
TRITON_MODELS = ("ensemble", "postprocessing", "preprocessing", "tensorrt_llm")  # name order
TRITON_LLM_MODEL = "tensorrt_llm"  # the model whose series the TRT-LLM backend writes
TRITON_VERSION = "1"
TRITON_FAILURE_REASONS = ("BACKEND", "CANCELED", "OTHER", "REJECTED")  # name order
TRITON_FIRST_RESPONSE_BUCKETS_MS = (100.0, 500.0, 2000.0, 5000.0)  # metrics.cc defaults
TRT_LLM_TOKEN_BUCKETS = (10.0, 50.0, 100.0, 500.0, 1000.0)  # custom_metrics_reporter.cc

_HELP = {
    "nv_inference_request_success": "Number of successful inference requests, all batch sizes",
    "nv_inference_request_failure": "Number of failed inference requests, all batch sizes",
    "nv_inference_count": "Number of inferences performed (does not include cached requests)",
    "nv_inference_exec_count": "Number of model executions performed "
    "(does not include cached requests)",
    "nv_inference_request_duration_us": "Cumulative inference request duration in "
    "microseconds (includes cached requests)",
    "nv_inference_queue_duration_us": "Cumulative inference queuing duration in "
    "microseconds (includes cached requests)",
    "nv_inference_compute_input_duration_us": "Cumulative compute input duration in "
    "microseconds (does not include cached requests)",
    "nv_inference_compute_infer_duration_us": "Cumulative compute inference duration in "
    "microseconds (does not include cached requests)",
    "nv_inference_compute_output_duration_us": "Cumulative inference compute output "
    "duration in microseconds (does not include cached requests)",
    "nv_energy_consumption": "GPU energy consumption in joules since the Triton Server started",
    "nv_trt_llm_disaggregated_serving_metrics": "TRT LLM disaggregated serving metrics",
    "nv_inference_pending_request_count": "Instantaneous number of pending requests awaiting "
    "execution per-model.",
    "nv_gpu_utilization": "GPU utilization rate [0.0 - 1.0)",
    "nv_gpu_memory_total_bytes": "GPU total memory, in bytes",
    "nv_gpu_memory_used_bytes": "GPU used memory, in bytes",
    "nv_gpu_power_usage": "GPU power usage in watts",
    "nv_gpu_power_limit": "GPU power management limit in watts",
    "nv_trt_llm_request_metrics": "TRT LLM request metrics",
    "nv_trt_llm_runtime_memory_metrics": "TRT LLM runtime memory metrics",
    "nv_trt_llm_kv_cache_block_metrics": "TRT LLM KV cache block metrics",
    "nv_trt_llm_inflight_batcher_metrics": "TRT LLM inflight batcher metrics",
    "nv_trt_llm_general_metrics": "TRT LLM general metrics",
    "nv_inference_first_response_histogram_ms": "Duration from request to first response "
    "in milliseconds",
    "nv_llm_output_token_len": "TRT LLM response metrics",
    "nv_llm_input_token_len": "TRT LLM response metrics",
}

# The simulated server's constants: one H100-class GPU, the engine's limits.
GPU_MEMORY_TOTAL_BYTES = 85_520_809_984.0
GPU_POWER_LIMIT_WATTS = 700.0
TRT_LLM_MAX_BATCH_SIZE = 256.0
TRT_LLM_MAX_KV_BLOCKS = 8192.0
TRT_LLM_TOKENS_PER_BLOCK = 32.0
_JOULES_PER_GENERATION_TOKEN = 0.3
_RUNTIME_MEMORY = (("cpu", 1_073_741_824.0), ("gpu", 2_147_483_648.0), ("pinned", 536_870_912.0))
# Mean per-execution durations, microseconds, where the truth has no latency histograms.
_PREPROCESSING_US, _POSTPROCESSING_US, _QUEUE_US = 800, 150, 40
_LLM_US_PER_TOKEN = 25_000


def cpp(value: float) -> str:
    """A double as prometheus-cpp writes it: C's `%.16g`, `Nan`, `+Inf`, `-Inf`."""
    if math.isnan(value):
        return "Nan"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.16g}"


Labels = tuple[tuple[str, str], ...]


def _labels(pairs: Labels) -> str:
    """`{k="v",...}` in label-name order, as prometheus-cpp's `std::map` holds them."""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs)) + "}" if pairs else ""


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    kind: str  # counter, gauge, histogram
    series: tuple[tuple[Labels, float | Histogram], ...]

    def text(self) -> str:
        if not self.series:  # prometheus-cpp skips a family without series
            return ""
        parts = [f"# HELP {self.name} {_HELP[self.name]}\n# TYPE {self.name} {self.kind}\n"]
        for labels, value in sorted(self.series, key=lambda s: sorted(s[0])):
            if isinstance(value, Histogram):
                parts.append(_histogram(self.name, labels, value))
            else:
                parts.append(f"{self.name}{_labels(labels)} {cpp(value)}\n")
        return "".join(parts)


def _histogram(name: str, labels: Labels, histogram: Histogram) -> str:
    head = _labels(labels)[:-1] + "," if labels else "{"
    lines = [
        f"{name}_count{_labels(labels)} {math.floor(histogram.count)}\n",
        f"{name}_sum{_labels(labels)} {cpp(histogram.sum)}\n",
    ]
    for le, n in histogram.buckets:
        bound = "+Inf" if le == math.inf else cpp(le)
        lines.append(f'{name}_bucket{head}le="{bound}"}} {math.floor(n)}\n')
    return "".join(lines)


def _model(name: str, *extra: tuple[str, str]) -> Labels:
    return (("model", name), ("version", TRITON_VERSION), *extra)


def default_gpu_uuid(model: str) -> str:
    """A stable `GPU-…` UUID for a simulated Triton server without a device list."""
    return f"GPU-{uuid.uuid5(uuid.NAMESPACE_URL, f'triton/{model}')}"


def triton(
    stats: ModelStats,
    *,
    process_start_time: float,
    streaming: bool = True,
    first_response_histogram: bool = False,
    gpu_uuids: Sequence[str] = (),
) -> str:
    """The body of a Triton server whose TensorRT-LLM ensemble has served `stats`:
    requests finished count once on the ensemble and each step, except `postprocessing`,
    which with `streaming` runs once per generated token."""
    requests = float(math.floor(total(stats.requests_finished)))
    generated = float(math.floor(total(stats.generation_tokens)))
    prompt = float(math.floor(total(stats.prompt_tokens)))
    running = total(stats.requests_running)
    waiting = total(stats.requests_waiting)
    executions = {
        "ensemble": requests,
        "preprocessing": requests,
        "tensorrt_llm": requests,
        "postprocessing": generated if streaming else requests,
    }
    llm_us = _llm_microseconds(stats, generated)
    compute: dict[str, tuple[float, float, float]] = {  # (input, infer, output) microseconds
        "preprocessing": (0.0, float(_PREPROCESSING_US) * requests, 0.0),
        "tensorrt_llm": (2.0 * requests, llm_us, 10.0 * requests),
        "postprocessing": (0.0, float(_POSTPROCESSING_US) * executions["postprocessing"], 0.0),
    }
    queue = {m: float(_QUEUE_US) * executions[m] for m in compute}
    duration = {m: sum(compute[m]) + queue[m] for m in compute}
    steps = tuple(compute.values())
    compute["ensemble"] = (
        sum(c[0] for c in steps),
        sum(c[1] for c in steps),
        sum(c[2] for c in steps),
    )
    queue["ensemble"] = sum(queue.values())
    duration["ensemble"] = sum(duration.values())

    def per_model(values: dict[str, float]) -> tuple[tuple[Labels, float], ...]:
        return tuple((_model(m), values[m]) for m in TRITON_MODELS)

    def llm(label: str, values: Sequence[tuple[str, float]]) -> tuple[tuple[Labels, float], ...]:
        return tuple((_model(TRITON_LLM_MODEL, (label, k)), v) for k, v in values)

    gpus = tuple(gpu_uuids) or (default_gpu_uuid(stats.model),)
    busy = min(running / 64.0, 1.0)
    power = 100.0 + 500.0 * busy
    energy = _JOULES_PER_GENERATION_TOKEN * generated / len(gpus)
    context = float(math.floor(running / 8))
    ratio = stats.kv_cache_usage_ratio
    used_blocks = float(round((ratio or 0.0) * TRT_LLM_MAX_KV_BLOCKS))
    iterations = float(math.ceil(generated / 8))

    counters = [
        _Family("nv_inference_request_success", "counter", per_model(executions)),
        _Family(
            "nv_inference_request_failure",
            "counter",
            tuple(
                (_model(m, ("reason", r)), 0.0)
                for m in TRITON_MODELS
                for r in TRITON_FAILURE_REASONS
            ),
        ),
        _Family("nv_inference_count", "counter", per_model(executions)),
        _Family("nv_inference_exec_count", "counter", per_model(executions)),
        _Family("nv_inference_request_duration_us", "counter", per_model(duration)),
        _Family("nv_inference_queue_duration_us", "counter", per_model(queue)),
        _Family(
            "nv_inference_compute_input_duration_us",
            "counter",
            per_model({m: c[0] for m, c in compute.items()}),
        ),
        _Family(
            "nv_inference_compute_infer_duration_us",
            "counter",
            per_model({m: c[1] for m, c in compute.items()}),
        ),
        _Family(
            "nv_inference_compute_output_duration_us",
            "counter",
            per_model({m: c[2] for m, c in compute.items()}),
        ),
        _Family(
            "nv_energy_consumption", "counter", tuple(((("gpu_uuid", g),), energy) for g in gpus)
        ),
        _Family(
            "nv_trt_llm_disaggregated_serving_metrics",
            "counter",
            llm(
                "disaggregated_serving_type",
                (("kv_cache_transfer_ms", 0.0), ("request_count", 0.0)),
            ),
        ),
    ]
    pending = dict.fromkeys(TRITON_MODELS, 0.0) | {TRITON_LLM_MODEL: waiting}
    gauges = [
        _Family("nv_inference_pending_request_count", "gauge", per_model(pending)),
        _Family("nv_gpu_utilization", "gauge", tuple(((("gpu_uuid", g),), busy) for g in gpus)),
        _Family(
            "nv_gpu_memory_total_bytes",
            "gauge",
            tuple(((("gpu_uuid", g),), GPU_MEMORY_TOTAL_BYTES) for g in gpus),
        ),
        _Family(
            "nv_gpu_memory_used_bytes",
            "gauge",
            tuple(((("gpu_uuid", g),), math.floor(0.9 * GPU_MEMORY_TOTAL_BYTES)) for g in gpus),
        ),
        _Family("nv_gpu_power_usage", "gauge", tuple(((("gpu_uuid", g),), power) for g in gpus)),
        _Family(
            "nv_gpu_power_limit",
            "gauge",
            tuple(((("gpu_uuid", g),), GPU_POWER_LIMIT_WATTS) for g in gpus),
        ),
        _Family(
            "nv_trt_llm_request_metrics",
            "gauge",
            llm(
                "request_type",
                (
                    ("active", running),
                    ("max", TRT_LLM_MAX_BATCH_SIZE),
                    ("scheduled", running),
                    ("context", context),
                    ("waiting", waiting),
                ),
            ),
        ),
        _Family("nv_trt_llm_runtime_memory_metrics", "gauge", llm("memory_type", _RUNTIME_MEMORY)),
        _Family(
            "nv_trt_llm_kv_cache_block_metrics",
            "gauge",
            llm(
                "kv_cache_block_type",
                (
                    ("max", TRT_LLM_MAX_KV_BLOCKS),
                    ("free", TRT_LLM_MAX_KV_BLOCKS - used_blocks),
                    ("used", used_blocks),
                    ("tokens_per", TRT_LLM_TOKENS_PER_BLOCK),
                    ("reused", 0.0),
                    *((("fraction", ratio),) if ratio is not None else ()),
                ),
            ),
        ),
        _Family(
            "nv_trt_llm_inflight_batcher_metrics",
            "gauge",
            llm(
                "inflight_batcher_specific_metric",
                (
                    ("total_context_tokens", context * _mean(prompt, requests)),
                    ("generation_requests", running - context),
                    ("micro_batch_id", 0.0),
                    ("paused_requests", 0.0),
                ),
            ),
        ),
        _Family(
            "nv_trt_llm_general_metrics",
            "gauge",
            # the timestamp's unit is not documented; here unix seconds of the last
            # iteration, one iteration every 20 ms
            llm(
                "general_type",
                (
                    ("timestamp", process_start_time + 0.02 * iterations),
                    ("iteration_counter", iterations),
                ),
            ),
        ),
    ]
    histograms: list[_Family] = []
    ttft = stats.time_to_first_token_seconds
    if first_response_histogram and ttft is not None:
        histograms.append(
            _Family(
                "nv_inference_first_response_histogram_ms",
                "histogram",
                ((_model("ensemble"), first_response_ms(ttft)),),
            )
        )
    for name, kind, tokens in (
        ("nv_llm_output_token_len", "total_output_tokens", generated),
        ("nv_llm_input_token_len", "total_input_tokens", prompt),
    ):
        shape = spread(TRT_LLM_TOKEN_BUCKETS, requests, _mean(tokens, requests))
        histogram = Histogram(buckets=shape.buckets, count=requests, sum=tokens)
        histograms.append(
            _Family(
                name,
                "histogram",
                ((_model(TRITON_LLM_MODEL, ("response_metric_type", kind)), histogram),),
            )
        )
    return "".join(family.text() for family in (*counters, *gauges, *histograms))


def first_response_ms(ttft: Histogram) -> Histogram:
    """The truth's time-to-first-token histogram (seconds) in Triton's default buckets
    (milliseconds): each bound counts what the truth's largest bound at or below it
    counts, so the buckets stay cumulative."""
    buckets = []
    for bound in TRITON_FIRST_RESPONSE_BUCKETS_MS:
        below = [n for le, n in ttft.buckets if le * 1000.0 <= bound]
        buckets.append((bound, below[-1] if below else 0.0))
    buckets.append((math.inf, ttft.count))
    return Histogram(buckets=tuple(buckets), count=ttft.count, sum=ttft.sum * 1000.0)


def _llm_microseconds(stats: ModelStats, generated: float) -> float:
    """The `tensorrt_llm` model's compute time: the truth's latencies where it has them."""
    ttft, itl = stats.time_to_first_token_seconds, stats.inter_token_latency_seconds
    if ttft is not None and itl is not None:
        return float(round((ttft.sum + itl.sum) * 1e6))
    return float(_LLM_US_PER_TOKEN) * generated


def _mean(tokens: float, requests: float) -> float:
    return tokens / requests if requests else 0.0


__all__ = [
    "TRITON_CONTENT_TYPE",
    "TRITON_FAILURE_REASONS",
    "TRITON_FIRST_RESPONSE_BUCKETS_MS",
    "TRITON_LLM_MODEL",
    "TRITON_MODELS",
    "TRT_LLM_TOKEN_BUCKETS",
    "cpp",
    "default_gpu_uuid",
    "first_response_ms",
    "triton",
]
