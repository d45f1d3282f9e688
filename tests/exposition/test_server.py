"""exporter/exposition/server.py through real HTTP on loopback: health, readiness, /metrics.

The scrape path must only serialize the latest snapshot: these tests show that a
scrape makes no NVML call and answers while a collection is blocked in NVML.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import build_exposition
from exporter.collection import Collection, Sources
from exporter.exposition.bodies import Exposition
from exporter.exposition.server import make_app
from exporter.model import NodeSnapshot, NvmlReading
from exporter.sources.nvml.reader import NvmlReader
from exporter.sources.nvml.source import NvmlSource
from tests.support.sim import Sim, make_sim

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# What Prometheus 2.x sends when it scrapes.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
WAIT_SECONDS = 10.0  # bound on every wait below; never reached when the code is right


def collection_for(
    sim: Sim,
    publish: Callable[[NodeSnapshot], Awaitable[None] | None],
    reader: NvmlReader | None = None,
    timeout: float = 5.0,
) -> Collection:
    # The simulated node's clock doubles as the loop's monotonic clock.
    nvml = NvmlSource(reader or sim.reader, timeout=timeout, monotonic=sim.clock)
    return Collection(Sources(nvml), node="n1", publish=publish,
                      monotonic=sim.clock, wall_clock=lambda: 1_700_000_000.0)  # fmt: skip


async def client_for(exposition: Exposition, ready: Callable[[], bool]) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(
        TestServer(make_app(exposition, ready), host="127.0.0.1")
    )
    await client.start_server()
    return client


@dataclass
class Served:
    sim: Sim
    collection: Collection
    client: TestClient[Any, Any]
    exposition: Exposition


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """The small node, a collection publishing to the exposition, and a server on loopback."""
    sim = make_sim("small")
    exposition = build_exposition()
    collection = collection_for(sim, exposition.publish)
    client = await client_for(exposition, lambda: collection.ready)
    yield Served(sim, collection, client, exposition)
    await client.close()
    await collection.close()


def gpu_series(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every gpuwork_gpu_* and gpuwork_device_* sample, by family."""
    return {
        family.name: sorted(((s.labels, s.value) for s in family.samples), key=repr)
        for family in text_string_to_metric_families(text)
        if family.name.startswith(("gpuwork_gpu_", "gpuwork_device_"))
    }


# -- health and readiness ----------------------------------------------------------------------


async def test_healthz_answers_before_any_collection(served: Served) -> None:
    client = served.client

    response = await client.get("/healthz")

    assert response.status == 200
    assert await response.text() == "ok\n"


async def test_readyz_is_503_until_a_collection_is_done(served: Served) -> None:
    collection, client = served.collection, served.client

    before = await client.get("/readyz")
    assert before.status == 503
    assert "no collection" in await before.text()

    await collection.collect_once()

    after = await client.get("/readyz")
    assert after.status == 200
    assert await after.text() == "ready\n"


async def test_landing_page_links_the_endpoints(served: Served) -> None:
    client = served.client

    response = await client.get("/")

    assert response.status == 200
    assert response.content_type == "text/html"
    body = await response.text()
    for path in ("/metrics", "/healthz", "/readyz"):
        assert f'href="{path}"' in body


async def test_unknown_paths_are_404(served: Served) -> None:
    client = served.client

    assert (await client.get("/metric")).status == 404


# -- /metrics formats --------------------------------------------------------------------------


async def test_metrics_default_to_the_text_format_0_0_4(served: Served) -> None:
    collection, client = served.collection, served.client
    await collection.collect_once()

    response = await client.get("/metrics")

    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    body = await response.text()
    assert not body.rstrip().endswith("# EOF")
    families = {f.name for f in text_string_to_metric_families(body)}
    assert {"gpuwork_gpu_info", "gpuwork_device_info", "process_cpu_seconds"} <= families


@pytest.mark.parametrize("accept", [OPENMETRICS, PROMETHEUS_ACCEPT])
async def test_metrics_in_openmetrics_when_asked(served: Served, accept: str) -> None:
    collection, client = served.collection, served.client
    await collection.collect_once()

    response = await client.get("/metrics", headers={"Accept": accept})

    assert response.status == 200
    assert response.content_type == "application/openmetrics-text"
    assert "version=1.0.0" in response.headers["Content-Type"]
    body = await response.text()
    assert body.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(body)}  # a strict parser
    assert families["gpuwork_gpu_info"].type == "gauge"
    assert len(families["gpuwork_gpu_info"].samples) == 2
    assert len(families["gpuwork_device_info"].samples) == 4


async def test_metrics_before_the_first_collection_hold_no_gpu_series(served: Served) -> None:
    client = served.client

    response = await client.get("/metrics")

    assert response.status == 200
    body = await response.text()
    assert "gpuwork_" not in body  # no snapshot yet: nothing, not zeros
    assert "process_cpu_seconds_total" in body


@pytest.mark.parametrize(
    "accept",
    [
        "",
        "*/*",
        "text/plain;version=0.0.4",
        "text/plain;version=1.0.0;escaping=allow-utf-8",
        OPENMETRICS,
        PROMETHEUS_ACCEPT,
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
        "application/openmetrics-text;version=0.0.1,text/plain;version=0.0.4;q=0.5",
    ],
)
async def test_every_accept_header_gets_what_prometheus_client_would_send(
    served: Served, accept: str
) -> None:
    collection, client = served.collection, served.client
    await collection.collect_once()
    encoder, content_type = choose_encoder(accept)

    response = await client.get("/metrics", headers={"Accept": accept})

    assert response.headers["Content-Type"] == content_type
    expected = encoder(served.exposition.registry).decode()
    body = await response.text()
    # the same exposition, but for the process' and GC's values, rendered at another time
    assert without_runtime(body) == without_runtime(expected)


