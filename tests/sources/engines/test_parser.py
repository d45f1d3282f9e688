"""Reading engines' `/metrics` bodies: real formats, and hostile ones."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from exporter.model import EngineReading, Histogram, ModelReading, ModelStats
from exporter.sources.engines.catalog import BUILTIN, ENGINES, parse_catalog
from exporter.sources.engines.parser import (
    DUPLICATE_SERIES,
    INVALID_LINE,
    INVALID_UTF8,
    INVALID_VALUE,
    MAX_MODEL_CHARS,
    MAX_MODELS,
    NOT_METRICS,
    TRUNCATED,
    TYPE_CONFLICT,
    UNKNOWN_ENGINE,
    EngineParser,
    ExpositionError,
    parse_engine,
)
from simulator.bodies.exposition import TEXT_ONLY_ENGINES, render_exposition
from simulator.bodies.faults import BodyFault, corrupt
from tests.support.engine_stats import STATS
from tests.support.paths import ENGINE_FIXTURES

FIXTURES = ENGINE_FIXTURES
REFERENCE = FIXTURES / "vllm-0.33-v1.metrics.txt"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
INF = math.inf


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def summed(model: ModelReading) -> ModelStats:
    """A model's reading with its series added up (per `le` for buckets), to compare with
    what an engine says in all: the parser itself never adds counters across series."""
    histograms: dict[str, Histogram] = {}
    for (name, _), h in model.histograms.items():
        seen = histograms.get(name)
        if seen is None:
            histograms[name] = h
            continue
        by_le = dict(seen.buckets)
        for le, count in h.buckets:
            by_le[le] = by_le.get(le, 0.0) + count
        histograms[name] = Histogram(tuple(sorted(by_le.items())), seen.count + h.count,
                                     seen.sum + h.sum)  # fmt: skip
    return ModelStats(
        model=model.model,
        prompt_tokens=model.total("prompt_tokens"),
        generation_tokens=model.total("generation_tokens"),
        requests_running=model.requests_running,
        requests_waiting=model.requests_waiting,
        requests_finished=model.total("requests_finished"),
        kv_cache_usage_ratio=model.kv_cache_usage_ratio,
        preemptions=model.total("preemptions"),
        time_to_first_token_seconds=histograms.get("time_to_first_token_seconds"),
        inter_token_latency_seconds=histograms.get("inter_token_latency_seconds"),
    )


def only_model(reading: EngineReading) -> ModelStats:
    assert len(reading.models) == 1, reading.models
    return summed(reading.models[0])


def models_of(reading: EngineReading) -> dict[str, ModelStats]:
    return {m.model: summed(m) for m in reading.models}


def kinds(reading: EngineReading) -> dict[str, int]:
    return dict(reading.problem_counts)


def error_of(body: bytes) -> ExpositionError:
    with pytest.raises(ExpositionError) as caught:
        parse_engine(body)
    return caught.value


# ------------------------------------------------------------------------ the reference


def test_reference_vllm_exposition() -> None:
    reading = parse_engine(REFERENCE.read_bytes())
    assert reading.engine == "vllm"
    assert reading.process_start_time == 1.79552220515e09
    stats = only_model(reading)
    assert stats.model == LLAMA
    assert stats.prompt_tokens == 214975.0
    assert stats.generation_tokens == 51123.0
    assert stats.requests_running == 8.0
    assert stats.requests_waiting == 2.0
    assert stats.requests_finished == 140.0  # 131 stop + 9 length + 0 abort/error/repetition
    assert stats.kv_cache_usage_ratio == 0.3468
    assert stats.preemptions == 0.0
    ttft = stats.time_to_first_token_seconds
    assert ttft is not None
    assert ttft.count == 140.0
    assert ttft.sum == 26.76893601608173
    assert ttft.buckets[:9] == (
        (0.001, 0.0),
        (0.005, 0.0),
        (0.01, 0.0),
        (0.02, 0.0),
        (0.04, 11.0),
        (0.06, 17.0),
        (0.08, 22.0),
        (0.1, 30.0),
        (0.25, 96.0),
    )
    assert ttft.buckets[-2:] == ((2560.0, 140.0), (INF, 140.0))
    assert len(ttft.buckets) == 23
    itl = stats.inter_token_latency_seconds
    assert itl is not None
    assert (itl.count, itl.sum) == (6885.0, 140.53473267921993)
    assert itl.buckets[:3] == ((0.01, 60.0), (0.025, 5111.0), (0.05, 6885.0))
    assert itl.buckets[-1] == (INF, 6885.0)
    assert len(itl.buckets) == 20


# ------------------------------------------------------------- the other engines' formats


def test_vllm_v0_reads_the_older_names() -> None:
    reading = parse_engine(fixture("vllm-v0.metrics.txt"))
    assert reading.engine == "vllm"
    assert reading.process_start_time == 1.73024133297e09
    stats = only_model(reading)
    assert stats.model == "mistralai/Mistral-7B-Instruct-v0.3"
    assert (stats.prompt_tokens, stats.generation_tokens) == (96311.0, 27004.0)
    assert (stats.requests_running, stats.requests_waiting) == (12.0, 3.0)
    assert stats.requests_finished == 100.0
    assert stats.kv_cache_usage_ratio == 0.5121  # vllm:gpu_cache_usage_perc
    assert stats.preemptions == 4.0
    assert stats.time_to_first_token_seconds is not None
    assert stats.time_to_first_token_seconds.count == 100.0
    itl = stats.inter_token_latency_seconds  # vllm:time_per_output_token_seconds
    assert itl is not None
    assert (itl.count, itl.sum) == (7000.0, 163.1124770641327)
    assert itl.buckets[:3] == ((0.01, 0.0), (0.025, 4100.0), (0.05, 6850.0))
    assert len(itl.buckets) == 14


def test_vllm_multiprocess_data_parallel_sums_engines_and_takes_the_fullest_cache() -> None:
    reading = parse_engine(fixture("vllm-v1-multiprocess.metrics.txt"))
    assert reading.engine == "vllm"
    assert reading.process_start_time is None  # no process collector in multiprocess mode
    stats = only_model(reading)
    assert stats.model == "Qwen/Qwen2.5-32B-Instruct"
    assert stats.prompt_tokens == 1210342.0 + 1187906.0
    assert stats.generation_tokens == 312250.0 + 305611.0
    assert stats.requests_running == 21.0 + 19.0
    assert stats.requests_waiting == 4.0
    assert stats.requests_finished == 181.0 + 19.0 + 190.0 + 10.0
    assert stats.kv_cache_usage_ratio == 0.7102  # engine 1, over its two API-server pids
    assert stats.preemptions == 3.0
    ttft = stats.time_to_first_token_seconds
    assert ttft is not None
    assert (ttft.count, ttft.sum) == (400.0, 49.82 + 51.5)
    assert ttft.buckets[3] == (0.02, 3.0)  # 2 + 1, per le
    assert ttft.buckets[-1] == (INF, 400.0)
    itl = stats.inter_token_latency_seconds
    assert itl is not None
    assert (itl.count, itl.sum) == (24800.0, 601.0)
    assert itl.buckets[:2] == ((0.01, 180.0), (0.025, 18680.0))


def test_sglang_older_release() -> None:
    reading = parse_engine(fixture("sglang-0.4.metrics.txt"))
    assert reading.engine == "sglang"
    assert reading.process_start_time is None
    stats = only_model(reading)
    assert stats.model == LLAMA
    assert (stats.prompt_tokens, stats.generation_tokens) == (2017734.0, 1880231.0)
    assert (stats.requests_running, stats.requests_waiting) == (118.0, 37.0)
    assert stats.requests_finished == 2745.0
    assert stats.kv_cache_usage_ratio == 0.2786
    assert stats.preemptions is None
    assert stats.time_to_first_token_seconds is not None
    assert stats.time_to_first_token_seconds.count == 2745.0
    assert stats.time_to_first_token_seconds.sum == 21877.5
    itl = stats.inter_token_latency_seconds  # sglang:time_per_output_token_seconds
    assert itl is not None
    assert (itl.count, itl.sum) == (3360901.0, 116532.28125)
    assert itl.buckets[0] == (0.005, 3.0)


def test_sglang_current_release_with_dp_ranks() -> None:
    stats = only_model(parse_engine(fixture("sglang-0.5.metrics.txt")))
    assert stats.model == "Qwen/Qwen3-8B"
    assert (stats.prompt_tokens, stats.generation_tokens) == (884512.0, 201736.0)
    assert stats.requests_running == 30.0 + 26.0  # dp_rank 0 and 1
    assert stats.requests_waiting == 1.0
    assert stats.requests_finished == 1203.0
    assert stats.kv_cache_usage_ratio == 0.19  # the fuller of the two ranks
    assert stats.preemptions == 5.0
    assert stats.time_to_first_token_seconds is not None
    assert stats.time_to_first_token_seconds.buckets[:2] == ((0.1, 410.0), (0.2, 930.0))
    itl = stats.inter_token_latency_seconds
    assert itl is not None
    assert (itl.count, itl.sum) == (201536.0, 2203.75)


def test_tgi() -> None:
    reading = parse_engine(fixture("tgi-3.3.metrics.txt"))
    assert reading.engine == "tgi"
    assert reading.process_start_time is None
    stats = only_model(reading)
    assert stats.model == ""
    assert stats.prompt_tokens == 311270.0  # tgi_request_input_length_sum
    assert stats.generation_tokens == 148812.0  # tgi_request_generated_tokens_sum
    assert (stats.requests_running, stats.requests_waiting) == (4.0, 2.0)
    assert stats.requests_finished == 1270.0
    assert stats.kv_cache_usage_ratio is None
    assert stats.preemptions is None
    assert stats.time_to_first_token_seconds is None
    itl = stats.inter_token_latency_seconds
    assert itl is not None
    assert (itl.count, itl.sum) == (1270.0, 27.381)
    assert len(itl.buckets) == 36
    assert itl.buckets[0] == (0.0001 * 1.5, 0.0)


def test_trtllm_serve() -> None:
    reading = parse_engine(fixture("trtllm.metrics.txt"))
    assert reading.engine == "trtllm"
    assert reading.process_start_time is None
    stats = only_model(reading)
    assert stats.model == ""  # model_name="undefined"
    assert (stats.prompt_tokens, stats.generation_tokens) == (402113.0, 150907.0)
    assert (stats.requests_running, stats.requests_waiting) == (17.0, 5.0)
    assert stats.requests_finished == 600.0
    assert stats.kv_cache_usage_ratio == 0.4475
    assert stats.preemptions is None
    assert stats.time_to_first_token_seconds is not None
    assert stats.time_to_first_token_seconds.sum == 38.25
    itl = stats.inter_token_latency_seconds
    assert itl is not None
    assert (itl.count, itl.sum) == (600.0, 11.5)


def test_trtllm_with_a_real_model_name_keeps_it() -> None:
    body = b'trtllm_prompt_tokens_total{engine_type="trtllm",model_name="nemotron-nano-3"} 7.0\n'
    assert only_model(parse_engine(body)).model == "nemotron-nano-3"


def test_triton_tokens_at_the_backend_and_requests_once_at_the_ensemble() -> None:
    reading = parse_engine(fixture("triton-trtllm.metrics.txt"))
    assert reading.engine == "triton" and reading.problems == ()
    assert reading.matched.startswith(
        "triton: 52 sample line(s) of its names, the first at line 11"
    )
    models = models_of(reading)
    assert set(models) == {"ensemble", "preprocessing", "postprocessing", "tensorrt_llm"}
    backend = models["tensorrt_llm"]
    # tokens: the backend's histograms' _sum; its own request count is a step's: not read
    assert (backend.prompt_tokens, backend.generation_tokens) == (3717.0, 7040.0)
    assert backend.requests_finished is None
    # gauges picked out of their families by label
    assert (backend.requests_running, backend.requests_waiting) == (4.0, 2.0)
    assert backend.kv_cache_usage_ratio == pytest.approx(138 / 4309)
    ensemble = models["ensemble"]
    assert ensemble.requests_finished == 59.0  # not 59 x 3 + 7040 over the steps
    assert models["postprocessing"].requests_finished is None  # streamed: once per token
    ttft = ensemble.time_to_first_token_seconds  # milliseconds, scaled to seconds
    assert ttft is not None and (ttft.count, ttft.sum) == (59.0, pytest.approx(13.8725))
    assert ttft.buckets[:2] == ((0.1, 12.0), (0.5, 51.0))
    assert sum(m.requests_finished or 0 for m in models.values()) == 59.0


def test_triton_without_an_ensemble_counts_every_models_requests() -> None:
    body = (
        b'nv_inference_request_success{model="resnet",version="1"} 10\n'
        b'nv_inference_request_success{model="bert",version="2"} 5\n'
    )
    models = models_of(parse_engine(body))
    assert {m: s.requests_finished for m, s in models.items()} == {"resnet": 10.0, "bert": 5.0}


def test_a_labelled_ratio_outside_0_1_is_not_read_and_is_counted() -> None:
    body = (
        b'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="m",version="1"} 40\n'
        b'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="m",version="1"}'
        b" 1.5\n"
        b'nv_inference_request_success{model="m",version="1"} 3\n'
    )
    reading = parse_engine(body)
    stats = only_model(reading)
    assert stats.kv_cache_usage_ratio is None and stats.requests_finished == 3.0
    assert reading.problem_counts == {INVALID_VALUE: 1}


def test_llamacpp_six_significant_digits_and_no_model_name() -> None:
    reading = parse_engine(fixture("llamacpp.metrics.txt"))
    assert reading.engine == "llamacpp" and reading.problems == ()
    stats = only_model(reading)
    assert stats.model == ""  # no labels at all: the pod names the model
    # 1,234,567 and 2,345,678 as the server prints them: within 5e-6 of the truth
    assert (stats.prompt_tokens, stats.generation_tokens) == (1234570.0, 2345680.0)
    assert stats.prompt_tokens == pytest.approx(1234567, rel=5e-6)
    assert (stats.requests_running, stats.requests_waiting) == (3.0, 1.0)
    assert stats.requests_finished is None and stats.kv_cache_usage_ratio is None


def test_a_user_catalog_engine_is_read_by_a_parser_built_from_it() -> None:
    catalog = BUILTIN.with_entries(
        parse_catalog(
            """engines:
  - name: acme
    ports: [9100]
    model_labels: [served_model]
    fields:
      prompt_tokens: [{counter: acme_input_tokens_total}]
      requests_waiting: [{gauge: acme_queue, labels: {state: waiting}}]
      kv_cache_usage_ratio: [{gauge: acme_kv_percent, scale: 0.01}]
