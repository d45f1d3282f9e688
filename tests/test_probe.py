"""`gpuwork-exporter probe`: what the exporter would export, and why not, over real HTTP."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from exporter.cli import main
from exporter.probe import probe


@pytest.fixture
def vllm_server() -> Iterator[str]:
    """vLLM's families served by prometheus_client's own server and content negotiation."""
    registry = CollectorRegistry()
    labels = ("model_name", "engine")
    Counter("vllm:prompt_tokens", "p", labels, registry=registry).labels("m", "0").inc(400)
    Counter("vllm:generation_tokens", "g", labels, registry=registry).labels("m", "0").inc(100)
    Gauge("vllm:num_requests_running", "r", labels, registry=registry).labels("m", "0").set(2)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    thread.join(timeout=5)


def test_a_vllm_server_is_recognized_and_its_series_shown(
    vllm_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", vllm_server]) == 0
    out = capsys.readouterr().out
    assert "engine vllm, 1 model(s), process start" in out
    assert "generation_tokens{series='engine=0'} 100" in out
    assert "prompt_tokens{series='engine=0'} 400" in out
    assert "requests_running 2" in out


def test_nothing_listening_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "http://127.0.0.1:9/metrics"]) == 1
    assert "error connection" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [["probe"], ["probe", "ftp://x/y"], ["probe", "u", "--repeat", "0"]]
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2


def vllm_body(generation: float, start: float, extra: bytes = b"") -> bytes:
    return (
        b"process_start_time_seconds %g\n" % start
        + b'vllm:generation_tokens_total{engine="0",model_name="m"} %g\n' % generation
        + b'vllm:num_requests_running{engine="0",model_name="m"} 1\n'
        + extra
    )


@pytest.fixture
async def sequence() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server answering the next body of a list at each GET."""
    bodies: list[bytes] = []

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=bodies.pop(0), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/metrics", bodies
    await runner.cleanup()


async def test_repeat_shows_counters_held_through_a_dip_and_reset_by_a_restart(
    sequence: tuple[str, list[bytes]],
) -> None:
    url, bodies = sequence
    bad = b'vllm:prompt_tokens_total{engine="0",model_name="\xff"} 3\n'
    bodies += [
        vllm_body(100, 1e9),
        vllm_body(90, 1e9, bad),  # a dip without a restart, and a line not UTF-8
        vllm_body(120, 1e9),
        vllm_body(5, 2e9),  # a new process
    ]
    out = io.StringIO()
    status = await probe(
        [url], repeat=4, interval=0.0, scrape_timeout=2.0, max_bytes=1 << 20, out=out
    )
    assert status == 0
    scrapes = out.getvalue().split("scrape ")[1:]
    assert len(scrapes) == 4
    assert "generation_tokens{series='engine=0'} 100\n" in scrapes[0]
    assert "generation_tokens{series='engine=0'} 100  (+0)  (held: the engine says 90" in scrapes[1]
    assert "problem invalid_utf8 at line 4" in scrapes[1]
    assert "generation_tokens{series='engine=0'} 120  (+20)" in scrapes[2]
    assert "generation_tokens{series='engine=0'} 5  (reset: the engine restarted)" in scrapes[3]


async def test_a_body_cut_short_is_reported_and_exits_1(
    sequence: tuple[str, list[bytes]],
) -> None:
    url, bodies = sequence
    bodies.append(vllm_body(100, 1e9)[:-3])
    out = io.StringIO()
    status = await probe([url], repeat=1, interval=0, scrape_timeout=2, max_bytes=1 << 20, out=out)
    assert status == 1
    assert "error truncated: a body cut short" in out.getvalue()


def test_a_user_catalog_entry_is_recognized_and_the_probe_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = CollectorRegistry()
    Counter("acme_output_tokens", "o", ["served_model"], registry=registry).labels("m").inc(70)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    catalog = tmp_path / "engines.yaml"
    catalog.write_text(
        "engines:\n  - name: acme\n    ports: [9100]\n    model_labels: [served_model]\n"
        "    fields:\n      generation_tokens: [{counter: acme_output_tokens_total}]\n"
    )
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        assert main(["probe", url]) == 1  # the built-in catalog does not know it
        assert "error unknown_engine" in capsys.readouterr().out
        assert main(["probe", "--engines.catalog", str(catalog), url]) == 0
    finally:
        server.shutdown()
        thread.join(timeout=5)
    out = capsys.readouterr().out
    assert "catalog entry acme: 1 sample line(s) of its names, the first at line" in out
    assert "generation_tokens{series=''} 70" in out


def test_a_bad_catalog_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "engines.yaml"
    catalog.write_text("engines:\n  - name: Bad Name\n    ports: [1]\n    fields: {}\n")
    assert main(["probe", "--engines.catalog", str(catalog), "http://127.0.0.1:9/"]) == 2
    assert f"{catalog}:2: engines[0].name: String should match" in capsys.readouterr().err
