"""The simulated node's inference engines: real HTTP servers on the pods' own addresses.

Every pod of a scenario that runs an engine gets a listener on its own loopback IP
(`node.pod_ip`, in the node's own 127.A.B.x block) and metrics port, answering on its
engine's metrics path with a body in that engine's real exposition format, rendered
from `work.engine_stats` at the node's current time by prometheus_client as the engine's
own server does it (`simulator.bodies`), in the format that the request's `Accept` header
negotiates. While an engine is down (an `engine_restart` fault) its listener is closed and its open
connections dropped, so connecting is refused, as with a dead process; it listens again
when the new process starts, its counters back at 0.

Faults that an engine's HTTP side can show are knobs set per pod at run time
(`SimulatedEngines.faults(namespace, name)`): a hang, a slow answer, a huge body, random
bytes, and a hostile body (`BodyFault`: truncated, invalid UTF-8, a duplicate series, NaN,
a negative or dipping counter, an HTML page with status 200). A scenario's `engine_body`
faults set the last one for a while on the node's clock.

`python -m simulator.engines --scenario NAME` serves the engines of a scenario
in a process of their own (prints `ready` once listening, stops on SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import NoReturn

import structlog
from aiohttp import web

from simulator.bodies.exposition import HTML_ERROR_PAGE, EngineExposition
from simulator.bodies.faults import BodyFault, corrupt
from simulator.node import SimulatedNode, engine_endpoint, pod_key
from simulator.scenario import EngineBodyFault, PodSpec, ScenarioError, load_scenario
from simulator.work import engine_life, engine_process_start_time, engine_stats

log = structlog.get_logger(component="simulated-engines")

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HUGE_BODY_BYTES = 64 * 1024 * 1024  # what the `huge` knob serves: a valid body padded to this
GARBAGE_BYTES = 64 * 1024  # what the `garbage` knob serves
POLL_SECONDS = 0.05  # how often listeners follow the engines' lives on the node's clock


@dataclass
class EngineFaults:
    """What one engine's HTTP side does wrong; change the fields at any time."""

    hang: bool = False  # accept the request and never answer
    slow_seconds: float = 0.0  # wait this long before answering
    huge: bool = False  # a valid body padded with comments to HUGE_BODY_BYTES
    garbage: bool = False  # GARBAGE_BYTES random bytes as text/plain
    body: BodyFault | None = None  # the body as `simulator.bodies.faults.corrupt` makes it


@dataclass(eq=False)
class _Endpoint:
    pod: PodSpec
    ip: str
    port: int
    path: str
    faults: EngineFaults = field(default_factory=EngineFaults)
    listener: asyncio.Server | None = None
    life_start: float | None = None  # the engine process the listener belongs to
    exposition: EngineExposition | None = None  # its registry, made at the first request


