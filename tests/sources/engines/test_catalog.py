"""The engine catalog: one entry per engine, each name traceable to a fixture."""

from __future__ import annotations

import dataclasses

import pytest

from exporter.model import ModelStats
from exporter.sources.engines.catalog import (
    ENGINES,
    FIELD_AGGREGATION,
    FIELDS,
    HISTOGRAM_FIELDS,
    Aggregation,
    EngineSpec,
    Source,
    SourceKind,
)
from exporter.sources.engines.parser import parse_engine
from tests.support.paths import ENGINE_FIXTURES

FIXTURES = ENGINE_FIXTURES
# fixture -> the engine it shows
FIXTURE_ENGINES = {
    "vllm-0.33-v1.metrics.txt": "vllm",
    "vllm-v0.metrics.txt": "vllm",
    "vllm-v1-multiprocess.metrics.txt": "vllm",
    "sglang-0.4.metrics.txt": "sglang",
    "sglang-0.5.metrics.txt": "sglang",
    "tgi-3.3.metrics.txt": "tgi",
    "trtllm.metrics.txt": "trtllm",
}
PREFIXES = {"vllm": "vllm:", "sglang": "sglang:", "tgi": "tgi_", "trtllm": "trtllm_"}


def test_one_entry_per_engine_under_its_own_name() -> None:
    assert set(ENGINES) == {"vllm", "sglang", "tgi", "trtllm"}
    for name, spec in ENGINES.items():
        assert spec.name == name


@pytest.mark.parametrize(
    ("engine", "port", "path"),
    [
        ("vllm", 8000, "/metrics"),
        ("sglang", 30000, "/metrics"),
        ("tgi", 80, "/metrics"),
        ("trtllm", 8000, "/prometheus/metrics"),
    ],
)
def test_where_each_engine_serves_its_metrics(engine: str, port: int, path: str) -> None:
    assert (ENGINES[engine].default_port, ENGINES[engine].default_path) == (port, path)


def test_fields_are_exactly_the_model_stats_fields() -> None:
    names = {f.name for f in dataclasses.fields(ModelStats)} - {"model"}
    assert set(FIELDS) == names
    assert len(FIELDS) == len(set(FIELDS))
    for spec in ENGINES.values():
        assert set(spec.sources) <= names


def test_kv_cache_takes_the_maximum_and_everything_else_sums() -> None:
    assert FIELD_AGGREGATION["kv_cache_usage_ratio"] is Aggregation.MAX
    assert {f for f, a in FIELD_AGGREGATION.items() if a is Aggregation.SUM} == set(FIELDS) - {
        "kv_cache_usage_ratio"
    }


def test_every_name_carries_its_engines_prefix_and_belongs_to_one_engine() -> None:
    owner: dict[str, str] = {}
    for name, spec in ENGINES.items():
        for sample in spec.sample_names():
            assert sample.startswith(PREFIXES[name]), sample
            assert owner.setdefault(sample, name) == name
        if spec.start_time is not None:
            assert spec.start_time == "process_start_time_seconds"


def test_histogram_fields_read_histograms_and_scalars_read_samples() -> None:
    for spec in ENGINES.values():
        for field, sources in spec.sources.items():
            assert sources, field
            for source in sources:
                assert (source.kind is SourceKind.HISTOGRAM) == (field in HISTOGRAM_FIELDS)


def test_a_wrong_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="not a ModelStats field"):
        EngineSpec("x", 1, "/m", (), (), {"tokens": (Source("x_t", SourceKind.COUNTER),)})
    with pytest.raises(ValueError, match="cannot read"):
        EngineSpec("x", 1, "/m", (), (), {"prompt_tokens": (Source("x_h", SourceKind.HISTOGRAM),)})
    with pytest.raises(ValueError, match="cannot read"):
        EngineSpec(
            "x", 1, "/m", (), (), {"inter_token_latency_seconds": (Source("x", SourceKind.GAUGE),)}
        )


def test_sample_names_of_each_kind() -> None:
    assert Source("a", SourceKind.COUNTER).sample_names() == ("a",)
    assert Source("a", SourceKind.GAUGE).sample_names() == ("a",)
    assert Source("h", SourceKind.HISTOGRAM).sample_names() == ("h_bucket", "h_sum", "h_count")
    assert Source("h", SourceKind.HISTOGRAM_SUM).sample_names() == ("h_sum",)
    assert Source("h", SourceKind.HISTOGRAM_COUNT).sample_names() == ("h_count",)


def test_renamed_families_list_the_current_name_first() -> None:
    vllm = ENGINES["vllm"].sources
    assert [s.name for s in vllm["kv_cache_usage_ratio"]] == [
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
    ]
    assert [s.name for s in vllm["inter_token_latency_seconds"]] == [
        "vllm:inter_token_latency_seconds",
        "vllm:time_per_output_token_seconds",
    ]
    sglang = ENGINES["sglang"].sources["inter_token_latency_seconds"]
    assert [s.name for s in sglang] == [
        "sglang:inter_token_latency_seconds",
        "sglang:time_per_output_token_seconds",
    ]


def test_tgi_tokens_come_from_histogram_sums_and_it_names_no_model() -> None:
    tgi = ENGINES["tgi"]
    assert tgi.model_labels == ()
    assert tgi.sources["prompt_tokens"] == (
        Source("tgi_request_input_length", SourceKind.HISTOGRAM_SUM),
    )
    assert tgi.sources["generation_tokens"] == (
        Source("tgi_request_generated_tokens", SourceKind.HISTOGRAM_SUM),
    )
    assert "time_to_first_token_seconds" not in tgi.sources
    assert tgi.start_time is None


def test_ratios_are_served_as_ratios() -> None:
    # vLLM's `_perc` gauges ("1 means 100 percent usage"), SGLang's token_usage and
    # trtllm's kv_cache_utilization are all 0-1: nothing to scale.
    for spec in ENGINES.values():
        for source in spec.sources.get("kv_cache_usage_ratio", ()):
            assert source.scale == 1.0


def test_trtllm_serve_names_no_model() -> None:
    assert "undefined" in ENGINES["trtllm"].unnamed_models


@pytest.mark.parametrize(("fixture", "engine"), sorted(FIXTURE_ENGINES.items()))
def test_each_fixture_is_told_as_its_engine(fixture: str, engine: str) -> None:
    assert parse_engine((FIXTURES / fixture).read_bytes()).engine == engine


def test_every_source_is_served_by_some_fixture() -> None:
    """No name in the catalog that no fixture (built from the engines' code) shows."""
    served: dict[str, set[str]] = {}
    for fixture, engine in FIXTURE_ENGINES.items():
        text = (FIXTURES / fixture).read_text()
        names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
        served.setdefault(engine, set()).update(names)
    for name, spec in ENGINES.items():
        missing = {
            sample
            for sources in spec.sources.values()
            for source in sources
            for sample in source.sample_names()
        } - served[name]
        assert not missing, (name, missing)
        assert set(spec.identify) & served[name], name
