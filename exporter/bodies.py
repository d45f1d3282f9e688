"""The `/metrics` bodies, rendered once per collection.

A snapshot changes once per collection, yet Prometheus replicas, a port-forward and a
curl may each scrape it many times in between. So the families are built and
serialized when a snapshot is published, in a worker thread, in each form a scrape can
ask for: the Prometheus text format and OpenMetrics 1.0, each also gzip-compressed. A
scrape picks the bytes it was asked for; it renders nothing and never waits for a
collection. The process, platform and garbage-collector families of prometheus_client
are rendered with the snapshot, so their values are those of the last collection.

Content negotiation is prometheus_client's own (`choose_encoder`): what a client is
answered is what the library's server would answer it. An OpenMetrics version other
than 1.0.0, and any scrape before the first collection, is rendered on the spot.
"""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

from exporter.metrics import SnapshotCollector
from exporter.model import NodeSnapshot

# zlib level 1: a dense node's 800 KB body in ~4 ms to ~46 KB; level 6 takes twice as
# long for ~15% fewer bytes, level 9 four times as long (bench/RESULTS.md).
GZIP_LEVEL = 1
OPENMETRICS_1 = "application/openmetrics-text; version=1.0.0"


@dataclass(frozen=True, slots=True)
class Bodies:
    """Every form of one snapshot's `/metrics` body."""

    text: bytes
    text_gzip: bytes
    openmetrics: bytes
    openmetrics_gzip: bytes


def render_bodies(registry: Collector) -> Bodies:
    """The registry's exposition in each served form."""
    text = generate_latest(registry)
    om = openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
    return Bodies(
        text=text,
        text_gzip=gzip.compress(text, compresslevel=GZIP_LEVEL),
        openmetrics=om,
        openmetrics_gzip=gzip.compress(om, compresslevel=GZIP_LEVEL),
    )


class Exposition:
    """The latest snapshot, as the bytes a scrape sends.

    `publish` is awaited by the collection loop once per snapshot: building the families
    and rendering the bodies run in a worker thread, and the new bodies replace the old
    in one reference swap, so a scrape always sends one whole snapshot.
    """

    def __init__(self, snapshots: SnapshotCollector, registry: CollectorRegistry) -> None:
        """`registry`: everything a body holds, `snapshots` among it."""
        self._snapshots = snapshots
        self.registry = registry
        self._bodies: Bodies | None = None

    async def publish(self, snapshot: NodeSnapshot) -> None:
        self._bodies = await asyncio.to_thread(self._render, snapshot)

    def _render(self, snapshot: NodeSnapshot) -> Bodies:
        self._snapshots.update(snapshot)
        return render_bodies(self.registry)

    def body(self, accept: str, accept_encoding: str) -> tuple[bytes, dict[str, str]]:
        """The bytes and headers that answer a scrape with these request headers."""
        encoder, content_type = choose_encoder(accept)
        compress = "gzip" in accept_encoding  # as prometheus_client's own server decides
        bodies = self._bodies
        om = content_type.startswith("application/openmetrics-text")
        if bodies is None or (om and not content_type.startswith(OPENMETRICS_1)):
            data = encoder(self.registry)  # rare: rendered on the spot
            data = gzip.compress(data, compresslevel=GZIP_LEVEL) if compress else data
        elif om:
            data = bodies.openmetrics_gzip if compress else bodies.openmetrics
        else:
            data = bodies.text_gzip if compress else bodies.text
        headers = {"Content-Type": content_type}
        if compress:
            headers["Content-Encoding"] = "gzip"
        return data, headers


__all__ = ["GZIP_LEVEL", "Bodies", "Exposition", "render_bodies"]
