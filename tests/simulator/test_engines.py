"""The simulated engines: real HTTP servers on the pods' own loopback addresses."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from exporter.sources.engines.catalog import ENGINES, load_catalog
from exporter.sources.engines.parser import EngineParser, parse_engine
from exporter.sources.engines.scraper import candidate_ports
from simulator.bodies.exposition import (
    LLAMACPP_CONTENT_TYPE,
    TRITON_CONTENT_TYPE,
    render_exposition,
    serve_exposition,
)
from simulator.bodies.faults import BodyFault, corrupt
from simulator.engines import (
    GARBAGE_BYTES,
    HUGE_BODY_BYTES,
    TEXT_CONTENT_TYPE,
    SimulatedEngines,
)
from simulator.node import (
    ENGINE_PORT,
    PATH_ANNOTATION,
    PORT_ANNOTATION,
    ManualClock,
    SimulatedNode,
)
from simulator.scenario import PodSpec, Scenario, load_scenario
from simulator.work import (
    engine_process_start,
    engine_process_start_time,
    engine_stats,
    true_tokens,
)
from tests.support.body_samples import value_of

WALL_START = 1_764_000_000.0
TIMEOUT = aiohttp.ClientTimeout(total=5)


def mixed(start: float = 100.0) -> tuple[SimulatedNode, ManualClock]:
    clock = ManualClock(start)
    return SimulatedNode(load_scenario("mixed"), clock=clock, wall_start=WALL_START), clock


def spec(node: SimulatedNode, name: str) -> PodSpec:
    (found,) = [p for p in node.scenario.pods if p.name == name]
    return found


def expected_body(node: SimulatedNode, pod: PodSpec, *, openmetrics: bool = False) -> bytes:
    t = node.clock()
    stats = engine_stats(node, pod, t)
    assert stats is not None and pod.engine is not None
    start = engine_process_start_time(node, pod, t)
    return render_exposition(pod.engine, stats, process_start_time=start, openmetrics=openmetrics)


def expected_answer(node: SimulatedNode, pod: PodSpec, accept: str) -> tuple[bytes, str]:
    t = node.clock()
    stats = engine_stats(node, pod, t)
    assert stats is not None and pod.engine is not None
    start = engine_process_start_time(node, pod, t)
    return serve_exposition(pod.engine, stats, process_start_time=start, accept=accept)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as client:
        yield client


async def fetch(
    session: aiohttp.ClientSession, url: str, **kwargs: object
) -> tuple[int, str, bytes]:
    async with session.get(url, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, response.headers.get("Content-Type", ""), await response.read()


async def refused(url: str) -> bool:
    """Whether a fresh connection to the URL's address is refused."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as client:
        try:
            await fetch(client, url)
        except aiohttp.ClientConnectorError as error:
            return isinstance(error.os_error, ConnectionRefusedError)
    return False


