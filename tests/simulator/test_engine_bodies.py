"""The simulated engines' bodies: written by prometheus_client as the engines' servers
write them, and the hostile variants a scraper must survive."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from importlib import resources

import pytest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter.model import Histogram, ModelStats
from simulator import engine_bodies
from simulator.engine_bodies import (
    ENGINE_NAMES,
    HTML_ERROR_PAGE,
    OPENMETRICS_ACCEPT,
    TEXT_ACCEPT,
    TOKEN_SAMPLES,
    VLLM_REFERENCE_MODEL,
    BodyFault,
    EngineExposition,
    corrupt,
    render_exposition,
    serve_exposition,
)
from tests.support.engine_stats import STATS
from tests.support.paths import ENGINE_FIXTURES

FIXTURE = ENGINE_FIXTURES / "vllm-0.33-v1.metrics.txt"
INF = math.inf


def reference_stats() -> tuple[ModelStats, float]:
    """The stats and process start that the reference body shows, read with
    prometheus_client's own parser."""
    families = {f.name: f for f in text_string_to_metric_families(FIXTURE.read_text())}

    def one(name: str) -> float:
        (value,) = [s.value for s in families[name].samples if not s.name.endswith("_created")]
        return value

    def histogram(name: str) -> Histogram:
        samples = families[name].samples
        buckets = tuple((float(s.labels["le"]), s.value) for s in samples if "le" in s.labels)
        (count,) = [s.value for s in samples if s.name.endswith("_count")]
        (total,) = [s.value for s in samples if s.name.endswith("_sum")]
        return Histogram(buckets=buckets, count=count, sum=total)

    finished = families["vllm:request_success"].samples
    stats = ModelStats(
        model=VLLM_REFERENCE_MODEL,
        prompt_tokens=one("vllm:prompt_tokens"),
        generation_tokens=one("vllm:generation_tokens"),
        requests_running=one("vllm:num_requests_running"),
        requests_waiting=one("vllm:num_requests_waiting"),
        requests_finished=sum(s.value for s in finished if s.name.endswith("_total")),
        kv_cache_usage_ratio=one("vllm:kv_cache_usage_perc"),
        preemptions=one("vllm:num_preemptions"),
        time_to_first_token_seconds=histogram("vllm:time_to_first_token_seconds"),
        inter_token_latency_seconds=histogram("vllm:inter_token_latency_seconds"),
    )
    return stats, one("process_start_time_seconds")


def samples(body: bytes) -> dict[str, float]:
    """Sample line without its value -> value."""
    lines = [line for line in body.decode().splitlines() if line and not line.startswith("#")]
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines}


def test_the_package_reference_is_the_test_fixture() -> None:
    packaged = resources.files("simulator").joinpath(engine_bodies.VLLM_REFERENCE_FILE)
    assert packaged.read_bytes() == FIXTURE.read_bytes()


def test_vllm_reproduces_the_reference_for_its_own_stats() -> None:
    stats, start = reference_stats()
    body = render_exposition("vllm", stats, process_start_time=start)
    reference = FIXTURE.read_bytes()
    differ = [
        (a, b) for a, b in zip(reference.splitlines(), body.splitlines(), strict=True) if a != b
    ]
    # the reference spreads finished requests over reasons; the simulation says "stop"
    assert [(a.split(b" ")[0], b.rsplit(b" ", 1)[1]) for a, b in differ] == [
        (b'vllm:request_success_total{engine="0",finished_reason="stop",'
         b'model_name="meta-llama/Llama-3.1-8B-Instruct"}', b"140.0"),
        (b'vllm:request_success_total{engine="0",finished_reason="length",'
         b'model_name="meta-llama/Llama-3.1-8B-Instruct"}', b"0.0"),
    ]  # fmt: skip


