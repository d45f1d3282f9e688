"""llama.cpp's body: `llama-server --metrics` text, written by hand, whatever the `Accept`
header asks for."""

from __future__ import annotations

import dataclasses
import math

from exporter.model import ModelStats
from simulator.bodies.exposition import (
    LLAMACPP_CONTENT_TYPE,
    OPENMETRICS_ACCEPT,
    render_exposition,
    serve_exposition,
)
from simulator.bodies.llamacpp import cg, llamacpp
from tests.support.body_samples import value_of
from tests.support.engine_stats import STATS

SMALL = ModelStats(
    model="acme/llama",
    prompt_tokens=4096.0,
    generation_tokens=90.0,
    requests_running=2.0,
    requests_waiting=1.0,
    requests_finished=3.0,
    kv_cache_usage_ratio=0.5,
)


def test_number_format_is_c_percent_g() -> None:
    assert [cg(v) for v in (42.0, 0.5, 1234567.0, 999999.0, 1e-5, 75.5555)] == [
        "42", "0.5", "1.23457e+06", "999999", "1e-05", "75.5555",
    ]  # fmt: skip
    assert [cg(v) for v in (math.nan, math.inf)] == ["nan", "inf"]  # glibc's ostream


def test_the_whole_body_line_by_line() -> None:
    assert llamacpp(SMALL).splitlines() == [
        "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.",
        "# TYPE llamacpp:prompt_tokens_total counter",
        "llamacpp:prompt_tokens_total 4096",
        "# HELP llamacpp:prompt_seconds_total Prompt process time",
        "# TYPE llamacpp:prompt_seconds_total counter",
        "llamacpp:prompt_seconds_total 1.024",  # 4096 tokens at 4000 tokens/s
        "# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.",
        "# TYPE llamacpp:tokens_predicted_total counter",
        "llamacpp:tokens_predicted_total 90",
        "# HELP llamacpp:tokens_predicted_seconds_total Predict process time",
        "# TYPE llamacpp:tokens_predicted_seconds_total counter",
        "llamacpp:tokens_predicted_seconds_total 2",  # 90 tokens at 45 tokens/s
        "# HELP llamacpp:n_decode_total Total number of llama_decode() calls",
        "# TYPE llamacpp:n_decode_total counter",
        "llamacpp:n_decode_total 25",  # 23 for 90 tokens 4 at a time, 2 for the prompt
        "# HELP llamacpp:n_tokens_max Largest observed n_tokens.",
        "# TYPE llamacpp:n_tokens_max counter",
        "llamacpp:n_tokens_max 2048",
        "# HELP llamacpp:n_busy_slots_per_decode "
        "Average number of busy slots per llama_decode() call",
        "# TYPE llamacpp:n_busy_slots_per_decode counter",
        "llamacpp:n_busy_slots_per_decode 3.68",  # (90 + 2) / 25
        "# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.",
        "# TYPE llamacpp:prompt_tokens_seconds gauge",
        "llamacpp:prompt_tokens_seconds 4000",
        "# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.",
        "# TYPE llamacpp:predicted_tokens_seconds gauge",
        "llamacpp:predicted_tokens_seconds 45",
        "# HELP llamacpp:requests_processing Number of requests processing.",
        "# TYPE llamacpp:requests_processing gauge",
        "llamacpp:requests_processing 2",
        "# HELP llamacpp:requests_deferred Number of requests deferred.",
        "# TYPE llamacpp:requests_deferred gauge",
        "llamacpp:requests_deferred 1",
    ]
    body = llamacpp(SMALL)
    assert body.endswith("\n") and "\n\n" not in body
    assert "acme" not in body and "{" not in body  # no model name, no labels at all


def test_large_counters_move_in_steps_of_six_digits() -> None:
    big = dataclasses.replace(SMALL, prompt_tokens=1_234_567.0, generation_tokens=2_345_678.9)
    body = render_exposition("llamacpp", big, process_start_time=1.0)
    assert value_of(body, "llamacpp:prompt_tokens_total") == [b"1.23457e+06"]
    assert value_of(body, "llamacpp:tokens_predicted_total") == [b"2.34568e+06"]
    # three more tokens do not show in the counter: it moves in steps of 10 here
    more = dataclasses.replace(big, prompt_tokens=1_234_570.0)
    more_body = render_exposition("llamacpp", more, process_start_time=1.0)
    assert value_of(more_body, "llamacpp:prompt_tokens_total") == [b"1.23457e+06"]


def test_nothing_served_yet_is_zero_and_fields_without_a_family_are_left_out() -> None:
    body = llamacpp(ModelStats(model="m")).encode()
    for name in ("prompt_tokens_total", "tokens_predicted_total", "requests_processing"):
        assert value_of(body, f"llamacpp:{name}") == [b"0"]
    assert value_of(body, "llamacpp:n_busy_slots_per_decode") == [b"0"]
    for absent in (b"success", b"finished", b"kv_cache", b"time_to_first", b"preempt"):
        assert absent not in llamacpp(STATS).encode()


def test_llamacpp_ignores_the_accept_header() -> None:
    text = render_exposition("llamacpp", STATS, process_start_time=1.0)
    for accept in (OPENMETRICS_ACCEPT, "text/plain;version=1.0.0", ""):
        answer = serve_exposition("llamacpp", STATS, process_start_time=1.0, accept=accept)
        assert answer == (text, LLAMACPP_CONTENT_TYPE)
    assert LLAMACPP_CONTENT_TYPE == "text/plain; version=0.0.4"
    assert value_of(text, "llamacpp:prompt_tokens_total") == [b"1200"]
    assert value_of(text, "llamacpp:tokens_predicted_total") == [b"3400"]
