"""Triton's body: prometheus-cpp's text for a TensorRT-LLM ensemble, whatever the `Accept`
header asks for."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from exporter.model import Histogram, ModelStats
from simulator.bodies.exposition import (
    OPENMETRICS_ACCEPT,
    TRITON_CONTENT_TYPE,
    EngineExposition,
    render_exposition,
    serve_exposition,
)
from simulator.bodies.triton import (
    TRITON_MODELS,
    cpp,
    default_gpu_uuid,
    first_response_ms,
    triton,
)
from tests.support.body_samples import value_of
from tests.support.engine_stats import STATS

SMALL = ModelStats(
    model="acme/llama",
    prompt_tokens=30.0,
    generation_tokens=120.0,
    requests_running=2.0,
    requests_waiting=1.0,
    requests_finished=3.0,
    kv_cache_usage_ratio=0.125,
)
MODEL = 'model="tensorrt_llm",version="1"'
REQUEST = 'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type='


def lines_of(body: str, family: str) -> list[str]:
    """The lines of one family: its HELP, TYPE and samples, in order."""
    names = {family, f"{family}_count", f"{family}_sum", f"{family}_bucket"}
    found = []
    for line in body.splitlines():
        name = line.split(" ")[2] if line.startswith("# ") else re.split(r"[{ ]", line)[0]
        if name in names:
            found.append(line)
    return found


def test_number_format_is_c_percent_16g() -> None:
    assert [cpp(v) for v in (59.0, 0.25, 1234567.0, 1e17, 0.1, 1 / 3)] == [
        "59", "0.25", "1234567", "1e+17", "0.1", "0.3333333333333333",
    ]  # fmt: skip
    assert [cpp(v) for v in (math.nan, math.inf, -math.inf)] == ["Nan", "+Inf", "-Inf"]


def test_core_families_line_by_line() -> None:
    body = triton(SMALL, process_start_time=1.7e9)
    assert lines_of(body, "nv_inference_request_success") == [
        "# HELP nv_inference_request_success "
        "Number of successful inference requests, all batch sizes",
        "# TYPE nv_inference_request_success counter",
        'nv_inference_request_success{model="ensemble",version="1"} 3',
        'nv_inference_request_success{model="postprocessing",version="1"} 120',
        'nv_inference_request_success{model="preprocessing",version="1"} 3',
        'nv_inference_request_success{model="tensorrt_llm",version="1"} 3',
    ]
    assert lines_of(body, "nv_inference_pending_request_count") == [
        "# HELP nv_inference_pending_request_count "
        "Instantaneous number of pending requests awaiting execution per-model.",
        "# TYPE nv_inference_pending_request_count gauge",
        'nv_inference_pending_request_count{model="ensemble",version="1"} 0',
        'nv_inference_pending_request_count{model="postprocessing",version="1"} 0',
        'nv_inference_pending_request_count{model="preprocessing",version="1"} 0',
        'nv_inference_pending_request_count{model="tensorrt_llm",version="1"} 1',
    ]
    failure = lines_of(body, "nv_inference_request_failure")
    assert failure[2] == (
        'nv_inference_request_failure{model="ensemble",reason="BACKEND",version="1"} 0'
    )
    assert len(failure) == 2 + 4 * 4
    # no blank lines, no `_total`, no timestamps, the truth's model name nowhere
    assert "\n\n" not in body and body.endswith("\n")
    assert not re.search(r"^\w+_total\b", body, flags=re.M) and "acme" not in body
    assert all(len(line.split(" ")) == 2 for line in body.splitlines() if line[0] != "#")


def test_trt_llm_families_line_by_line() -> None:
    body = triton(SMALL, process_start_time=1.7e9)
    assert lines_of(body, "nv_trt_llm_request_metrics") == [
        "# HELP nv_trt_llm_request_metrics TRT LLM request metrics",
        "# TYPE nv_trt_llm_request_metrics gauge",
        f'{REQUEST}"active",version="1"}} 2',
        f'{REQUEST}"context",version="1"}} 0',
        f'{REQUEST}"max",version="1"}} 256',
        f'{REQUEST}"scheduled",version="1"}} 2',
        f'{REQUEST}"waiting",version="1"}} 1',
    ]
    kv = "nv_trt_llm_kv_cache_block_metrics"
    assert lines_of(body, kv) == [
        f"# HELP {kv} TRT LLM KV cache block metrics",
        f"# TYPE {kv} gauge",
        f'{kv}{{kv_cache_block_type="fraction",{MODEL}}} 0.125',
        f'{kv}{{kv_cache_block_type="free",{MODEL}}} 7168',
        f'{kv}{{kv_cache_block_type="max",{MODEL}}} 8192',
        f'{kv}{{kv_cache_block_type="reused",{MODEL}}} 0',
        f'{kv}{{kv_cache_block_type="tokens_per",{MODEL}}} 32',
        f'{kv}{{kv_cache_block_type="used",{MODEL}}} 1024',
    ]
    out = 'model="tensorrt_llm",response_metric_type="total_output_tokens",version="1"'
    assert lines_of(body, "nv_llm_output_token_len") == [
        "# HELP nv_llm_output_token_len TRT LLM response metrics",
        "# TYPE nv_llm_output_token_len histogram",
        f"nv_llm_output_token_len_count{{{out}}} 3",
        f"nv_llm_output_token_len_sum{{{out}}} 120",
        f'nv_llm_output_token_len_bucket{{{out},le="10"}} 0',
        f'nv_llm_output_token_len_bucket{{{out},le="50"}} 0',
        f'nv_llm_output_token_len_bucket{{{out},le="100"}} 3',  # 40 tokens a request
        f'nv_llm_output_token_len_bucket{{{out},le="500"}} 3',
        f'nv_llm_output_token_len_bucket{{{out},le="1000"}} 3',
        f'nv_llm_output_token_len_bucket{{{out},le="+Inf"}} 3',
    ]
    inp = 'model="tensorrt_llm",response_metric_type="total_input_tokens",version="1"'
    assert value_of(body.encode(), "nv_llm_input_token_len_sum") == [b"30"]
    assert f'nv_llm_input_token_len_bucket{{{inp},le="+Inf"}} 3\n' in body


def test_families_come_counters_then_gauges_then_histograms() -> None:
    body = triton(STATS, process_start_time=1.7e9, first_response_histogram=True)
    kinds = re.findall(r"^# TYPE \S+ (\w+)$", body, flags=re.M)
    assert kinds == sorted(kinds, key=["counter", "gauge", "histogram"].index)
    assert kinds.count("histogram") == 3
    assert re.findall(r"^# TYPE (\S+)", body, flags=re.M)[:2] == [
        "nv_inference_request_success",
        "nv_inference_request_failure",
    ]
    gpu = default_gpu_uuid(STATS.model)
    assert re.fullmatch(r"GPU-[0-9a-f-]{36}", gpu)
    assert f'nv_gpu_memory_total_bytes{{gpu_uuid="{gpu}"}} 85520809984\n' in body
    assert f'nv_energy_consumption{{gpu_uuid="{gpu}"}} 1020\n' in body  # 0.3 J per token


@pytest.mark.parametrize(("streaming", "postprocessing"), [(True, b"3400"), (False, b"42")])
def test_ensemble_and_steps_count_each_request_postprocessing_each_token_when_streaming(
    streaming: bool, postprocessing: bytes
) -> None:
    body = triton(STATS, process_start_time=1.0, streaming=streaming).encode()
    for family in ("nv_inference_request_success", "nv_inference_count", "nv_inference_exec_count"):
        assert value_of(body, family) == [b"42", postprocessing, b"42", b"42"]  # TRITON_MODELS
    exposition = EngineExposition("triton", streaming=streaming)
    served = exposition.render(STATS, process_start_time=1.0)
    assert served == body


def test_durations_add_up_and_follow_the_truth_latencies() -> None:
    body = triton(STATS, process_start_time=1.0).encode()
    total = [int(v) for v in value_of(body, "nv_inference_request_duration_us")]
    assert total[0] == sum(total[1:])  # the ensemble: its steps together
    # tensorrt_llm computes for the truth's TTFT and inter-token latencies: 9.5 s + 68 s
    infer = value_of(body, "nv_inference_compute_infer_duration_us")
    assert infer[TRITON_MODELS.index("tensorrt_llm")] == b"77500000"


def test_buckets_are_cumulative_and_end_at_the_count() -> None:
    big = dataclasses.replace(
        STATS, requests_finished=1234.7, prompt_tokens=9_876_543.0, generation_tokens=246_913.9
    )
    body = triton(big, process_start_time=1.0, first_response_histogram=True).encode()
    for family in (
        "nv_llm_output_token_len",
        "nv_llm_input_token_len",
        "nv_inference_first_response_histogram_ms",
    ):
        buckets = [int(v) for v in value_of(body, f"{family}_bucket")]
        (count,) = value_of(body, f"{family}_count")
        assert buckets == sorted(buckets) and buckets[-1] == int(count)
    assert value_of(body, "nv_llm_input_token_len_sum") == [b"9876543"]
    assert value_of(body, "nv_llm_output_token_len_sum") == [b"246913"]
    assert value_of(body, "nv_llm_output_token_len_count") == [b"1234"]


def test_first_response_histogram_is_the_truth_in_milliseconds() -> None:
    ttft = Histogram(((0.1, 10.0), (0.5, 30.0), (2.5, 40.0), (math.inf, 42.0)), 42.0, 9.5)
    assert first_response_ms(ttft) == Histogram(
        ((100.0, 10.0), (500.0, 30.0), (2000.0, 30.0), (5000.0, 40.0), (math.inf, 42.0)),
        42.0,
        9500.0,
    )
    stats = dataclasses.replace(STATS, time_to_first_token_seconds=ttft)
    body = triton(stats, process_start_time=1.0, first_response_histogram=True)
    ensemble = 'model="ensemble",version="1"'
    assert lines_of(body, "nv_inference_first_response_histogram_ms") == [
        "# HELP nv_inference_first_response_histogram_ms "
        "Duration from request to first response in milliseconds",
        "# TYPE nv_inference_first_response_histogram_ms histogram",
        f"nv_inference_first_response_histogram_ms_count{{{ensemble}}} 42",
        f"nv_inference_first_response_histogram_ms_sum{{{ensemble}}} 9500",
        f'nv_inference_first_response_histogram_ms_bucket{{{ensemble},le="100"}} 10',
        f'nv_inference_first_response_histogram_ms_bucket{{{ensemble},le="500"}} 30',
        f'nv_inference_first_response_histogram_ms_bucket{{{ensemble},le="2000"}} 30',
        f'nv_inference_first_response_histogram_ms_bucket{{{ensemble},le="5000"}} 40',
        f'nv_inference_first_response_histogram_ms_bucket{{{ensemble},le="+Inf"}} 42',
    ]
    # off by default, as in Triton (`--metrics-config histogram_latencies=true`)
    assert "first_response" not in triton(stats, process_start_time=1.0)


def test_an_unknown_kv_cache_ratio_leaves_out_the_fraction() -> None:
    body = triton(dataclasses.replace(SMALL, kv_cache_usage_ratio=None), process_start_time=1.0)
    assert 'kv_cache_block_type="fraction"' not in body
    assert 'kv_cache_block_type="used",model="tensorrt_llm",version="1"} 0\n' in body


def test_triton_ignores_the_accept_header() -> None:
    text = render_exposition("triton", STATS, process_start_time=1.0)
    for accept in (OPENMETRICS_ACCEPT, "text/plain;version=1.0.0", ""):
        answer = serve_exposition("triton", STATS, process_start_time=1.0, accept=accept)
        assert answer == (text, TRITON_CONTENT_TYPE)
    assert TRITON_CONTENT_TYPE == "text/plain; charset=utf-8"
    assert not text.endswith(b"# EOF\n")