class SimulatedEngines:
    """Serves every engine pod of a node over HTTP; event-loop only."""

    def __init__(self, node: SimulatedNode, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.node = node
        self.poll_seconds = poll_seconds
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        for index, pod in enumerate(node.scenario.pods):
            if pod.engine is not None:
                port, path = engine_endpoint(pod)
                self._endpoints[(pod.namespace, pod.name)] = _Endpoint(
                    pod, node.pod_ip(index), port, path
                )
        self._by_socket = {(e.ip, e.port): e for e in self._endpoints.values()}
        # (namespace, name) -> (ip, port, path) of each engine pod
        self.addresses: dict[tuple[str, str], tuple[str, int, str]] = {
            key: (e.ip, e.port, e.path) for key, e in self._endpoints.items()
        }
        self._server: web.Server | None = None
        self._poller: asyncio.Task[None] | None = None
        self._garbage: dict[tuple[str, str], bytes] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for every engine that is up now, and follow the node's clock."""
        if self._server is not None:
            return
        self._server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        await self.refresh()
        if self.poll_seconds > 0:
            self._poller = asyncio.create_task(self._poll(), name="simulated-engines")

    async def stop(self) -> None:
        """Close every listener and connection."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        for endpoint in self._endpoints.values():
            self._close(endpoint)
            if endpoint.exposition is not None:
                endpoint.exposition.close()
                endpoint.exposition = None
        if self._server is not None:
            await self._server.shutdown(0.1)
            self._server = None

    async def __aenter__(self) -> SimulatedEngines:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.refresh()
            except OSError as error:  # an address still taken: try again at the next poll
                log.warning("simulated engine cannot listen", error=str(error))

    async def refresh(self) -> None:
        """Open and close listeners as the engines' processes live and die at the node's
        current time; a restart seen only as a new process drops the old connections."""
        if self._server is None:
            return
        t = self.node.clock()
        opening = []
        for endpoint in self._endpoints.values():
            life = engine_life(self.node, endpoint.pod, t)
            if life is None:
                self._close(endpoint)
                continue
            if endpoint.life_start is not None and endpoint.life_start != life.start:
                self._drop_connections(endpoint)  # it died and came back between two looks
            endpoint.life_start = life.start
            if endpoint.listener is None:
                opening.append(self._open(endpoint))
        if opening:
            await asyncio.gather(*opening)

    async def _open(self, endpoint: _Endpoint) -> None:
        assert self._server is not None
        loop = asyncio.get_running_loop()
        endpoint.listener = await loop.create_server(
            self._server, endpoint.ip, endpoint.port, reuse_address=True
        )

    def _close(self, endpoint: _Endpoint) -> None:
        if endpoint.listener is None and endpoint.life_start is None:
            return  # closed already
        if endpoint.listener is not None:
            endpoint.listener.close()
            endpoint.listener = None
        endpoint.life_start = None
        self._drop_connections(endpoint)

    def _drop_connections(self, endpoint: _Endpoint) -> None:
        """Reset the connections to an engine whose process died."""
        if self._server is None:
            return
        for connection in self._server.connections:
            transport = connection.transport
            if transport is not None and _local(transport) == (endpoint.ip, endpoint.port):
                transport.abort()

    # -- state -------------------------------------------------------------------------------

    def faults(self, namespace: str, name: str) -> EngineFaults:
        """The fault knobs of one engine pod, to set at run time."""
        return self._endpoints[(namespace, name)].faults

    def listening(self, namespace: str, name: str) -> bool:
        return self._endpoints[(namespace, name)].listener is not None

    def url(self, namespace: str, name: str) -> str:
        ip, port, path = self.addresses[(namespace, name)]
        return f"http://{ip}:{port}{path}"

    # -- answers -----------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        local = _local(request.transport) if request.transport is not None else None
        endpoint = self._by_socket.get(local) if local is not None else None
        if endpoint is None:  # cannot happen: every listener is an endpoint's
            return web.Response(status=500, text="no engine here\n")
        faults = endpoint.faults
        if faults.hang:
            await asyncio.Event().wait()  # until the client or the engine goes away
        if faults.slow_seconds > 0:
            await asyncio.sleep(faults.slow_seconds)
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="Method Not Allowed\n")
        if request.path != endpoint.path:
            return web.Response(status=404, text="Not Found\n")
        t = self.node.clock()
        body_fault = faults.body or self._body_fault(endpoint, t)
        if body_fault is BodyFault.HTML_200:
            return web.Response(body=HTML_ERROR_PAGE, content_type="text/html", charset="utf-8")
        if faults.garbage:
            return web.Response(body=self._garbage_of(endpoint), headers=_TEXT)
        stats = engine_stats(self.node, endpoint.pod, t)
        if stats is None:  # it died since the last refresh: the connection resets
            await _reset(request)
        engine = endpoint.pod.engine
        assert engine is not None
        if endpoint.exposition is None:
            endpoint.exposition = EngineExposition(engine)
        # a padded body must stay in the text format: OpenMetrics ends at `# EOF`
        accept = "" if faults.huge else request.headers.get("Accept", "")
        body, content_type = endpoint.exposition.serve(
            stats,
            process_start_time=engine_process_start_time(self.node, endpoint.pod, t),
            accept=accept,
        )
        if body_fault is not None:
            body = corrupt(body, body_fault, engine)
        if faults.huge:
            body = _padded(body, HUGE_BODY_BYTES)
        return web.Response(body=body, headers={"Content-Type": content_type})

    def _body_fault(self, endpoint: _Endpoint, t: float) -> BodyFault | None:
        """The scenario's `engine_body` fault on this pod at t, if any."""
        pod = f"{endpoint.pod.namespace}/{endpoint.pod.name}"
        for fault in self.node.scenario.faults:
            if (
                isinstance(fault, EngineBodyFault)
                and fault.pod == pod
                and fault.at <= t < fault.at + fault.seconds
            ):
                return fault.body
        return None

    def _garbage_of(self, endpoint: _Endpoint) -> bytes:
        key = (endpoint.pod.namespace, endpoint.pod.name)
        if key not in self._garbage:
            self._garbage[key] = random.Random(pod_key(endpoint.pod)).randbytes(GARBAGE_BYTES)
        return self._garbage[key]


_TEXT = {"Content-Type": TEXT_CONTENT_TYPE}


def _local(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    sockname = transport.get_extra_info("sockname")
    return (sockname[0], sockname[1]) if sockname else None


async def _reset(request: web.BaseRequest) -> NoReturn:
    """Drop the connection without an answer; the handler is cancelled as it goes."""
    if request.transport is not None:
        request.transport.abort()
    await asyncio.Event().wait()
    raise AssertionError("unreachable")  # pragma: no cover


def _padded(body: bytes, size: int) -> bytes:
    """`body` followed by comment lines up to `size` bytes: still valid text format."""
    line = b"# padding " + b"x" * 1013 + b"\n"  # 1 KiB
    count = max(size - len(body), 0) // len(line)
    return body + line * count


# -- a process of its own ------------------------------------------------------------------------


async def serve(scenario: str, wall_start: float | None) -> None:
    node = SimulatedNode(load_scenario(scenario), wall_start=wall_start)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with SimulatedEngines(node):
        print("ready", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.engines",
        description="Serve the engines of a simulated node over HTTP on their pods' "
        "loopback addresses until SIGTERM.",
    )
    parser.add_argument("--scenario", required=True, help="a built-in scenario or a file")
    parser.add_argument(
        "--wall-start",
        type=float,
        default=None,
        help="unix seconds of the node's t=0 (default: now); give the exporter's to agree",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.scenario, args.wall_start))
    except ScenarioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
