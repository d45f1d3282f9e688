"""The engine scraper: where it may go, and what bad endpoints cost, over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.exposition import choose_encoder

from exporter.model import PodMeta
from exporter.sources.engines.scraper import (
    ACCEPT,
    MAX_PORTS,
    EngineScraper,
    EngineTarget,
    candidate_ports,
    engine_target,
    targets_for,
)
from simulator.engines import SimulatedEngines
from simulator.node import SimulatedNode
from simulator.scenario import load_scenario
from tests.support.paths import ENGINE_FIXTURES

VLLM = (ENGINE_FIXTURES / "vllm-0.33-v1.metrics.txt").read_bytes()
TRTLLM = (ENGINE_FIXTURES / "trtllm.metrics.txt").read_bytes()
TRITON = (ENGINE_FIXTURES / "triton-trtllm.metrics.txt").read_bytes()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def pod(
    ip: str = "10.1.2.3",
    annotations: dict[str, str] | None = None,
    ports: dict[str, int] | None = None,
    phase: str = "Running",
    declared: tuple[int, ...] = (),
) -> PodMeta:
    return PodMeta("uid", "ns", "p", {}, annotations or {}, ports or {}, phase, ip, None, declared)


# -- where the exporter may go ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "url"),
    [
        (pod(), "http://10.1.2.3:8000/metrics"),
        (pod(ports={"http": 9000}), "http://10.1.2.3:9000/metrics"),
        (pod(ports={"grpc": 50051, "metrics": 9400, "http": 9000}), "http://10.1.2.3:9400/metrics"),
        (pod(annotations={"prometheus.io/port": "9090"}, ports={"http": 9000}),
         "http://10.1.2.3:9090/metrics"),
        (pod(annotations={"prometheus.io/path": "/prometheus/metrics"}),
         "http://10.1.2.3:8000/prometheus/metrics"),
        (pod(ip="fd00::5"), "http://[fd00::5]:8000/metrics"),
    ],
)  # fmt: skip
def test_the_target_is_the_pods_own_ip_with_port_and_path_from_its_spec(
    meta: PodMeta, url: str
) -> None:
    target = engine_target(meta)
    assert target is not None and target.url == url


# The built-in catalog's default ports, in its order: vLLM and trtllm-serve 8000, SGLang
# 30000, TGI 80 and 9000, Triton 8002, llama.cpp 8080.
CATALOG_PORTS = (8000, 30000, 80, 9000, 8002, 8080)


@pytest.mark.parametrize(
    ("meta", "ports"),
    [
        (pod(), CATALOG_PORTS),
        (pod(declared=(8002,)), (8002, *(p for p in CATALOG_PORTS if p != 8002))),
        (pod(ports={"http": 9000}, declared=(5000, 9000, 8080)),
         (9000, 8080, 5000, 8000, 30000, 80, 8002)),
        (pod(annotations={"prometheus.io/port": "7000"}, declared=(8002,)), (7000,)),
        (pod(declared=tuple(range(20000, 20010))),
         (20000, 20001, 20002, 20003, 20004, 20005, 20006, 20007)),
    ],
)  # fmt: skip
def test_candidate_ports_in_their_documented_order_and_bounded(
    meta: PodMeta, ports: tuple[int, ...]
) -> None:
    assert candidate_ports(meta) == ports
    assert len(candidate_ports(meta)) <= MAX_PORTS


async def test_the_port_that_answers_as_an_engine_is_found_and_remembered(
    serve: Callable[[dict[str, Handler]], Awaitable[str]],
) -> None:
    asked: dict[str, int] = {"web": 0, "triton": 0}

    def counted(name: str, handler: Handler) -> Handler:
        async def count(request: web.Request) -> web.StreamResponse:
            asked[name] += 1
            return await handler(request)

        return count

    web_ui = await serve({"/": counted("web", body(b"<html>a notebook</html>"))})
    triton = await serve({"/metrics": counted("triton", body(TRITON))})
    closed = free_port()
    web_port, triton_port = (int(url.rsplit(":", 1)[1]) for url in (web_ui, triton))
    # A pod declaring a closed port, a web UI, then Triton's metrics port.
    meta = pod(ip="127.0.0.1", declared=(closed, web_port, triton_port))
    target = engine_target(meta)
    assert target is not None and target.url == f"http://127.0.0.1:{closed}/metrics"
    scraper = EngineScraper(timeout=2.0, max_bytes=1 << 20)
    try:
        (first,) = await scraper.scrape([target])
        assert first.reading is not None and first.reading.engine == "triton"
        assert first.url == f"http://127.0.0.1:{triton_port}/metrics"
        before = dict(asked)
        (second,) = await scraper.scrape([target])
    finally:
        await scraper.close()
    assert second.reading is not None and second.url == first.url
    assert asked == {"web": before["web"], "triton": before["triton"] + 1}  # only Triton again


async def test_a_pod_with_no_engine_on_any_port_says_what_answered(
    serve: Callable[[dict[str, Handler]], Awaitable[str]],
) -> None:
    web_ui = await serve({"/metrics": body(b"<html>not metrics</html>")})
    meta = pod(ip="127.0.0.1", declared=(free_port(), int(web_ui.rsplit(":", 1)[1])))
    target = engine_target(meta)
    assert target is not None
    scraper = EngineScraper(timeout=2.0, max_bytes=1 << 20)
    try:
        (result,) = await scraper.scrape([target])
    finally:
        await scraper.close()
    # the answer that was not an engine's tells more than the refused connections
    assert (result.reading, result.error) == (None, "not_metrics")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "annotations",
    [
        {"prometheus.io/path": "//evil.example/metrics"},
        {"prometheus.io/path": "http://evil.example/metrics"},
        {"prometheus.io/path": "@evil.example/metrics"},
        {"prometheus.io/path": "/metrics?target=http://evil.example"},
        {"prometheus.io/path": "/../../admin"},
        {"prometheus.io/path": "/metrics#x"},
        {"prometheus.io/port": "80@evil.example"},
        {"prometheus.io/port": "99999"},
        {"prometheus.io/port": "-1"},
        {"prometheus.io/port": "٨٠"},  # digits, but not ASCII ones
        {"prometheus.io/scheme": "https", "prometheus.io/address": "evil.example"},
    ],
)
def test_annotations_never_move_the_host(annotations: dict[str, str]) -> None:
    target = engine_target(pod(annotations=annotations))
    assert target is not None
    assert target.url == "http://10.1.2.3:8000/metrics"


@pytest.mark.parametrize("meta", [pod(ip=""), pod(ip="evil.example"), pod(phase="Pending")])
def test_pods_without_a_routable_ip_or_not_running_are_not_scraped(meta: PodMeta) -> None:
    assert engine_target(meta) is None


def test_targets_only_for_holders_with_metadata() -> None:
    pods = {("ns", "p"): pod(), ("ns", "q"): pod(ip="10.1.2.4")}
    targets = targets_for(pods, [("ns", "p"), ("ns", "gone")])
    assert [t.url for t in targets] == ["http://10.1.2.3:8000/metrics"]


# -- what bad endpoints cost --------------------------------------------------------------------


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[dict[str, Handler]], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Handler]) -> str:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def body(data: bytes, status: int = 200) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(body=data, status=status, content_type="text/plain")

    return handler


async def hang(_: web.Request) -> web.StreamResponse:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def scrape_one(url: str, *, max_bytes: int = 1 << 20, seconds: float = 1.0) -> str | None:
    scraper = EngineScraper(timeout=seconds, max_bytes=max_bytes)
    try:
        (result,) = await scraper.scrape([EngineTarget("ns", "p", url)])
    finally:
        await scraper.close()
    return result.error


@pytest.mark.parametrize(
    ("routes", "error"),
    [
        ({"/metrics": body(VLLM)}, None),
        ({"/metrics": body(b"<html><body>502 Bad Gateway</body></html>")}, "not_metrics"),
        ({"/metrics": body(b"up 1\nprocess_cpu_seconds_total 3\n")}, "unknown_engine"),
        ({"/metrics": body(b"oops", status=500)}, "http_500"),
        ({"/metrics": body(VLLM * 40)}, "too_large"),
        ({"/other": body(VLLM)}, "http_404"),
        ({"/metrics": hang}, "timeout"),
    ],
)
async def test_each_failure_has_its_kind(
    serve: Callable[[dict[str, Handler]], Awaitable[str]], routes: dict[str, Handler], error: str
) -> None:
    base = await serve(routes)
    assert await scrape_one(f"{base}/metrics", seconds=0.5) == error


async def test_a_redirect_is_not_followed(
    serve: Callable[[dict[str, Handler]], Awaitable[str]],
) -> None:
    async def redirect(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://10.255.255.1/metrics")

    base = await serve({"/metrics": redirect})
    assert await scrape_one(f"{base}/metrics") == "http_302"


async def test_an_unannotated_trtllm_is_found_on_its_own_path_once(
    serve: Callable[[dict[str, Handler]], Awaitable[str]],
) -> None:
    calls: list[str] = []

    async def json_on_metrics(request: web.Request) -> web.StreamResponse:
        calls.append(request.path)
        return web.json_response([{"iterationCounter": 1}])  # trtllm-serve's /metrics

    async def prometheus(request: web.Request) -> web.StreamResponse:
        calls.append(request.path)
        return web.Response(body=TRTLLM, content_type="text/plain")

    base = await serve({"/metrics": json_on_metrics, "/prometheus/metrics": prometheus})
    scraper = EngineScraper(timeout=1.0, max_bytes=1 << 20)
    target = EngineTarget("ns", "p", f"{base}/metrics")
    first = (await scraper.scrape([target]))[0]
    second = (await scraper.scrape([target]))[0]
    await scraper.close()

    assert first.reading is not None and first.reading.engine == "trtllm"
    assert second.reading is not None
    assert calls == ["/metrics", "/prometheus/metrics", "/prometheus/metrics"]


async def test_one_hanging_engine_does_not_delay_the_other_55() -> None:
    node = SimulatedNode(load_scenario("dense-h100"), clock=lambda: 600.0)
    async with SimulatedEngines(node, poll_seconds=0) as engines:
        keys = sorted(engines.addresses)
        engines.faults(*keys[0]).hang = True
        targets = [EngineTarget(ns, name, engines.url(ns, name)) for ns, name in keys]
        scraper = EngineScraper(timeout=1.0, max_bytes=8 << 20)
        started = time.monotonic()
        results = await scraper.scrape(targets)
        wall = time.monotonic() - started
        await scraper.close()

    assert len(results) == 56
    assert [r.error for r in results].count("timeout") == 1
    assert all(r.reading is not None for r in results[1:])
    hung, slowest = results[0].duration_seconds, max(r.duration_seconds for r in results[1:])
    assert hung >= 1.0 and slowest < hung  # none waited for the hung one
    assert wall < hung + slowest  # all at once: bounded by the one timeout, not by the sum


# -- what prometheus_client servers answer the scraper ------------------------------------------


def vllm_registry() -> CollectorRegistry:
    """A registry with vLLM's own family names and labels, as a vLLM server holds them."""
    registry = CollectorRegistry()
    labels = ("model_name", "engine")
    prompt = Counter("vllm:prompt_tokens", "Prefill tokens.", labels, registry=registry)
    generation = Counter("vllm:generation_tokens", "Generation tokens.", labels, registry=registry)
    running = Gauge("vllm:num_requests_running", "Running.", labels, registry=registry)
    prompt.labels("m", "0").inc(400)
    generation.labels("m", "0").inc(100)
    running.labels("m", "0").set(3)
    return registry