async def test_every_engine_pod_serves_its_own_format_on_its_own_address(
    session: aiohttp.ClientSession,
) -> None:
    node, _ = mixed(start=1234.5)
    view = node.cluster_view()
    async with SimulatedEngines(node, poll_seconds=0) as engines:
        engine_pods = [p for p in node.scenario.pods if p.engine is not None]
        assert set(engines.addresses) == {(p.namespace, p.name) for p in engine_pods}
        assert {p.engine for p in engine_pods} == {*ENGINES, "inhouse"}  # every kind
        catalog = load_catalog(node.scenario.engine_catalog_path())
        parser = EngineParser(catalog)
        for index, pod in enumerate(node.scenario.pods):
            if pod.engine is None:
                continue
            meta = view.pods[(pod.namespace, pod.name)]
            ip, port, path = engines.addresses[(pod.namespace, pod.name)]
            # where the exporter would look: the pod's IP, its annotations, its declared
            # ports and the catalog's
            assert ip == meta.pod_ip == node.pod_ip(index)
            assert port in candidate_ports(meta, catalog)
            assert path == meta.annotations.get(PATH_ANNOTATION, "/metrics")
            assert path == catalog[pod.engine].default_path
            status, content_type, body = await fetch(session, f"http://{ip}:{port}{path}")
            assert (status, body) == (200, expected_body(node, pod))
            own_type = {"triton": TRITON_CONTENT_TYPE, "llamacpp": LLAMACPP_CONTENT_TYPE}
            assert content_type == own_type.get(pod.engine, TEXT_CONTENT_TYPE)
            # and the exporter's own parser reads back what the engine served
            stats = engine_stats(node, pod, node.clock())
            reading = parser.parse(body)
            assert stats is not None and reading.engine == pod.engine
            models = reading.models  # Triton: its ensemble and steps
            prompt = sum(m.total("prompt_tokens") or 0 for m in models)
            generation = sum(m.total("generation_tokens") or 0 for m in models)
            # Triton counts whole tokens; llama.cpp prints six significant digits
            assert prompt == pytest.approx(stats.prompt_tokens, abs=1, rel=5e-6)
            assert generation == pytest.approx(stats.generation_tokens, abs=1, rel=5e-6)
            running = sum(m.requests_running or 0 for m in models)
            assert running == stats.requests_running
        # trtllm-serve's /metrics is not its exposition; nothing else is served either
        assert (await fetch(session, engines.url("ads", "ads-a100-0").replace(
            "/prometheus/metrics", "/metrics")))[0] == 404  # fmt: skip
        assert (await fetch(session, engines.url("chat", "chat-llama-0") + "x"))[0] == 404
        assert await refused(f"http://{node.pod_ip(2)}:{ENGINE_PORT}/metrics") is False  # idle vLLM
        assert await refused(f"http://{node.pod_ip(13)}:{ENGINE_PORT}/metrics")  # engine: null


SCRAPER_ACCEPT = (
    "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "openmetrics", "wanted_type"),
    [
        # q-values are ignored: prometheus_client takes the first entry it knows
        (SCRAPER_ACCEPT, True, "application/openmetrics-text; version=1.0.0; charset=utf-8; "
         "escaping=underscores"),
        ("application/openmetrics-text", True,
         "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        ("text/plain;version=1.0.0,application/openmetrics-text", False,
         "text/plain; version=1.0.0; charset=utf-8; escaping=underscores"),
        ("", False, TEXT_CONTENT_TYPE),
        ("*/*", False, TEXT_CONTENT_TYPE),
    ],
)  # fmt: skip
async def test_the_format_is_negotiated_by_prometheus_client(
    session: aiohttp.ClientSession, accept: str, openmetrics: bool, wanted_type: str
) -> None:
    node, _ = mixed()
    async with SimulatedEngines(node, poll_seconds=0) as engines:
        for name in ("chat-llama-0", "ads-ranker-0", "ads-a100-0", "search-0"):
            pod = spec(node, name)
            status, content_type, body = await fetch(
                session, engines.url(pod.namespace, name), headers={"Accept": accept}
            )
            assert status == 200
            assert (body, content_type) == expected_answer(node, pod, accept)
            if pod.engine == "tgi":  # TGI's Rust exporter always answers in the text format
                assert (body, content_type) == (expected_body(node, pod), TEXT_CONTENT_TYPE)
                continue
            assert content_type == wanted_type
            assert body.endswith(b"# EOF\n") is openmetrics
            assert body == expected_body(node, pod, openmetrics=openmetrics)


