"""SGLang's and trtllm-serve's `/metrics` bodies: the stats written into the engine's own
prometheus_client multiprocess directory as the library's `MmapedDict` files, by the
engine's processes as the engine declares its metrics, and read back by
`MultiProcessCollector`."""

from __future__ import annotations

import functools
import glob
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from exporter.model import Histogram, ModelStats
from simulator.bodies.tgi import spread, total
from simulator.bodies.vllm import Labels, go

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
def _mmap_key(metric: str, sample: str, labels: Labels, help_text: str) -> str:
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
                    bucket = (*pairs, ("le", go(le)))
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


class MultiprocessFiles:
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
            math.floor(total(stats.prompt_tokens) * 0.3)),
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
            spread(_SGLANG_E2E_BUCKETS, math.floor(total(finished)), 6.0)),
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
    count = math.floor(total(finished))

    def one(kind: _Kind, name: str, help_text: str, value: float | Histogram | None) -> _Family:
        return _Family(kind, name, help_text, [(labels, value)], _TRTLLM_PID, "all")

    return _entries([
        _Family("counter", "trtllm_request_success", "Count of successfully processed requests.",
                [({**labels, "finished_reason": "stop"}, finished),
                 ({**labels, "finished_reason": "length"}, None if finished is None else 0.0)],
                _TRTLLM_PID),
        one("histogram", "trtllm_e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            spread(_TRTLLM_LATENCY_BUCKETS, count, 6.0)),
        one("histogram", "trtllm_time_to_first_token_seconds",
            "Histogram of time to first token in seconds.", stats.time_to_first_token_seconds),
        one("histogram", "trtllm_time_per_output_token_seconds",
            "Histogram of time per output token in seconds.", stats.inter_token_latency_seconds),
        one("histogram", "trtllm_request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            spread(_TRTLLM_LATENCY_BUCKETS, count, 0.4)),
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


MULTIPROCESS: dict[str, Callable[[ModelStats], list[_Entry]]] = {
    "sglang": _sglang,
    "trtllm": _trtllm,
}


__all__ = ["MULTIPROCESS", "MultiprocessFiles"]