def test_vllm_follows_model_start_and_stats() -> None:
    body = render_exposition("vllm", STATS, process_start_time=1.8e9)
    text = body.decode()
    assert VLLM_REFERENCE_MODEL not in text
    read = samples(body)
    series = '{engine="0",model_name="acme/llama-\\"70b\\""}'
    assert read["process_start_time_seconds"] == 1.8e9
    assert read[f"vllm:prompt_tokens_total{series}"] == 1200.0
    assert read[f"vllm:generation_tokens_total{series}"] == 3400.0
    assert read[f"vllm:num_preemptions_total{series}"] == 2.0
    assert read[f"vllm:kv_cache_usage_perc{series}"] == 0.25
    assert read[f"vllm:time_to_first_token_seconds_count{series}"] == 42.0
    created = [v for k, v in read.items() if "_created{" in k]
    assert len(created) > 30 and all(1.8e9 <= t < 1.8e9 + 5 for t in created)
    # families gpuwork does not read stay as in the reference, for this model
    assert read['vllm:cache_config_info{block_size="16",cache_dtype="auto",'
                'enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.92",'
                'is_attention_free="False",kv_cache_memory_bytes="None",'
                'kv_offloading_backend="native",kv_offloading_size="None",'
                'num_cpu_blocks="None",num_gpu_blocks="29127",'
                'num_gpu_blocks_override="None",prefix_caching_hash_algo="sha256",'
                'sliding_window="None"}'] == 1.0  # fmt: skip


def test_a_field_that_is_none_is_not_served() -> None:
    stats = ModelStats(model="m", prompt_tokens=5.0)
    vllm = render_exposition("vllm", stats, process_start_time=1.0)
    assert value_of(vllm, "vllm:prompt_tokens_total") == [b"5.0"]
    assert b"# TYPE vllm:generation_tokens_total counter\n# HELP" in vllm  # no children
    assert value_of(vllm, "vllm:generation_tokens_total") == []
    assert value_of(vllm, "vllm:generation_tokens_created") == []
    for engine in ("sglang", "trtllm"):  # a multiprocess family without values is absent
        body = render_exposition(engine, stats, process_start_time=1.0).decode()
        assert "prompt_tokens_total" in body and "generation_tokens" not in body


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
@pytest.mark.parametrize(
    "accept",
    [
        TEXT_ACCEPT,
        OPENMETRICS_ACCEPT,
        "application/openmetrics-text",
        "text/plain;version=1.0.0;escaping=allow-utf-8",
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
        "",
    ],
)
def test_bodies_are_the_registry_as_prometheus_client_encodes_it(engine: str, accept: str) -> None:
    exposition = EngineExposition(engine)
    try:
        for stats in (STATS, dataclasses.replace(STATS, generation_tokens=3500.0)):
            body, content_type = exposition.serve(stats, process_start_time=1.7e9, accept=accept)
            encoder, wanted_type = choose_encoder(accept)
            assert content_type == wanted_type
            assert body == encoder(exposition.registry)  # cached parts change nothing
    finally:
        exposition.close()


def test_openmetrics_is_what_prometheus_client_0_26_writes() -> None:
    body = render_exposition("vllm", STATS, process_start_time=1.7e9, openmetrics=True).decode()
    assert body.endswith("# EOF\n")
    assert "# TYPE vllm:prompt_tokens counter\n" in body  # family names keep their colons
    assert 'vllm_prompt_tokens_total{engine="0",' in body  # sample names: underscores
    assert 'vllm_prompt_tokens_created{engine="0",' in body
    assert "vllm:prompt_tokens_total" not in body
    # ... which prometheus_client's own strict OpenMetrics parser then refuses: its
    # metadata names a family (`vllm:prompt_tokens`) that no sample line carries
    with pytest.raises(ValueError, match="Clashing name"):
        list(openmetrics_families(body))  # type: ignore[no-untyped-call]
    sglang = render_exposition("sglang", STATS, process_start_time=1.7e9, openmetrics=True)
    assert b"# TYPE sglang:prompt_tokens counter\n" in sglang
    assert b"sglang_prompt_tokens_total{" in sglang
    trtllm = render_exposition("trtllm", STATS, process_start_time=1.7e9, openmetrics=True)
    for om in (sglang, trtllm):
        assert om.endswith(b"# EOF\n") and b"_created" not in om
    assert len(list(openmetrics_families(trtllm.decode()))) > 10  # type: ignore[no-untyped-call]


