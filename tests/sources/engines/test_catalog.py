"""The engine catalog: one entry per engine, each name traceable to a fixture."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from exporter.model import ModelStats
from exporter.sources.engines.catalog import (
    BUILTIN,
    ENGINES,
    FIELD_AGGREGATION,
    FIELDS,
    HISTOGRAM_FIELDS,
    Aggregation,
    CatalogError,
    EngineSpec,
    Source,
    SourceKind,
    load_catalog,
    parse_catalog,
)
from exporter.sources.engines.parser import parse_engine
from tests.support.paths import ENGINE_FIXTURES, REPO

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
    "triton-trtllm.metrics.txt": "triton",
    "llamacpp.metrics.txt": "llamacpp",
}
PREFIXES = {
    "vllm": "vllm:",
    "sglang": "sglang:",
    "tgi": "tgi_",
    "trtllm": "trtllm_",
    "triton": "nv_",
    "llamacpp": "llamacpp:",
}


def test_one_entry_per_engine_under_its_own_name() -> None:
    assert set(ENGINES) == {"vllm", "sglang", "tgi", "trtllm", "triton", "llamacpp"}
    for name, spec in ENGINES.items():
        assert spec.name == name


@pytest.mark.parametrize(
    ("engine", "port", "path"),
    [
        ("vllm", 8000, "/metrics"),
        ("sglang", 30000, "/metrics"),
        ("tgi", 80, "/metrics"),
        ("trtllm", 8000, "/prometheus/metrics"),
        ("triton", 8002, "/metrics"),
        ("llamacpp", 8080, "/metrics"),
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
    def spec(field: str, kind: SourceKind) -> EngineSpec:
        return EngineSpec("x", (1,), ("/m",), (), (), {field: (Source("x_t", kind),)})

    with pytest.raises(ValueError, match="not a ModelStats field"):
        spec("tokens", SourceKind.COUNTER)
    with pytest.raises(ValueError, match="cannot read"):
        spec("prompt_tokens", SourceKind.HISTOGRAM)
    with pytest.raises(ValueError, match="cannot read"):
        spec("inter_token_latency_seconds", SourceKind.GAUGE)
    with pytest.raises(ValueError, match="is a gauge"):
        spec("requests_waiting", SourceKind.COUNTER)
    with pytest.raises(ValueError, match="counts up"):
        spec("prompt_tokens", SourceKind.GAUGE)


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


# -- the file format: one for the built-in entries and the user's -------------------------------

USER_CATALOG = """\
engines:
  # an in-house server: counters in its own names, the model in `served_model`
  - name: acme
    ports: [9100]
    identify: ["acme_up"]
    model_labels: [served_model]
    start_time: acme_start_time_seconds
    fields:
      prompt_tokens: [{counter: acme_input_tokens_total}]
      generation_tokens: [{counter: acme_output_tokens_total}]
      requests_waiting: [{gauge: acme_queue, labels: {state: waiting}}]
      kv_cache_usage_ratio: [{gauge: acme_kv_percent, scale: 0.01}]
      time_to_first_token_seconds: [{histogram: acme_ttft_ms, scale: 0.001}]
"""


def test_the_builtin_catalog_is_the_yaml_file_beside_the_module() -> None:
    text = (REPO / "exporter/sources/engines/catalog.yaml").read_text()
    assert parse_catalog(text).engines == BUILTIN.engines
    assert BUILTIN.names() == tuple(ENGINES)


def test_a_user_catalog_adds_an_engine_with_every_kind_of_source() -> None:
    catalog = BUILTIN.with_entries(parse_catalog(USER_CATALOG, "acme.yaml"))
    acme = catalog["acme"]
    assert catalog.names()[-1] == "acme" and acme.ports == (9100,)
    assert acme.paths == ("/metrics",)  # the default
    assert acme.sources["requests_waiting"] == (
        Source("acme_queue", SourceKind.GAUGE, 1.0, (("state", "waiting"),)),
    )
    assert acme.sources["kv_cache_usage_ratio"][0].scale == 0.01
    assert catalog.origin["acme"] == "acme.yaml:3"


def test_a_user_entry_of_a_known_name_replaces_the_builtin_one() -> None:
    entry = """engines:
  - name: triton
    ports: [9002]
    model_labels: [model]
    ensemble_models: "router"
    fields:
      requests_finished: [{counter: nv_inference_request_success}]
"""
    catalog = BUILTIN.with_entries(parse_catalog(entry, "mine.yaml"))
    assert catalog.names() == BUILTIN.names()  # same place in the order
    assert catalog["triton"].ports == (9002,)
    pattern = catalog["triton"].ensemble_models
    assert pattern is not None and pattern.pattern == "router"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("engines: [\n  - name: x\n", r"mine.yaml:2: not YAML: expected the node content"),
        ("engines: []\n", r"mine.yaml:1: engines: List should have at least 1 item"),
        ("engine:\n  - name: x\n", r"mine.yaml:1: engines: Field required"),
        (USER_CATALOG.replace("ports: [9100]", "ports: [99999]"),
         r"mine.yaml:3: engines\[0\]: port 99999 is not 1-65535"),
        (USER_CATALOG.replace("prompt_tokens:", "prompt_tokenz:"),
         r"mine.yaml:9: engines\[0\].fields.prompt_tokenz: Extra inputs are not permitted"),
        (USER_CATALOG.replace("{counter: acme_output_tokens_total}", "{gauge: acme_out}"),
         r"mine.yaml:10: acme: generation_tokens counts up and cannot read a gauge"),
        (USER_CATALOG.replace("{counter: acme_input_tokens_total}", "{counter: 1bad}"),
         r"mine.yaml:9: engines\[0\].fields.prompt_tokens\[0\].counter: String should match"),
        (USER_CATALOG.replace("{counter: acme_input_tokens_total}",
                              "{counter: a_total, gauge: b}"),
         r"mine.yaml:9: .*give exactly one of counter, gauge"),
        (USER_CATALOG.replace("    ports: [9100]\n", "    ports: [9100]\n    ports: [1]\n"),
         r"mine.yaml:5: 'ports' is given twice"),
        (USER_CATALOG + USER_CATALOG.split("engines:\n", 1)[1],
         r"mine.yaml:\d+: engine 'acme' is given twice"),
        (USER_CATALOG.replace("model_labels: [served_model]", 'ensemble_models: "(("'),
         r"mine.yaml:3: engines\[0\]: ensemble_models is no regular expression"),
        (USER_CATALOG.replace("acme_input_tokens_total", "vllm:prompt_tokens_total"),
         r"mine.yaml:3: sample name 'vllm:prompt_tokens_total' is already read by engine 'vllm'"),
    ],
)  # fmt: skip
def test_a_bad_catalog_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        BUILTIN.with_entries(parse_catalog(text, "mine.yaml"))


def test_load_catalog_reads_the_file_and_names_it_when_it_cannot(tmp_path: Path) -> None:
    path = tmp_path / "engines.yaml"
    path.write_text(USER_CATALOG)
    assert "acme" in load_catalog(path).names()
    with pytest.raises(CatalogError, match=r"missing.yaml: cannot read the engine catalog"):
        load_catalog(tmp_path / "missing.yaml")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(path)
