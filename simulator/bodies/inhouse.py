"""An in-house inference server's `/metrics`: an engine gpuwork's built-in catalog does
not know, described to the exporter only by a user catalog file
(`simulator/catalogs/inhouse.yaml`), as a platform team would describe its own server.

Its names are its own, and each reaches one of the catalog's mechanisms: counters with
`_total`, the model in a `served_model` label, running and queued requests as one gauge
family told apart by a `state` label, the KV cache as a percentage (0-100, scale 0.01)
and the time to first token in milliseconds (scale 0.001). Written by prometheus_client,
as a Python server would write it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter.model import ModelStats

INHOUSE_PORT = 9100  # its one port, declared in the pod's spec and in its catalog entry


class _InhouseCollector(Collector):
    def __init__(self, stats: ModelStats, process_start_time: float) -> None:
        self.stats, self.start = stats, process_start_time

    def collect(self) -> Iterator[Metric]:
        stats, model = self.stats, [self.stats.model]
        up = GaugeMetricFamily("inhouse_up", "1 while the server accepts requests")
        up.add_metric([], 1.0)
        yield up
        start = GaugeMetricFamily("inhouse_start_time_seconds", "When the server started")
        start.add_metric([], self.start)
        yield start
        for name, value, text in (
            ("inhouse_prompt_tokens", stats.prompt_tokens, "Prompt tokens read"),
            ("inhouse_output_tokens", stats.generation_tokens, "Tokens generated"),
        ):
            if value is not None:
                counter = CounterMetricFamily(name, text, labels=["served_model"])
                counter.add_metric(model, value)
                yield counter
        if stats.requests_finished is not None:
            done = CounterMetricFamily(
                "inhouse_requests", "Requests answered", labels=["served_model", "outcome"]
            )
            done.add_metric([stats.model, "ok"], stats.requests_finished)
            yield done
        flight = GaugeMetricFamily(
            "inhouse_requests_in_flight", "Requests by state", labels=["served_model", "state"]
        )
        for state, value in (("running", stats.requests_running),
                             ("queued", stats.requests_waiting)):  # fmt: skip
            if value is not None:
                flight.add_metric([stats.model, state], value)
        yield flight
        if stats.kv_cache_usage_ratio is not None:
            kv = GaugeMetricFamily(
                "inhouse_kv_cache_percent", "KV cache in use, percent", labels=["served_model"]
            )
            kv.add_metric(model, stats.kv_cache_usage_ratio * 100)
            yield kv
        ttft = stats.time_to_first_token_seconds
        if ttft is not None:
            family = HistogramMetricFamily(
                "inhouse_first_token_milliseconds",
                "Time to the first token, milliseconds",
                labels=["served_model"],
            )
            buckets = [(_ms(le), count) for le, count in ttft.buckets]
            family.add_metric(model, buckets, ttft.sum * 1000)
            yield family


def _ms(seconds: float) -> str:
    return "+Inf" if seconds == float("inf") else repr(round(seconds * 1000, 6))


def inhouse(stats: ModelStats, *, process_start_time: float, accept: str) -> tuple[bytes, str]:
    """(body, Content-Type) for `stats`, in the format `accept` negotiates."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_InhouseCollector(stats, process_start_time))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


__all__ = ["INHOUSE_PORT", "inhouse"]
