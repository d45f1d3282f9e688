"""exporter/sources/engines/source.py against real HTTP servers on loopback: which failed
scrapes count, and when a read is complete."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from exporter.sources.engines.scraper import EngineScraper, EngineTarget
from exporter.sources.engines.source import EngineSource
from simulator.bodies.exposition import render_exposition
from tests.support.engine_stats import STATS

BODY = render_exposition("vllm", STATS, process_start_time=1_700_000_000.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def engine() -> AsyncIterator[tuple[EngineTarget, web.AppRunner]]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield EngineTarget("chat", "llama-0", f"http://127.0.0.1:{port}/metrics"), runner
    await runner.cleanup()


async def test_a_pod_that_never_served_an_engine_is_not_an_error(
    engine: tuple[EngineTarget, web.AppRunner],
) -> None:
    served, _ = engine
    batch = EngineTarget("jobs", "train-0", f"http://127.0.0.1:{free_port()}/metrics")
    source = EngineSource(EngineScraper(timeout=2.0, max_bytes=1 << 20))
    readings = await source.read([served, batch])
    assert readings[("chat", "llama-0")] is not None and readings[("jobs", "train-0")] is None
    assert source.complete and dict(source.errors) == {}
    await source.close()


async def test_an_engine_that_served_and_then_fails_is_counted_and_the_read_incomplete(
    engine: tuple[EngineTarget, web.AppRunner],
) -> None:
    served, runner = engine
    source = EngineSource(EngineScraper(timeout=2.0, max_bytes=1 << 20))
    await source.read([served])
    await runner.cleanup()  # the engine goes away
    readings = await source.read([served])
    assert readings == {("chat", "llama-0"): None}
    assert not source.complete and source.errors["connection"] == 1
    await source.read([])  # the pod is gone: forgotten, so a new pod of that name starts anew
    assert source.complete
    await source.close()
