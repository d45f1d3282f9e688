"""The `/metrics` bodies, rendered once per collection, in the forms scrapes ask for.

A snapshot changes once per collection, yet Prometheus replicas, a port-forward and a
curl may each scrape it many times in between. So the body is serialized when a
snapshot is published, in a worker thread, and a scrape sends bytes it finds ready: it
renders nothing and never waits for a collection.

Four forms can be asked for: the Prometheus text format or OpenMetrics 1.0, each plain
or gzip-compressed. Rendering all four costs three times one (OpenMetrics serializes
~1.5 times slower than text), and a Prometheus server asks for one of them only
(OpenMetrics, compressed). So a publication renders the forms that scrapes asked for in
the last `KEEP_SECONDS`; a form asked for the first time is rendered then, once for the
current snapshot, in a worker thread (that one scrape waits for it), and from the next
publication on is ready in advance. The process, platform and garbage-collector families
are rendered with the snapshot, so their values are those of the last collection.

Content negotiation is prometheus_client's own (`choose_encoder`): a client is answered
what the library's own server would answer it. An OpenMetrics version other than 1.0.0
is rendered for each scrape.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

from exporter.exposition.families import SnapshotCollector
from exporter.model import NodeSnapshot

# zlib level 1: a dense node's 800 KB body in ~4 ms to ~46 KB; level 6 takes twice as
# long for ~15 % fewer bytes, level 9 four times as long.
GZIP_LEVEL = 1
KEEP_SECONDS = 300.0  # a form asked for within this long is rendered at each publication
OPENMETRICS_1 = "application/openmetrics-text; version=1.0.0"

Form = tuple[bool, bool]  # (OpenMetrics, gzip-compressed)
FORMS: tuple[Form, ...] = ((False, False), (False, True), (True, False), (True, True))


def render_forms(
    registry: Collector, forms: Iterable[Form], have: Mapping[Form, bytes] | None = None
) -> dict[Form, bytes]:
    """The registry's exposition in each of `forms` (and the plain form of each format a
    compressed one was made from): each format serialized once, or taken from `have`, so
    that a compressed form is always its plain form compressed."""
    rendered: dict[Form, bytes] = dict(have or {})
    for om, compress in sorted(set(forms)):
        plain = rendered.get((om, False))
        if plain is None:
            plain = rendered[(om, False)] = (
                openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
                if om
                else generate_latest(registry)
            )
        if compress and (om, True) not in rendered:
            rendered[(om, True)] = gzip.compress(plain, compresslevel=GZIP_LEVEL)
    return rendered


class Exposition:
    """The latest snapshot, as the bytes a scrape sends. Event-loop only.

    `publish` is awaited by the collection loop once per snapshot: building the families
    and rendering the wanted forms run in a worker thread, and the new forms replace the
    old in one reference swap, so a scrape always sends one whole snapshot.
    """

    def __init__(
        self,
        snapshots: SnapshotCollector,
        registry: CollectorRegistry,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`registry`: everything a body holds, `snapshots` among it."""
        self._snapshots = snapshots
        self.registry = registry
        self._monotonic = monotonic
        self._forms: dict[Form, bytes] = {}  # of the current snapshot
        self._asked: dict[Form, float] = {}  # form -> when a scrape last asked for it
        self._rendering = asyncio.Lock()  # one on-demand render at a time

    @property
    def wanted(self) -> frozenset[Form]:
        """The forms a publication renders: those asked for lately."""
        now = self._monotonic()
        return frozenset(f for f, at in self._asked.items() if now - at <= KEEP_SECONDS)

    async def publish(self, snapshot: NodeSnapshot) -> None:
        self._forms = await asyncio.to_thread(self._render, snapshot, self.wanted)

    def _render(self, snapshot: NodeSnapshot, forms: frozenset[Form]) -> dict[Form, bytes]:
        self._snapshots.update(snapshot)
        return render_forms(self.registry, forms)

    async def body(self, accept: str, accept_encoding: str) -> tuple[bytes, dict[str, str]]:
        """The bytes and headers that answer a scrape with these request headers."""
        encoder, content_type = choose_encoder(accept)
        compress = "gzip" in accept_encoding  # as prometheus_client's own server decides
        headers = {"Content-Type": content_type}
        if compress:
            headers["Content-Encoding"] = "gzip"
        om = content_type.startswith("application/openmetrics-text")
        if om and not content_type.startswith(OPENMETRICS_1):  # rare: not kept
            data = await asyncio.to_thread(encoder, self.registry)
            return (gzip.compress(data, compresslevel=GZIP_LEVEL) if compress else data), headers
        form = (om, compress)
        self._asked[form] = self._monotonic()
        ready = self._forms.get(form)
        if ready is not None:
            return ready, headers
        async with self._rendering:  # first asked: render it for this snapshot, once
            forms = self._forms
            if form not in forms:
                forms.update(
                    await asyncio.to_thread(render_forms, self.registry, (form,), dict(forms))
                )
            return forms[form], headers


__all__ = ["FORMS", "GZIP_LEVEL", "KEEP_SECONDS", "Exposition", "Form", "render_forms"]
