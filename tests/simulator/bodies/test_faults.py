"""The hostile variants of the simulated engines' bodies that a scraper must survive."""

from __future__ import annotations

import dataclasses
import re

import pytest

from exporter.model import ModelStats
from simulator.bodies.exposition import (
    ENGINE_NAMES,
    HTML_ERROR_PAGE,
    TEXT_ONLY_ENGINES,
    render_exposition,
)
from simulator.bodies.faults import TOKEN_SAMPLES, BodyFault, corrupt
from tests.support.body_samples import value_of
from tests.support.engine_stats import STATS

BODIES = [
    (engine, om)
    for engine in ENGINE_NAMES
    for om in (False, True)
    if not (engine in TEXT_ONLY_ENGINES and om)
]
UNLABELLED = ("tgi", "llamacpp")  # engines whose samples carry no labels


def body_of(engine: str, openmetrics: bool) -> bytes:
    return render_exposition(engine, STATS, process_start_time=1.7e9, openmetrics=openmetrics)


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
    elif engine == "llamacpp":
        assert line.startswith(b"# HELP llamacpp:prompt_tokens_total \xff\xfeNumber")
    else:
        prompt = TOKEN_SAMPLES[engine][0]
        assert re.split(rb"[{ ]", line)[0] in (prompt.encode(), prompt.replace(":", "_").encode())
        # Triton: its folder name; the in-house server: its own label
        label = {"triton": b"model", "inhouse": b"served_model"}.get(engine, b"model_name")
        assert re.search(label + rb'="[^"]+\xff\xfe[^"]+"', line)


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
    if engine not in UNLABELLED and len(first) > 1:  # the same labels in another order
        assert first != second and sorted(first) == sorted(second)
    assert sorted(first) == sorted(second)


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
