"""The /metrics bodies: rendered once per publication, in every form a scrape asks for."""

from __future__ import annotations

import gzip

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from exporter.exposition.bodies import FORMS, GZIP_LEVEL, KEEP_SECONDS, Exposition, render_forms
from exporter.exposition.families import SnapshotCollector
from exporter.model import NodeSnapshot
from tests.support.sim import make_sim
from tests.support.snapshots import snapshot_of

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

    forms = render_forms(registry, FORMS)
    text, text_gzip = forms[(False, False)], forms[(False, True)]
    om, om_gzip = forms[(True, False)], forms[(True, True)]

    assert text == generate_latest(registry)
    assert om == openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
    assert gzip.decompress(text_gzip) == text
    assert gzip.decompress(om_gzip) == om
    assert b"gpuwork_gpu_info{" in text
    assert om.endswith(b"# EOF\n")
    assert list(openmetrics_families(om.decode()))  # a strict parser
    only = render_forms(registry, [(True, True)])  # with the plain form it came from
    assert only.keys() == {(True, False), (True, True)}
    assert render_forms(registry, [(False, True)], have={(False, False): b"x"}) == {
        (False, False): b"x",
        (False, True): gzip.compress(b"x", compresslevel=GZIP_LEVEL),
    }


async def test_a_form_asked_for_is_rendered_once_then_at_each_publication() -> None:
    exposition = snapshot_only()
    await exposition.publish(small_snapshot())
    assert exposition.wanted == frozenset()  # nobody asked yet: nothing rendered ahead

    text, text_headers = await exposition.body("", "")  # rendered now, for this snapshot
    again, _ = await exposition.body("text/plain;version=0.0.4", "")
    assert again is text  # the same object: nothing rendered for the second scrape
    assert exposition.wanted == {(False, False)}

    await exposition.publish(small_snapshot())
    ahead, _ = await exposition.body("", "")
    assert ahead == text and ahead is not text  # the new snapshot's, rendered at publication
    assert exposition.wanted == {(False, False)}  # only what was asked for is rendered ahead

    om, om_headers = await exposition.body(OPENMETRICS_ACCEPT, "gzip, deflate")
    assert text_headers == {"Content-Type": choose_encoder("")[1]}
    assert om_headers == {
        "Content-Type": choose_encoder(OPENMETRICS_ACCEPT)[1],
        "Content-Encoding": "gzip",
    }
    assert gzip.decompress(om).endswith(b"# EOF\n")


async def test_forms_asked_for_long_ago_are_not_rendered_ahead() -> None:
    now = [0.0]
    snapshots = SnapshotCollector()
    registry = CollectorRegistry()
    registry.register(snapshots)
    exposition = Exposition(snapshots, registry, monotonic=lambda: now[0])
    await exposition.body(OPENMETRICS_ACCEPT, "gzip")
    now[0] = KEEP_SECONDS
    assert exposition.wanted == {(True, True)}
    now[0] = KEEP_SECONDS + 1
    assert exposition.wanted == frozenset()


async def test_before_the_first_publication_and_for_other_versions_it_renders_on_the_spot() -> None:
    exposition = snapshot_only()
    empty, _ = await exposition.body("", "")
    assert empty == b""  # no snapshot yet: no series at all, not zeros

    await exposition.publish(small_snapshot())
    accept = "application/openmetrics-text;version=2.0.0"
    body, headers = await exposition.body(accept, "")
    encoder, content_type = choose_encoder(accept)
    assert headers["Content-Type"] == content_type
    assert body == encoder(exposition.registry)
    assert b"gpuwork_gpu_info" in body