"""
        )
    )
    body = (
        b'acme_input_tokens_total{served_model="m1"} 120\n'
        b'acme_queue{served_model="m1",state="waiting"} 4\n'
        b'acme_queue{served_model="m1",state="running"} 9\n'
        b'acme_kv_percent{served_model="m1"} 37.5\n'
    )
    reading = EngineParser(catalog).parse(body)
    stats = only_model(reading)
    assert (reading.engine, stats.model, stats.prompt_tokens) == ("acme", "m1", 120.0)
    assert (stats.requests_waiting, stats.kv_cache_usage_ratio) == (4.0, 0.375)
    with pytest.raises(ExpositionError, match="no engine of the catalog"):
        parse_engine(body)  # the built-in catalog does not know it


# ---------------------------------------------------------------------------- robustness


def first_engine_line(body: bytes) -> int:
    return body.index(b"\nvllm:") + 1


def test_a_body_cut_anywhere_is_refused_whole_unless_cut_between_lines() -> None:
    body = REFERENCE.read_bytes()
    full = only_model(parse_engine(body))
    start = first_engine_line(body)
    fields = [f.name for f in dataclasses.fields(ModelStats) if f.name != "model"]
    previous: dict[str, object] = {}
    for cut in range(1, len(body) + 1, 97):
        part = body[:cut]
        try:
            reading = parse_engine(part)
        except ExpositionError as error:
            if cut <= body.index(b"\n", start):  # the first engine line is not whole
                assert error.kind in (UNKNOWN_ENGINE, NOT_METRICS), cut
            else:
                assert error.kind == TRUNCATED, cut
                assert not part.endswith(b"\n")
            continue
        assert part.endswith(b"\n")
        assert reading.engine == "vllm"
        assert reading.problems == ()
        present: dict[str, object] = {}
        for model in reading.models:
            assert model.model == LLAMA
            stats = summed(model)
            present = {f: getattr(stats, f) for f in fields if getattr(stats, f) is not None}
        assert set(previous) <= set(present), cut
        for name, value in present.items():
            final = getattr(full, name)
            if isinstance(value, Histogram):
                assert value == final  # a histogram shows only once whole
            else:
                assert isinstance(value, float) and isinstance(final, float)
                assert value <= final
                assert value >= previous.get(name, value)  # type: ignore[operator]
        previous = present


def test_a_body_cut_short_is_refused_whole() -> None:
    body = REFERENCE.read_bytes()
    line = body.index(b"\nvllm:prompt_tokens_total{")
    cut = body.index(b"214975.0", line) + 4  # "2149" of the prompt tokens
    assert error_of(body[:cut]).kind == TRUNCATED
    assert error_of(body[:-1]).kind == TRUNCATED  # only the final newline missing


def test_openmetrics_without_eof_is_cut_short() -> None:
    body = (
        b"# TYPE vllm:prompt_tokens counter\n"
        b'vllm:prompt_tokens_total{engine="0",model_name="m"} 100.0\n'
    )
    with pytest.raises(ExpositionError) as caught:
        parse_engine(body, openmetrics=True)
    assert caught.value.kind == TRUNCATED
    for ending in (b"# EOF\n", b"# EOF"):
        reading = parse_engine(body + ending, openmetrics=True)
        assert only_model(reading).prompt_tokens == 100.0


def test_a_line_with_invalid_utf8_is_not_read_and_makes_no_model() -> None:
    body = REFERENCE.read_bytes()
    body = body.replace(b"Histogram of time to first token", b"Histogram \xff\xfe\x80 of TTFT")
    line = body.index(b"\nvllm:prompt_tokens_total{") + 1
    broken = body[:line] + body[line:].replace(LLAMA.encode(), b"llama-\xc3\x28-\xe2\x82", 1)
    reading = parse_engine(broken)
    stats = only_model(reading)  # no second model
    assert stats.model == LLAMA
    assert stats.prompt_tokens is None  # held by the ledger, not read as 0
    assert stats.generation_tokens == 51123.0
    assert stats.time_to_first_token_seconds is not None  # a HELP line is not read
    assert kinds(reading) == {INVALID_UTF8: 1}
    (problem,) = reading.problems
    assert broken.split(b"\n")[problem.line - 1].startswith(b"vllm:prompt_tokens_total{")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n\t\n",
        b"<!DOCTYPE html>\n<html><body>vllm:prompt_tokens_total 5</body></html>\n",
        b"\n\n  <html><head><title>502 Bad Gateway</title></head></html>",
        b'{"error": "not found", "vllm:prompt_tokens_total": 5}',
        b'[{"gpuMemUsage": 123, "iter": 5, "numActiveRequests": 1}]',  # trtllm-serve /metrics
        b"hello world\nthis is not an exposition\n",
        b"# just a comment\n# EOF\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    ],
)
def test_what_is_not_an_exposition(body: bytes) -> None:
    assert error_of(body).kind == NOT_METRICS


@pytest.mark.parametrize("seed", range(12))
def test_binary_junk(seed: int) -> None:
    assert error_of(random.Random(seed).randbytes(8192)).kind == NOT_METRICS


def test_an_exposition_of_no_known_engine() -> None:
    body = b"# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.21\n"
    error = error_of(body)
    assert error.kind == UNKNOWN_ENGINE
    assert isinstance(error, ValueError)


def test_openmetrics_with_exemplars_created_and_eof() -> None:
    body = (
        b"# TYPE vllm:prompt_tokens counter\n"
        b"# HELP vllm:prompt_tokens Number of prefill tokens processed.\n"
        b'vllm:prompt_tokens_total{engine="0",model_name="m"} 100.0 # {trace_id="a1"} 3.0 1.7e9\n'
        b'vllm:prompt_tokens_created{engine="0",model_name="m"} 1.7e+09\n'
        b"# TYPE vllm:time_to_first_token_seconds histogram\n"
        b'vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 3 '
        b'# {trace_id="b2"} 0.05 1.7e9\n'
        b'vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 5\n'
        b'vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 5\n'
        b'vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 1.25\n'
        b'vllm:time_to_first_token_seconds_created{engine="0",model_name="m"} 1.7e+09\n'
        b"# EOF\n"
        b'vllm:prompt_tokens_total{engine="1",model_name="m"} 999.0\n'
    )
    stats = only_model(parse_engine(body))
    assert stats.prompt_tokens == 100.0  # nothing after # EOF
    assert stats.time_to_first_token_seconds == Histogram(
        buckets=((0.1, 3.0), (INF, 5.0)), count=5.0, sum=1.25
    )


def test_values_no_counter_or_ratio_can_hold_are_not_read() -> None:
    body = (
        b'vllm:num_requests_running{model_name="m"} NaN\n'
        b'vllm:num_requests_waiting{model_name="m"} +Inf\n'
        b'vllm:prompt_tokens_total{model_name="m"} -Inf\n'
        b'vllm:generation_tokens_total{model_name="m"} 12\n'
        b'vllm:request_success_total{model_name="m"} -3\n'
        b'vllm:num_preemptions_total{model_name="m"} NaN\n'
        b'vllm:kv_cache_usage_perc{model_name="m"} 1.5\n'
        b'vllm:gpu_cache_usage_perc{model_name="m"} 0.25\n'  # the older name stands in
        b'vllm:time_to_first_token_seconds_bucket{le="1",model_name="m"} NaN\n'
        b'vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 4\n'
        b'vllm:time_to_first_token_seconds_sum{model_name="m"} 2\n'
        b"process_start_time_seconds -1\n"
    )
    reading = parse_engine(body)
    stats = only_model(reading)
    assert stats.requests_running is None
    assert stats.requests_waiting is None
    assert stats.prompt_tokens is None
    assert stats.generation_tokens == 12.0
    assert stats.requests_finished is None
    assert stats.preemptions is None
    assert stats.kv_cache_usage_ratio == 0.25
    # no _count: the +Inf bucket's count
    assert stats.time_to_first_token_seconds == Histogram(((INF, 4.0),), 4.0, 2.0)
    assert reading.process_start_time is None
    assert kinds(reading) == {INVALID_VALUE: 8}


def test_a_histogram_without_inf_bucket_or_sum_is_absent() -> None:
    body = (
        b'vllm:time_to_first_token_seconds_bucket{le="1",model_name="m"} 1\n'
        b'vllm:time_to_first_token_seconds_count{model_name="m"} 1\n'
        b'vllm:time_to_first_token_seconds_sum{model_name="m"} 0.5\n'
        b'vllm:inter_token_latency_seconds_bucket{le="+Inf",model_name="m"} 1\n'
        b'vllm:inter_token_latency_seconds_count{model_name="m"} 1\n'
        b'vllm:time_per_output_token_seconds_bucket{le="+Inf",model_name="m"} 7\n'
        b'vllm:time_per_output_token_seconds_sum{model_name="m"} 0.7\n'
        b'vllm:generation_tokens_total{model_name="m"} 1\n'
    )
    stats = only_model(parse_engine(body))
    assert stats.time_to_first_token_seconds is None
    # inter_token_latency_seconds has no _sum: the older family stands in
    assert stats.inter_token_latency_seconds == Histogram(((INF, 7.0),), 7.0, 0.7)


def test_buckets_are_sorted_with_inf_last() -> None:
    body = (
        b'vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 4\n'
        b'vllm:time_to_first_token_seconds_bucket{le="10.0",model_name="m"} 3\n'
        b'vllm:time_to_first_token_seconds_bucket{le="0.5",model_name="m"} 1\n'
        b'vllm:time_to_first_token_seconds_bucket{le="1e+00",model_name="m"} 2\n'
        b'vllm:time_to_first_token_seconds_sum{model_name="m"} 9\n'
        b'vllm:time_to_first_token_seconds_count{model_name="m"} 4\n'
    )
    ttft = only_model(parse_engine(body)).time_to_first_token_seconds
    assert ttft is not None
    assert ttft.buckets == ((0.5, 1.0), (1.0, 2.0), (10.0, 3.0), (INF, 4.0))


def test_a_series_served_twice_is_not_read_and_distinct_series_stay_apart() -> None:
    body = (
        b'vllm:prompt_tokens_total{engine="0",model_name="m"} 100\n'
        b'vllm:prompt_tokens_total{model_name="m", engine="0"} 555\n'  # labels in another order
        b'vllm:prompt_tokens_total{engine="1",model_name="m"} 50\n'
        b'vllm:prompt_tokens_total{engine="0",model_name="other"} 7\n'
        b'vllm:generation_tokens_total{engine="0",model_name="m"} 9\n'
    )
    reading = parse_engine(body)
    m, other = reading.models
    assert m.counters == {
        ("prompt_tokens", "engine=1"): 50.0,
        ("generation_tokens", "engine=0"): 9.0,
    }
    assert other.counters == {("prompt_tokens", "engine=0"): 7.0}
    assert kinds(reading) == {DUPLICATE_SERIES: 1}
    assert reading.problems[0].line == 2


def test_a_family_served_twice_is_not_read() -> None:
    family = (
        b"# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
        b"# TYPE vllm:generation_tokens_total counter\n"
        b'vllm:generation_tokens_total{engine="0",model_name="m"} 40\n'
    )
    other = b'vllm:num_requests_running{engine="0",model_name="m"} 1\n'
    reading = parse_engine(family + other + family)
    assert only_model(reading).generation_tokens is None
    assert kinds(reading) == {DUPLICATE_SERIES: 1}


def test_a_family_typed_two_ways_is_not_read() -> None:
    body = (
        b"# TYPE vllm:generation_tokens counter\n"
        b'vllm:generation_tokens_total{engine="0",model_name="m"} 40\n'
        b"# TYPE vllm:generation_tokens_total gauge\n"
        b'vllm:num_requests_running{engine="0",model_name="m"} 1\n'
        b"# TYPE vllm:num_requests_running gauge\n"
    )
    reading = parse_engine(body)
    stats = only_model(reading)
    assert (stats.generation_tokens, stats.requests_running) == (None, 1.0)
    assert kinds(reading) == {TYPE_CONFLICT: 1}
    assert reading.problems[0].line == 3


def test_openmetrics_with_escaped_names_is_read_as_the_engine() -> None:
    body = (
        b"# HELP vllm:prompt_tokens Number of prefill tokens processed.\n"
        b"# TYPE vllm:prompt_tokens counter\n"
        b'vllm_prompt_tokens_total{engine="0",model_name="m"} 100.0\n'
        b'vllm_prompt_tokens_created{engine="0",model_name="m"} 1.7e+09\n'
        b"# TYPE vllm:num_requests_running gauge\n"
        b'vllm_num_requests_running{engine="0",model_name="m"} 3.0\n'
        b"# EOF\n"
    )
    reading = parse_engine(body, openmetrics=True)
    assert reading.engine == "vllm"
    stats = only_model(reading)
    assert (stats.prompt_tokens, stats.requests_running) == (100.0, 3.0)
    both = body.replace(b"# EOF\n", b'vllm:prompt_tokens_total{engine="0",model_name="m"} 1\n')
    assert kinds(parse_engine(both)) == {DUPLICATE_SERIES: 1}  # one series, two spellings


def test_data_parallel_engines_add_up_and_the_kv_cache_takes_the_fullest() -> None:
    body = (
        b"".join(
            b'vllm:%s{engine="%d",model_name="m"} %s\n' % (name, engine, value)
            for engine in (0, 1)
            for name, value in (
                (b"num_requests_running", b"3" if engine else b"5"),
                (b"num_requests_waiting", b"1"),
                (b"kv_cache_usage_perc", b"0.5" if engine else b"0.75"),
                (b"request_success_total", b"10"),
                (b"time_to_first_token_seconds_bucket", b"2"),
            )
        )
        .replace(b'_bucket{engine="0"', b'_bucket{le="+Inf",engine="0"')
        .replace(b'_bucket{engine="1"', b'_bucket{le="+Inf",engine="1"')
    )
    body += b'vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 1.5\n'
    body += b'vllm:time_to_first_token_seconds_sum{engine="1",model_name="m"} 0.5\n'
    stats = only_model(parse_engine(body))
    assert stats.requests_running == 8.0
    assert stats.requests_waiting == 2.0
    assert stats.kv_cache_usage_ratio == 0.75
    assert stats.requests_finished == 20.0
    assert stats.time_to_first_token_seconds == Histogram(((INF, 4.0),), 4.0, 2.0)


def test_multiprocess_pid_series_add_up() -> None:
    body = (
        b'vllm:num_requests_running{model_name="m",pid="10"} 2\n'
        b'vllm:num_requests_running{model_name="m",pid="11"} 3\n'
        b'vllm:kv_cache_usage_perc{model_name="m",pid="10"} 0.1\n'
        b'vllm:kv_cache_usage_perc{model_name="m",pid="11"} 0.3\n'
    )
    stats = only_model(parse_engine(body))
    assert (stats.requests_running, stats.kv_cache_usage_ratio) == (5.0, 0.3)


def test_escaped_label_values() -> None:
    body = (
        b'vllm:prompt_tokens_total{model_name="org/\\"quoted\\" back\\\\slash\\nnext",x="}"} 3\n'
        b'vllm:generation_tokens_total{engine="0", model_name="a}b,c=\\"d\\""} 4\n'
    )
    by_model = models_of(parse_engine(body))
    assert by_model['org/"quoted" back\\slash\nnext'].prompt_tokens == 3.0
    assert by_model['a}b,c="d"'].generation_tokens == 4.0


def test_timestamps_crlf_and_a_missing_model_label() -> None:
    body = (
        b'vllm:prompt_tokens_total{model_name="m"} 100 1700000000000\r\n'
        b'vllm:generation_tokens_total{model_name="m"}\t20\r\n'
        b"vllm:num_requests_running 4\r\n"
    )
    by_model = models_of(parse_engine(body))
    assert by_model["m"].prompt_tokens == 100.0
    assert by_model["m"].generation_tokens == 20.0
    assert by_model[""].requests_running == 4.0


def test_a_garbled_line_is_not_read() -> None:
    body = (
        b'vllm:prompt_tokens_total{model_name="m"} 12abc\n'
        b'vllm:generation_tokens_total{model_name="m"} 0x1F\n'
        b'vllm:num_requests_running{model_name="m"} 2\n'
        b'vllm:num_requests_waiting{model_name="m"} 1_000\n'
        b'vllm:request_success_total{model_name="m"} 4 garbage here\n'
        b'vllm:num_preemptions_total{model_name="m",engine="0",model_name="n"} 1\n'
        b'vllm:kv_cache_usage_perc{model_name="m" engine="0"} 0.5\n'
        b'vllm:time_to_first_token_seconds_bucket{le="soon",model_name="m"} 1\n'
        b'vllm:time_to_first_token_seconds_bucket{model_name="m"} 1\n'
        b'vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 1\n'
        b'vllm:time_to_first_token_seconds_sum{model_name="m"} 0.5\n'
    )
    reading = parse_engine(body)
    stats = only_model(reading)
    assert (stats.prompt_tokens, stats.generation_tokens) == (None, None)
    assert stats.requests_running == 2.0
    assert (stats.requests_waiting, stats.requests_finished) == (None, None)
    assert (stats.preemptions, stats.kv_cache_usage_ratio) == (None, None)
    assert stats.time_to_first_token_seconds == Histogram(((INF, 1.0),), 1.0, 0.5)
    assert kinds(reading) == {INVALID_LINE: 8}
    assert [p.line for p in reading.problems] == [1, 2, 4, 5, 6, 7, 8, 9]


def test_reading_stops_after_max_series_and_counts_the_rest() -> None:
    lines = [b'vllm:prompt_tokens_total{engine="%d",model_name="m"} 1\n' % i for i in range(50)]
    reading = parse_engine(b"".join(lines), max_series=10)
    assert only_model(reading).prompt_tokens == 10.0
    assert reading.dropped_series == 40
    many = b"".join(
        b'vllm:num_requests_waiting{model_name="m",pid="%d"} 1\n' % i for i in range(10_050)
    )
    reading = parse_engine(many)
    assert only_model(reading).requests_waiting == 10_000.0
    assert reading.dropped_series == 50


def test_at_most_16_models_and_128_characters_each() -> None:
    body = b"".join(
        b'vllm:prompt_tokens_total{model_name="model-%02d"} %d\n' % (i, i) for i in range(20)
    )
    long_name = "x" * 300
    body += b'vllm:prompt_tokens_total{model_name="%s"} 1\n' % long_name.encode()
    reading = parse_engine(body)
    assert len(reading.models) == MAX_MODELS
    assert [m.model for m in reading.models] == [f"model-{i:02d}" for i in range(16)]
    assert reading.dropped_series == 5
    one = parse_engine(b'vllm:prompt_tokens_total{model_name="%s"} 1\n' % long_name.encode())
    assert only_model(one).model == long_name[:MAX_MODEL_CHARS]


def test_series_labels_past_the_cap_are_dropped() -> None:
    body = b'vllm:prompt_tokens_total{model_name="m",engine="%s"} 1\n' % (b"x" * 300)
    body += b'vllm:generation_tokens_total{model_name="m",engine="0"} 2\n'
    reading = parse_engine(body)
    assert only_model(reading).prompt_tokens is None
    assert reading.dropped_series == 1


def test_names_match_whole_not_by_prefix() -> None:
    body = (
        b'vllm:num_requests_waiting_by_reason{model_name="m",reason="capacity"} 5\n'
        b'vllm:num_requests_waiting{model_name="m"} 1\n'
        b'vllm:prompt_tokens_total_extra{model_name="m"} 9\n'
        b'vllm:prompt_tokens_by_source_total{model_name="m",source="local_compute"} 8\n'
        b'vllm:prompt_tokens_total{model_name="m"} 7\n'
        b'xvllm:generation_tokens_total{model_name="m"} 6\n'
    )
    stats = only_model(parse_engine(body))
    assert (stats.requests_waiting, stats.prompt_tokens) == (1.0, 7.0)
    assert stats.generation_tokens is None


def test_the_engine_with_most_lines_wins() -> None:
    body = (
        b'sglang:prompt_tokens_total{model_name="s"} 1\n'
        b'sglang:generation_tokens_total{model_name="s"} 2\n'
        b'vllm:prompt_tokens_total{model_name="v"} 3\n'
    )
    reading = parse_engine(body)
    assert reading.engine == "sglang"
    assert only_model(reading).model == "s"


def test_an_engine_known_by_a_family_it_serves_before_any_request() -> None:
    reading = parse_engine(
        b"# TYPE tgi_batch_max_total_tokens gauge\ntgi_batch_max_total_tokens 9\n"
    )
    assert (reading.engine, reading.models, reading.problems) == ("tgi", (), ())


# ------------------------------------------ what the simulated engines' library writes, read


# Fields a simulated engine leaves out although its catalog entry reads them: Triton's
# time to first response is off unless --metrics-config histogram_latencies=true.
NOT_RENDERED = {"triton": {"time_to_first_token_seconds"}}


def expected(engine: str, stats: ModelStats) -> ModelStats:
    """What reading back `engine`'s body gives: only the fields the engine serves, and no
    model name where the engine gives none (Triton names its repository's models)."""
    served = set(ENGINES[engine].sources) - NOT_RENDERED.get(engine, set())
    values = {
        f.name: getattr(stats, f.name) if f.name in served else None
        for f in dataclasses.fields(ModelStats)
        if f.name != "model"
    }
    named = ENGINES[engine].model_labels and engine not in ("trtllm", "triton")
    return ModelStats(model=stats.model if named else "", **values)


def one(reading: EngineReading) -> ModelStats:
    """What the engine says in all: its models' readings added up (Triton's ensemble and
    steps are one served model); the KV-cache ratio is the highest."""
    if len(reading.models) == 1:
        return summed(reading.models[0])
    parts = [summed(model) for model in reading.models]
    values: dict[str, object] = {}
    for f in dataclasses.fields(ModelStats):
        given = [getattr(p, f.name) for p in parts if getattr(p, f.name) is not None]
        if f.name == "model" or not given:
            continue
        if isinstance(given[0], Histogram):
            (values[f.name],) = given  # one model serves each histogram
        else:
            values[f.name] = max(given) if f.name == "kv_cache_usage_ratio" else sum(given)
    return ModelStats(model="", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("openmetrics", [False, True])
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_render_and_read_back(engine: str, openmetrics: bool) -> None:
    body = render_exposition(engine, STATS, process_start_time=1.7e9, openmetrics=openmetrics)
    reading = parse_engine(body, openmetrics=openmetrics and engine not in TEXT_ONLY_ENGINES)
    assert reading.engine == engine
    assert one(reading) == expected(engine, STATS)
    assert reading.process_start_time == (1.7e9 if engine == "vllm" else None)


def test_render_rounds_trip_fractional_counts_for_python_engines() -> None:
    stats = dataclasses.replace(STATS, requests_finished=320.25, prompt_tokens=0.1 + 0.2)
    for engine in ("vllm", "sglang", "trtllm"):
        read = only_model(parse_engine(render_exposition(engine, stats, process_start_time=1.0)))
        assert read.requests_finished == 320.25
        assert read.prompt_tokens == 0.1 + 0.2


def test_a_field_that_is_none_is_not_served() -> None:
    stats = ModelStats(model="m", prompt_tokens=5.0)
    for engine in sorted(ENGINES):
        body = render_exposition(engine, stats, process_start_time=1.0)
        if engine in ("triton", "llamacpp"):  # they serve every family from start-up, at 0
            assert one(parse_engine(body)).prompt_tokens == 5.0
            continue
        assert one(parse_engine(body)) == expected(engine, stats)


# -------------------------------------------------- hostile bodies as the engines serve them

HOSTILE = {  # a fault of the simulated engines -> what the parser makes of it
    BodyFault.INVALID_UTF8: (INVALID_UTF8, "prompt_tokens"),
    BodyFault.DUPLICATE_SERIES: (DUPLICATE_SERIES, "generation_tokens"),
    BodyFault.NAN_VALUE: (INVALID_VALUE, "generation_tokens"),
    BodyFault.NEGATIVE_VALUE: (INVALID_VALUE, "prompt_tokens"),
}
FORMATS = [
    (e, om) for e in sorted(ENGINES) for om in (False, True) if not (e in TEXT_ONLY_ENGINES and om)
]


@pytest.mark.parametrize("fault", sorted(HOSTILE))
@pytest.mark.parametrize(("engine", "openmetrics"), FORMATS)
def test_a_bad_line_costs_its_series_and_is_counted(
    engine: str, openmetrics: bool, fault: BodyFault
) -> None:
    body = render_exposition(engine, STATS, process_start_time=1.7e9, openmetrics=openmetrics)
    reading = parse_engine(corrupt(body, fault, engine), openmetrics=openmetrics)
    kind, lost = HOSTILE[fault]
    whole = expected(engine, STATS)
    if engine in ("tgi", "llamacpp") and fault is BodyFault.INVALID_UTF8:  # no labels to
        # break: the fault hits a HELP line, which is not read
        assert kinds(reading) == {}
        assert one(reading) == whole
        return
    assert kinds(reading) == {kind: 1}
    assert one(reading) == dataclasses.replace(whole, **{lost: None})


@pytest.mark.parametrize(("engine", "openmetrics"), FORMATS)
def test_bodies_cut_short_or_not_metrics_are_refused_and_dips_are_read(
    engine: str, openmetrics: bool
) -> None:
    body = render_exposition(engine, STATS, process_start_time=1.7e9, openmetrics=openmetrics)
    for fault, error in ((BodyFault.TRUNCATED, TRUNCATED), (BodyFault.HTML_200, NOT_METRICS)):
        with pytest.raises(ExpositionError) as caught:
            parse_engine(corrupt(body, fault, engine), openmetrics=openmetrics)
        assert caught.value.kind == error
    dipped = one(
        parse_engine(corrupt(body, BodyFault.COUNTER_DIP, engine), openmetrics=openmetrics)
    )
    generation = expected(engine, STATS).generation_tokens
    assert dipped.generation_tokens is not None and generation is not None
    assert dipped.generation_tokens < generation  # a dip is the ledger's to judge