def without_runtime(body: str) -> list[str]:
    return [line for line in body.splitlines() if not line.startswith(("process_", "python_gc"))]


@pytest.mark.parametrize("accept", ["text/plain;version=0.0.4", PROMETHEUS_ACCEPT])
async def test_gzip_when_asked_the_same_body_compressed(served: Served, accept: str) -> None:
    collection, client = served.collection, served.client
    await collection.collect_once()

    plain = await client.get("/metrics", headers={"Accept": accept, "Accept-Encoding": "identity"})
    packed = await client.get(
        "/metrics", headers={"Accept": accept, "Accept-Encoding": "gzip"}, auto_decompress=False
    )

    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    raw = await packed.read()
    assert len(raw) < len(await plain.read()) / 4
    assert gzip.decompress(raw) == await plain.read()


async def test_a_scrape_renders_nothing(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    collection, client = served.collection, served.client
    await collection.collect_once()
    for accept in ("", PROMETHEUS_ACCEPT):  # every form asked for once ...
        for encoding in ("", "gzip"):
            await client.get("/metrics", headers={"Accept": accept, "Accept-Encoding": encoding})
    served.sim.clock.advance(10)
    await collection.collect_once()  # ... is rendered ahead at the next publication
    before = {accept: await (await client.get("/metrics", headers={"Accept": accept})).read()
              for accept in ("", PROMETHEUS_ACCEPT)}  # fmt: skip

    def forbidden() -> None:
        raise AssertionError("the registry was collected on the scrape path")

    monkeypatch.setattr(served.exposition.registry, "collect", forbidden)
    for accept, body in before.items():
        for encoding in ("", "gzip"):
            response = await client.get(
                "/metrics", headers={"Accept": accept, "Accept-Encoding": encoding}
            )
            assert response.status == 200
            assert await response.read() == body  # (aiohttp decompresses gzip)


# -- the scrape path makes no NVML call --------------------------------------------------------


async def test_a_scrape_never_calls_nvml(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    sim, collection, client = served.sim, served.collection, served.client
    await collection.collect_once()
    sim.clock.advance(10)
    await collection.collect_once()  # a second sample, so GPM activity is present too
    expected = gpu_series(await (await client.get("/metrics")).text())
    assert len(expected["gpuwork_gpu_info"]) == 2
    assert len(expected["gpuwork_device_sm_active_ratio"]) == 4

    calls: list[str] = []
    for name in [n for n in dir(sim.nvml) if n.startswith("nvml")]:

        def forbidden(*_: object, name: str = name) -> None:
            calls.append(name)
            raise AssertionError(f"{name} called on the scrape path")

        monkeypatch.setattr(sim.nvml, name, forbidden)
    with pytest.raises(AssertionError):  # the trap works
        sim.nvml.nvmlDeviceGetHandleByIndex(0)
    calls.clear()

    for _ in range(3):
        response = await client.get("/metrics")
        assert response.status == 200
        assert gpu_series(await response.text()) == expected
    assert calls == []


# -- /metrics answers while a collection is blocked in NVML ------------------------------------


class BlockingReader(NvmlReader):
    """The real reader, whose `read` waits for the test to let it go."""

    def __init__(self, nvml: Any) -> None:
        super().__init__(nvml)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def read(self) -> NvmlReading:
        self.entered.set()
        if not self.release.wait(WAIT_SECONDS):
            raise TimeoutError("the test never released the read")
        return super().read()


async def test_metrics_are_served_while_a_collection_is_blocked() -> None:
    sim = make_sim("small")
    reader = BlockingReader(sim.nvml)
    exposition = build_exposition()  # rendered at publication: the body cannot change
    collection = collection_for(sim, exposition.publish, reader=reader, timeout=WAIT_SECONDS * 2)
    client = await client_for(exposition, lambda: collection.ready)
    try:
        await collection.collect_once()
        before = await (await client.get("/metrics")).text()
        assert 'gpuwork_gpu_info{driver_version="570.133.20",gpu_index="0"' in before

        reader.entered.clear()
        reader.release.clear()
        sim.clock.advance(10)
        blocked = asyncio.create_task(collection.collect_once())
        assert await asyncio.to_thread(reader.entered.wait, WAIT_SECONDS)

        response = await asyncio.wait_for(client.get("/metrics"), WAIT_SECONDS)
        assert response.status == 200
        assert await response.text() == before  # the previous snapshot, whole
        assert (await client.get("/readyz")).status == 200
        assert not blocked.done()

        reader.release.set()
        snapshot = await asyncio.wait_for(blocked, WAIT_SECONDS)
        assert snapshot.collectors["nvml"].success
        after = await (await client.get("/metrics")).text()
        assert after != before  # the new snapshot replaced it (GPM activity now present)
        assert "gpuwork_device_sm_active_ratio{" in after
        assert "gpuwork_device_sm_active_ratio{" not in before
    finally:
        reader.release.set()
        await client.close()
        await collection.close()