async def test_counters_follow_the_clock_and_a_restart(session: aiohttp.ClientSession) -> None:
    node, clock = mixed(start=590.0)
    pod = spec(node, "chat-llama-0")  # restarts at 600 s, down 5 s, cold start 60 s
    async with SimulatedEngines(node, poll_seconds=0) as engines:
        url = engines.url("chat", "chat-llama-0")
        assert (await fetch(session, url))[2] == expected_body(node, pod)
        clock.advance(9.5)  # 599.5: still the first process, more tokens
        before = engine_stats(node, pod, clock())
        assert before is not None and before.generation_tokens
        first = engine_process_start(node, pod, 599.5)  # before the node's t = 0
        assert before.generation_tokens == pytest.approx(true_tokens(node, pod, first, 599.5)[1])
        assert (await fetch(session, url))[2] == expected_body(node, pod)

        clock.advance(1.0)  # 600.5: the process died; the kept-alive connection is reset too
        await engines.refresh()
        assert not engines.listening("chat", "chat-llama-0")
        with pytest.raises(aiohttp.ClientConnectorError):
            await fetch(session, url)
        assert await refused(url)
        assert await refused(url.replace("/metrics", "/other"))
        other = engines.url("chat", "chat-small-0")  # the others are not affected
        assert (await fetch(session, other))[0] == 200

        clock.advance(4.5)  # 605: a new process, counters at 0, a new start time
        await engines.refresh()
        assert engines.listening("chat", "chat-llama-0")
        _, _, body = await fetch(session, url)
        assert body == expected_body(node, pod)
        stats = engine_stats(node, pod, clock())
        assert stats is not None and stats.generation_tokens == 0 and stats.requests_finished == 0
        assert parse_engine(body).process_start_time == WALL_START + 605

        clock.advance(70)  # 675: serving again since 665
        stats = engine_stats(node, pod, clock())
        assert stats is not None
        assert stats.generation_tokens == pytest.approx(true_tokens(node, pod, 600, 675)[1])
        assert (await fetch(session, url))[2] == expected_body(node, pod)


async def test_listeners_follow_the_clock_by_themselves() -> None:
    node, clock = mixed(start=599.0)
    async with SimulatedEngines(node, poll_seconds=0.01) as engines:
        url = engines.url("chat", "chat-llama-0")
        assert not await refused(url)
        clock.advance(2)
        await asyncio.sleep(0.1)
        assert await refused(url)
        clock.advance(5)
        await asyncio.sleep(0.1)
        assert not await refused(url)
    assert await refused(url)  # stopped: nothing listens


async def test_fault_knobs(session: aiohttp.ClientSession) -> None:
    node, _ = mixed()
    async with SimulatedEngines(node, poll_seconds=0) as engines:
        pod = spec(node, "ads-ranker-0")
        url = engines.url("ads", "ads-ranker-0")
        faults = engines.faults("ads", "ads-ranker-0")

        faults.hang = True  # accepts, never answers
        with pytest.raises(asyncio.TimeoutError):
            await fetch(session, url, timeout=aiohttp.ClientTimeout(total=0.2))
        faults.hang = False

        faults.body = BodyFault.HTML_200
        status, content_type, body = await fetch(session, url)
        assert status == 200 and content_type.startswith("text/html")
        assert body.startswith(b"<!DOCTYPE html>")
        faults.body = None

        faults.slow_seconds = 0.3
        started = time.monotonic()
        assert (await fetch(session, url))[2] == expected_body(node, pod)
        assert time.monotonic() - started >= 0.3
        faults.slow_seconds = 0

        faults.huge = True
        status, content_type, body = await fetch(session, url)
        assert (status, content_type) == (200, TEXT_CONTENT_TYPE)
        assert HUGE_BODY_BYTES - 1024 < len(body) <= HUGE_BODY_BYTES
        assert body.startswith(expected_body(node, pod))
        faults.huge = False

        faults.garbage = True
        status, _, body = await fetch(session, url)
        assert status == 200 and len(body) == GARBAGE_BYTES
        assert (await fetch(session, url))[2] == body  # the same bytes every time
        with pytest.raises(UnicodeDecodeError):
            body.decode()
        faults.garbage = False

        for fault in BodyFault:  # the body as a scraper sees it, in either format
            faults.body = fault
            for accept, openmetrics in (("", False), (SCRAPER_ACCEPT, True)):
                status, _, body = await fetch(session, url, headers={"Accept": accept})
                assert status == 200
                wanted = expected_body(node, pod, openmetrics=openmetrics)
                assert body == corrupt(wanted, fault, "sglang") != wanted
        faults.body = None

        assert (await fetch(session, url))[2] == expected_body(node, pod)
        # Knobs are per pod: the neighbours answer as usual meanwhile.
        faults.hang = True
        other = spec(node, "chat-llama-0")
        assert (await fetch(session, engines.url("chat", "chat-llama-0")))[2] == expected_body(
            node, other
        )
    # stop() does not wait for the hung request's client


