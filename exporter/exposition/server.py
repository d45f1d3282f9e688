"""The HTTP face of the exporter: `/metrics`, `/healthz`, `/readyz`.

A scrape sends bytes rendered when the latest snapshot was published
(`exporter/exposition/bodies.py`) and does nothing else: no serialization, and no NVML, gRPC or
HTTP call, is ever made on the scrape path.

`authorize`, when given (`--web.config.file`'s basic auth, exporter/exposition/web_config.py),
guards `/metrics` alone: probes reach `/healthz` and `/readyz` without credentials.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from exporter.exposition.bodies import Exposition

LANDING_PAGE = """<html><head><title>gpuwork exporter</title></head><body>
<h1>gpuwork exporter</h1><ul>
<li><a href="/metrics">/metrics</a></li>
<li><a href="/healthz">/healthz</a>: the process is alive</li>
<li><a href="/readyz">/readyz</a>: a first collection is done</li>
</ul></body></html>"""


CHALLENGE = {"WWW-Authenticate": 'Basic realm="gpuwork-exporter"'}
# Whether a request's Authorization header (None when absent) may read /metrics.
Authorize = Callable[[str | None], Awaitable[bool]]


def make_app(
    exposition: Exposition, ready: Callable[[], bool], *, authorize: Authorize | None = None
) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        if authorize is not None and not await authorize(request.headers.get("Authorization")):
            return web.Response(status=401, text="unauthorized\n", headers=CHALLENGE)
        body, headers = await exposition.body(
            request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", "")
        )
        return web.Response(body=body, headers=headers)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="no collection finished yet\n")

    async def landing(_: web.Request) -> web.Response:
        return web.Response(text=LANDING_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", landing)
    return app
