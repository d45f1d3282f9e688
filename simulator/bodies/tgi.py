"""TGI's `/metrics` body: the text of the Rust metrics-exporter-prometheus crate, written
by hand, counters without `_total`, integer counts, Rust float formatting."""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence

from exporter.model import Histogram, ModelStats

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


def rust(value: float) -> str:
    """An f64 as Rust's `Display` writes it: integral values without a fraction."""
    if value == math.inf:
        return "inf"
    if math.isfinite(value) and value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


@functools.lru_cache(maxsize=256)
def _rust_bucket_heads(name: str, bounds: tuple[float, ...]) -> tuple[str, ...]:
    return tuple(
        f'{name}_bucket{{le="{"+Inf" if le == math.inf else rust(le)}"}} ' for le in bounds
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
        shown = str(math.floor(value)) if kind == "counter" else rust(value)
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
        self.parts.append(f"{name}_sum {rust(histogram.sum)}\n")
        self.parts.append(f"{name}_count {math.floor(histogram.count)}\n\n")

    def text(self) -> str:
        return "".join(self.parts)


def tgi(stats: ModelStats) -> str:
    finished = math.floor(total(stats.requests_finished))
    seen = finished + math.floor(total(stats.requests_running, stats.requests_waiting))
    w = _RustWriter()
    w.scalar("tgi_request_count", "counter", float(seen))
    w.scalar("tgi_request_success", "counter", stats.requests_finished)
    w.scalar("tgi_queue_size", "gauge", stats.requests_waiting)
    w.scalar("tgi_batch_current_size", "gauge", stats.requests_running)
    w.scalar("tgi_batch_current_max_tokens", "gauge", total(stats.requests_running) * 1024)
    w.scalar("tgi_batch_max_total_tokens", "gauge", 65536.0)
    if stats.prompt_tokens is not None:
        mean = stats.prompt_tokens / seen if seen else 0.0
        shape = spread(_TGI_INPUT_BUCKETS, float(seen), mean)
        w.histogram("tgi_request_input_length", _with_sum(shape, stats.prompt_tokens))
    if stats.generation_tokens is not None:
        mean = stats.generation_tokens / finished if finished else 0.0
        shape = spread(_TGI_TOTAL_BUCKETS, float(finished), mean)
        w.histogram("tgi_request_generated_tokens", _with_sum(shape, stats.generation_tokens))
    w.histogram("tgi_request_max_new_tokens", spread(_TGI_TOTAL_BUCKETS, float(seen), 512.0))
    w.histogram("tgi_request_duration", spread(_TGI_DURATION_BUCKETS, float(finished), 6.0))
    w.histogram("tgi_request_queue_duration", spread(_TGI_DURATION_BUCKETS, float(finished), 0.2))
    w.histogram("tgi_request_mean_time_per_token_duration", stats.inter_token_latency_seconds)
    return w.text()


def _with_sum(histogram: Histogram, observed_sum: float) -> Histogram:
    return Histogram(buckets=histogram.buckets, count=histogram.count, sum=observed_sum)


# The families the stats do not carry, TGI's and the multiprocess engines' alike.


def spread(bounds: Sequence[float], count: float, mean: float) -> Histogram:
    """A plausible histogram of `count` observations around `mean`: a quarter at or
    below half the mean, the rest at or below twice it."""
    low = bisect.bisect_left(bounds, mean / 2)
    high = bisect.bisect_left(bounds, 2 * mean)
    counts = [0.0] * low + [float(math.floor(count / 4))] * (high - low)
    counts += [count] * (len(bounds) - high)
    buckets = (*zip(bounds, counts, strict=True), (math.inf, count))
    return Histogram(buckets=buckets, count=count, sum=count * mean)


def total(*values: float | None) -> float:
    return sum(v for v in values if v is not None)


__all__ = ["rust", "spread", "tgi", "total"]