async def test_a_scenario_serves_a_hostile_body_for_a_while(
    session: aiohttp.ClientSession,
) -> None:
    document = load_scenario("mixed").model_dump(mode="json")
    document["faults"] += [
        {"kind": "engine_body", "pod": "chat/chat-h200-0", "at": 100, "seconds": 20,
         "body": "counter_dip"},
        {"kind": "engine_body", "pod": "search/search-0", "at": 110, "seconds": 5,
         "body": "html_200"},
    ]  # fmt: skip
    clock = ManualClock(99.0)
    node = SimulatedNode(Scenario.model_validate(document), clock=clock, wall_start=WALL_START)
    small, search = spec(node, "chat-h200-0"), spec(node, "search-0")
    async with SimulatedEngines(node, poll_seconds=0) as engines:
        url = engines.url("chat", "chat-h200-0")
        assert (await fetch(session, url))[2] == expected_body(node, small)  # not yet
        clock.advance(1.0)  # 100: the fault starts
        body = (await fetch(session, url))[2]
        assert body == corrupt(expected_body(node, small), BodyFault.COUNTER_DIP, "vllm")
        stats = engine_stats(node, small, clock())
        assert stats is not None and stats.generation_tokens
        (served,) = re.findall(rb"\nvllm:generation_tokens_total\{[^}]*\} (\S+)\n", body)
        assert float(served) == pytest.approx(stats.generation_tokens * 0.9)  # the truth stays
        clock.advance(10.0)  # 110: the other pod's fault too
        status, content_type, _ = await fetch(session, engines.url("search", "search-0"))
        assert status == 200 and content_type.startswith("text/html")
        clock.advance(9.99)  # 119.99: still on
        body = (await fetch(session, url))[2]
        assert body == corrupt(expected_body(node, small), BodyFault.COUNTER_DIP, "vllm")
        clock.advance(0.01)  # 120: over, for both
        assert (await fetch(session, url))[2] == expected_body(node, small)
        _, _, body = await fetch(session, engines.url("search", "search-0"))
        assert body == expected_body(node, search)


async def test_dense_node_starts_fast_and_stops_clean(session: aiohttp.ClientSession) -> None:
    clock = ManualClock(100.0)
    node = SimulatedNode(load_scenario("dense-h100"), clock=clock, wall_start=WALL_START)
    engines = SimulatedEngines(node)
    started = time.monotonic()
    await engines.start()
    assert time.monotonic() - started < 1.0
    try:
        assert len(engines.addresses) == 56
        assert len({(ip, port) for ip, port, _ in engines.addresses.values()}) == 56
        answers = await asyncio.gather(
            *(fetch(session, engines.url(*key)) for key in engines.addresses)
        )
        assert all(status == 200 for status, _, _ in answers)
    finally:
        await engines.stop()
    assert await refused(engines.url(*next(iter(engines.addresses))))


