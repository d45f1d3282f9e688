"""The simulated engines' bodies as the API serves them: written by prometheus_client as
the engines' servers write them, in the format the `Accept` header negotiates."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from exporter.model import ModelStats
from simulator.bodies.exposition import (
    OPENMETRICS_ACCEPT,
    TEXT_ACCEPT,
    EngineExposition,
    render_exposition,
)
from simulator.bodies.faults import BodyFault, corrupt
from tests.support.body_samples import value_of
from tests.support.engine_stats import STATS


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


def test_an_unknown_engine_cannot_be_rendered() -> None:
    with pytest.raises(ValueError, match="no renderer"):
        render_exposition("ollama", STATS, process_start_time=1.0)
    with pytest.raises(ValueError, match="no renderer"):
        corrupt(b"", BodyFault.NAN_VALUE, "ollama")
