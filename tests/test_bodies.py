"""The /metrics bodies: rendered once per publication, in every form a scrape asks for."""

from __future__ import annotations

import gzip

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from exporter.bodies import Exposition, render_bodies
from exporter.metrics import SnapshotCollector
from exporter.model import NodeSnapshot
from tests.conftest import make_sim
from tests.test_metrics import snapshot_of

OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0"


def snapshot_only() -> Exposition:
    """An exposition of the snapshot alone: its bodies change only with a publication."""
    snapshots = SnapshotCollector()
    registry = CollectorRegistry()
    registry.register(snapshots)
    return Exposition(snapshots, registry)


def small_snapshot() -> NodeSnapshot:
    sim = make_sim("small")
    sim.reader.start()
    return snapshot_of(sim.reader.read(), sim)


def test_every_form_is_the_library_s_own_rendering() -> None:
    snapshots = SnapshotCollector()
    snapshots.update(small_snapshot())
    registry = CollectorRegistry()
    registry.register(snapshots)

    bodies = render_bodies(registry)

    assert bodies.text == generate_latest(registry)
    assert bodies.openmetrics == openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
    assert gzip.decompress(bodies.text_gzip) == bodies.text
    assert gzip.decompress(bodies.openmetrics_gzip) == bodies.openmetrics
    assert b"gpuwork_gpu_info{" in bodies.text
    assert bodies.openmetrics.endswith(b"# EOF\n")
    assert list(openmetrics_families(bodies.openmetrics.decode()))  # a strict parser


async def test_a_scrape_sends_the_bytes_rendered_at_publication() -> None:
    exposition = snapshot_only()
    await exposition.publish(small_snapshot())

    text, text_headers = exposition.body("", "")
    again, _ = exposition.body("text/plain;version=0.0.4", "")
    om, om_headers = exposition.body(OPENMETRICS_ACCEPT, "gzip, deflate")

    assert again is text  # the same object: nothing rendered for the second scrape
    assert text_headers == {"Content-Type": choose_encoder("")[1]}
    assert om_headers == {
        "Content-Type": choose_encoder(OPENMETRICS_ACCEPT)[1],
        "Content-Encoding": "gzip",
    }
    assert gzip.decompress(om).endswith(b"# EOF\n")


async def test_before_the_first_publication_and_for_other_versions_it_renders_on_the_spot() -> None:
    exposition = snapshot_only()
    empty, _ = exposition.body("", "")
    assert empty == b""  # no snapshot yet: no series at all, not zeros

    await exposition.publish(small_snapshot())
    accept = "application/openmetrics-text;version=2.0.0"
    body, headers = exposition.body(accept, "")
    encoder, content_type = choose_encoder(accept)
    assert headers["Content-Type"] == content_type
    assert body == encoder(exposition.registry)
    assert b"gpuwork_gpu_info" in body