def test_multiprocess_engines_look_like_multiprocess_mode() -> None:
    sglang = render_exposition("sglang", STATS, process_start_time=1.7e9).decode()
    trtllm = render_exposition("trtllm", STATS, process_start_time=1.7e9).decode()
    for body in (sglang, trtllm):
        assert "_created" not in body and "process_" not in body and "python_" not in body
        for labels in re.findall(r"\{([^}]*)\}", body):  # sorted
            names = [pair.split("=")[0] for pair in labels.split(",")]
            assert names == sorted(names)
    assert 'sglang:num_running_reqs{engine_type="unified",model_name="acme/llama-\\"70b\\"",' \
        'moe_ep_rank="0",pp_rank="0",tp_rank="0"} 3.0' in sglang  # fmt: skip
    assert 'pid="' not in sglang  # SGLang's gauges: mode mostrecent
    assert ('trtllm_num_requests_running{engine_type="undefined",model_name="undefined",'
            'pid="1"} 3.0') in trtllm  # fmt: skip
    # histograms are re-accumulated from per-bucket counts: `_sum` first, `_count` last
    ttft = [line for line in sglang.splitlines() if "time_to_first_token" in line]
    assert [line.split("{")[0] for line in ttft[2:]] == [
        "sglang:time_to_first_token_seconds_sum",
        *["sglang:time_to_first_token_seconds_bucket"] * 3,
        "sglang:time_to_first_token_seconds_count",
    ]
    assert [float(line.rsplit(" ", 1)[1]) for line in ttft[3:]] == [10.0, 40.0, 42.0, 42.0]


def test_multiprocess_files_are_rewritten_in_place_and_removed() -> None:
    exposition = EngineExposition("sglang")
    files = exposition._files
    assert files is not None
    path = files._dir.name
    exposition.render(STATS, process_start_time=1.0)
    first = sorted(os.listdir(path))
    assert first == ["counter_1.db", "counter_97.db", "gauge_mostrecent_97.db", "histogram_1.db"]
    inodes = {name: os.stat(os.path.join(path, name)).st_ino for name in first}
    body = exposition.render(dataclasses.replace(STATS, prompt_tokens=1300.0), process_start_time=1)
    assert b"sglang:prompt_tokens_total" in body and b"} 1300.0\n" in body
    assert {name: os.stat(os.path.join(path, name)).st_ino for name in first} == inodes
    # other series: written anew, the old ones gone
    body = exposition.render(dataclasses.replace(STATS, model="other"), process_start_time=1)
    assert b"acme" not in body and b'model_name="other"' in body
    exposition.close()
    assert not os.path.exists(path)


def test_tgi_ignores_the_accept_header() -> None:
    text = render_exposition("tgi", STATS, process_start_time=1.0)
    for accept in (OPENMETRICS_ACCEPT, "text/plain;version=1.0.0", ""):
        body, content_type = serve_exposition("tgi", STATS, process_start_time=1, accept=accept)
        assert (body, content_type) == (text, "text/plain; version=0.0.4; charset=utf-8")
    assert b"tgi_request_input_length_sum 1200\n" in text


def test_an_unknown_engine_cannot_be_rendered() -> None:
    with pytest.raises(ValueError, match="no renderer"):
        render_exposition("llamacpp", STATS, process_start_time=1.0)
    with pytest.raises(ValueError, match="no renderer"):
        corrupt(b"", BodyFault.NAN_VALUE, "llamacpp")


# ---------------------------------------------------------------------- hostile bodies

BODIES = [
    (engine, om) for engine in ENGINE_NAMES for om in (False, True) if not (engine == "tgi" and om)
]


def body_of(engine: str, openmetrics: bool) -> bytes:
    return render_exposition(engine, STATS, process_start_time=1.7e9, openmetrics=openmetrics)


def value_of(body: bytes, name: str) -> list[bytes]:
    """The values on the sample lines of `name` (as written, or escaped)."""
    names = {name.encode(), name.replace(":", "_").encode()}
    return [
        line.rsplit(b" ", 1)[1]
        for line in body.split(b"\n")
        if re.split(rb"[{ ]", line, maxsplit=1)[0] in names
    ]