def test_engines_run_in_a_process_of_their_own() -> None:
    wall_start = time.time() - 50  # the exporter's node started a while ago
    node = SimulatedNode(load_scenario("small"), wall_start=wall_start)
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.engines", "--scenario", "small",
         "--wall-start", repr(wall_start)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"

        async def scrape() -> bytes:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as client:
                status, _, body = await fetch(client, f"http://{node.pod_ip(0)}:8000/metrics")
                assert status == 200
                return body

        body = asyncio.run(scrape())
        assert b"vllm:generation_tokens_total" in body
        reading = parse_engine(body)
        # the same node as the process's: its pods' block and process starts follow wall_start
        assert reading.process_start_time == engine_process_start_time(
            node, node.scenario.pods[0], time.time() - wall_start
        )
        (model,) = reading.models
        assert model.total("generation_tokens")  # 50 s in: serving since 30 s
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_engines_process_names_a_bad_scenario() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator.engines", "--scenario", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "neither a built-in scenario" in result.stderr


# Triton and llama.cpp pods: each engine on its own metrics port, with the annotation that
# tells the exporter (their pods' container port `http` is 8000).
NEW_KINDS = Scenario.model_validate(
    {
        "name": "new-kinds",
        "seed": 3,
        "gpus": [{"model": "H100-SXM5-80GB"}, {"model": "L4"}, {"model": "L4"}],
        "pods": [
            {"name": "trt-0", "namespace": "llm", "tenant": "a", "devices": ["0"],
             "engine": "triton", "model": "ensemble"},
            {"name": "gguf-0", "namespace": "llm", "tenant": "a", "devices": ["1"],
             "engine": "llamacpp"},
            {"name": "gguf-1", "namespace": "llm", "tenant": "a", "devices": ["2"],
             "engine": "llamacpp", "metrics_port": 9090},
        ],
    }
)  # fmt: skip


async def test_triton_and_llamacpp_serve_on_their_own_ports(
    session: aiohttp.ClientSession,
) -> None:
    node = SimulatedNode(NEW_KINDS, clock=ManualClock(300.0), wall_start=WALL_START)
    view = node.cluster_view()
    wanted = {"trt-0": (8002, TRITON_CONTENT_TYPE, b"nv_inference_request_success{")}
    wanted["gguf-0"] = (8080, LLAMACPP_CONTENT_TYPE, b"llamacpp:prompt_tokens_total ")
    wanted["gguf-1"] = (9090, LLAMACPP_CONTENT_TYPE, b"llamacpp:prompt_tokens_total ")
    async with SimulatedEngines(node, poll_seconds=0) as engines:
        for index, pod in enumerate(node.scenario.pods):
            port, content_type, sample = wanted[pod.name]
            assert engines.addresses[("llm", pod.name)] == (node.pod_ip(index), port, "/metrics")
            meta = view.pods[("llm", pod.name)]
            # the catalog's port is found without an annotation; another one is annotated
            annotated = {PORT_ANNOTATION: str(port)} if pod.metrics_port else {}
            assert meta.annotations == annotated
            url = engines.url("llm", pod.name)
            for accept in ("", SCRAPER_ACCEPT):  # text either way
                answer = await fetch(session, url, headers={"Accept": accept})
                assert answer == (200, content_type, expected_body(node, pod))
            assert sample in answer[2]
            assert (await fetch(session, url.replace("/metrics", "/v2/metrics")))[0] == 404
            assert await refused(f"http://{node.pod_ip(index)}:{ENGINE_PORT}/metrics")
        # the truth shows through: tokens in the TRT-LLM histograms' sums, llama.cpp's counters
        trt, gguf = (spec(node, name) for name in ("trt-0", "gguf-0"))
        trt_stats, gguf_stats = (engine_stats(node, p, node.clock()) for p in (trt, gguf))
        assert trt_stats is not None and gguf_stats is not None
        body = (await fetch(session, engines.url("llm", "trt-0")))[2]
        (generated,) = value_of(body, "nv_llm_output_token_len_sum")
        assert float(generated) == math.floor(trt_stats.generation_tokens or 0)
        assert float(generated) > 0
        body = (await fetch(session, engines.url("llm", "gguf-0")))[2]
        (prompt,) = value_of(body, "llamacpp:prompt_tokens_total")
        assert float(prompt) == pytest.approx(gguf_stats.prompt_tokens, rel=1e-5)