@pytest.fixture
def prometheus_client_server() -> Iterator[str]:
    """vLLM's metrics served by prometheus_client's own HTTP server and negotiation."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=vllm_registry())
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    thread.join(timeout=5)


async def test_prometheus_client_answers_the_scrapers_accept_with_names_intact(
    prometheus_client_server: str,
) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"Accept": ACCEPT}
        async with session.get(prometheus_client_server, headers=headers) as response:
            content_type = response.headers["Content-Type"]
            text = await response.text()
    assert content_type.startswith("text/plain; version=0.0.4")
    assert 'vllm:prompt_tokens_total{engine="0",model_name="m"} 400.0' in text

    scraper = EngineScraper(timeout=2.0, max_bytes=1 << 20)
    (result,) = await scraper.scrape([EngineTarget("ns", "p", prometheus_client_server)])
    await scraper.close()
    assert result.error is None and result.reading is not None
    (model,) = result.reading.models
    assert model.counters == {
        ("prompt_tokens", "engine=0"): 400.0,
        ("generation_tokens", "engine=0"): 100.0,
    }
    assert model.requests_running == 3.0


async def test_an_engine_answering_openmetrics_with_escaped_names_is_still_read(
    serve: Callable[[dict[str, Handler]], Awaitable[str]],
) -> None:
    encoder, content_type = choose_encoder("application/openmetrics-text;version=1.0.0")
    exposition = encoder(vllm_registry())
    assert b"vllm_prompt_tokens_total" in exposition  # what the library does to the names

    async def openmetrics_always(_: web.Request) -> web.StreamResponse:
        return web.Response(body=exposition, headers={"Content-Type": content_type})

    async def cut_short(_: web.Request) -> web.StreamResponse:
        return web.Response(body=exposition[:-6], headers={"Content-Type": content_type})

    base = await serve({"/metrics": openmetrics_always, "/cut": cut_short})
    scraper = EngineScraper(timeout=2.0, max_bytes=1 << 20)
    whole, cut = await scraper.scrape(
        [EngineTarget("ns", "a", f"{base}/metrics"), EngineTarget("ns", "b", f"{base}/cut", True)]
    )
    await scraper.close()
    assert whole.reading is not None and whole.reading.engine == "vllm"
    assert whole.reading.models[0].total("prompt_tokens") == 400.0
    assert (cut.reading, cut.error) == (None, "truncated")  # no `# EOF`