@pytest.mark.parametrize(("engine", "openmetrics"), BODIES)
def test_truncated(engine: str, openmetrics: bool) -> None:
    body = body_of(engine, openmetrics)
    cut = corrupt(body, BodyFault.TRUNCATED, engine)
    assert body.startswith(cut) and len(body) / 2 < len(cut) < len(body)
    assert not cut.endswith(b"\n") and b"# EOF" not in cut
    last = cut.rsplit(b"\n", 1)[1]
    whole = body[len(cut) - len(last) :].split(b"\n", 1)[0]
    assert 0 < len(last) < len(whole)  # cut inside a line


@pytest.mark.parametrize(("engine", "openmetrics"), BODIES)
def test_invalid_utf8(engine: str, openmetrics: bool) -> None:
    body = body_of(engine, openmetrics)
    bad = corrupt(body, BodyFault.INVALID_UTF8, engine)
    with pytest.raises(UnicodeDecodeError):
        bad.decode()
    assert bad.replace(b"\xff\xfe", b"") == body
    (line,) = [line for line in bad.split(b"\n") if b"\xff" in line]
    if engine == "tgi":  # no model label: the family's HELP text
        assert line.startswith(b"# HELP tgi_request_input_length \xff\xfeInput")
    else:
        prompt = TOKEN_SAMPLES[engine][0]
        assert re.split(rb"[{ ]", line)[0] in (prompt.encode(), prompt.replace(":", "_").encode())
        assert re.search(rb'model_name="[^"]+\xff\xfe[^"]+"', line)


@pytest.mark.parametrize(("engine", "openmetrics"), BODIES)
def test_duplicate_series(engine: str, openmetrics: bool) -> None:
    body = body_of(engine, openmetrics)
    generation = TOKEN_SAMPLES[engine][1]
    bad = corrupt(body, BodyFault.DUPLICATE_SERIES, engine)
    assert len(bad.split(b"\n")) == len(body.split(b"\n")) + 1
    assert [float(v) for v in value_of(bad, generation)] == [3400.0, 6800.0]
    names = (generation.encode(), generation.replace(":", "_").encode())
    first, second = [
        re.findall(rb'\w+="[^"]*"', line)
        for line in bad.split(b"\n")
        if re.split(rb"[{ ]", line, maxsplit=1)[0] in names
    ]
    if engine != "tgi":  # the same labels in another order (TGI's sample has none)
        assert first != second and sorted(first) == sorted(second)


@pytest.mark.parametrize(("engine", "openmetrics"), BODIES)
@pytest.mark.parametrize(
    ("fault", "which", "wanted"),
    [
        (BodyFault.NAN_VALUE, 1, "nan"),
        (BodyFault.NEGATIVE_VALUE, 0, -1200.0),
        (BodyFault.COUNTER_DIP, 1, 3400.0 * 0.9),
    ],
)
def test_values(
    engine: str, openmetrics: bool, fault: BodyFault, which: int, wanted: float | str
) -> None:
    body = body_of(engine, openmetrics)
    bad = corrupt(body, fault, engine)
    name = TOKEN_SAMPLES[engine][which]
    (value,) = value_of(bad, name)
    if wanted == "nan":
        assert value == b"NaN"
    else:
        assert float(value) == pytest.approx(wanted)
    # nothing else moved: the process start time included
    others = [line for line in bad.split(b"\n") if value not in line or b"_created" in line]
    assert set(others) <= set(body.split(b"\n"))
    assert len(bad.split(b"\n")) == len(body.split(b"\n"))


def test_a_negative_value_of_zero_is_minus_five() -> None:
    body = render_exposition(
        "vllm", dataclasses.replace(STATS, prompt_tokens=0.0), process_start_time=1.0
    )
    assert value_of(
        corrupt(body, BodyFault.NEGATIVE_VALUE, "vllm"), "vllm:prompt_tokens_total"
    ) == [b"-5.0"]


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_html_200_is_the_error_page(engine: str) -> None:
    assert corrupt(body_of(engine, False), BodyFault.HTML_200, engine) == HTML_ERROR_PAGE


def test_a_fault_on_a_missing_sample_leaves_the_body() -> None:
    body = render_exposition("vllm", ModelStats(model="m"), process_start_time=1.0)
    for fault in (BodyFault.NAN_VALUE, BodyFault.INVALID_UTF8, BodyFault.DUPLICATE_SERIES):
        assert corrupt(body, fault, "vllm") == body
