"""One model's stats, a quote in its name and both histograms: the engine bodies' input."""

from __future__ import annotations

import math

from exporter.model import Histogram, ModelStats

INF = math.inf

STATS = ModelStats(
    model='acme/llama-"70b"',
    prompt_tokens=1200.0,
    generation_tokens=3400.0,
    requests_running=3.0,
    requests_waiting=1.0,
    requests_finished=42.0,
    kv_cache_usage_ratio=0.25,
    preemptions=2.0,
    time_to_first_token_seconds=Histogram(((0.1, 10.0), (1.0, 40.0), (INF, 42.0)), 42.0, 9.5),
    inter_token_latency_seconds=Histogram(((0.01, 100.0), (0.1, 3300.0), (INF, 3400.0)), 3400, 68),
)
