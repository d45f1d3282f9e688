"""TGI's body: the Rust crate's text, whatever the `Accept` header asks for."""

from __future__ import annotations

from simulator.bodies.exposition import OPENMETRICS_ACCEPT, render_exposition, serve_exposition
from tests.support.engine_stats import STATS


def test_tgi_ignores_the_accept_header() -> None:
    text = render_exposition("tgi", STATS, process_start_time=1.0)
    for accept in (OPENMETRICS_ACCEPT, "text/plain;version=1.0.0", ""):
        body, content_type = serve_exposition("tgi", STATS, process_start_time=1, accept=accept)
        assert (body, content_type) == (text, "text/plain; version=0.0.4; charset=utf-8")
    assert b"tgi_request_input_length_sum 1200\n" in text
