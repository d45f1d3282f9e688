"""Scrapes the inference engines of the node's GPU pods, all at once, each at its own pod IP.

Where to scrape is decided by `engine_target` from the pod's metadata alone, and the
host is always the pod's own IP from its status: an annotation can choose a port and a
path, never a host, a scheme or a query, so a tenant cannot aim the exporter at
anything but its own pod. Every scrape has its own timeout and a cap on the body
size; one that hangs, floods or answers junk costs only its own sample.

Which port, in this order, at most `MAX_PORTS` of them (`candidate_ports`):
1. the `prometheus.io/port` annotation: then that port alone;
2. a container port named `metrics`, `http` or `http-metrics`;
3. the pod's declared container ports that some catalog entry serves on (8002 is
   Triton's, 30000 SGLang's, ...), then its other declared ports;
4. the catalog's default ports the pod does not declare (many images declare none).
They are tried one after the other within the scrape's timeout, until one answers as an
engine; that port is then remembered for the pod and the only one asked, for as long as
the pod lives.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import aiohttp

from exporter.errors import ErrorKind, SourceError, http_status_kind
from exporter.model import EngineReading, PodMeta
from exporter.sources.engines.catalog import BUILTIN, Catalog
from exporter.sources.engines.parser import BUILTIN_PARSER, EngineParser, ExpositionError

PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"
DEFAULT_PATH = "/metrics"
METRICS_PORT_NAMES = ("metrics", "http", "http-metrics")  # named container ports, in order
MAX_PORTS = 8  # ports tried on one pod before it is taken for one that runs no engine
_PATH = re.compile(r"^/[A-Za-z0-9._~/-]{0,255}$")  # a plain absolute path: no query, no host
# The text format 0.0.4 only. prometheus_client (vLLM, SGLang, trtllm-serve) answers
# OpenMetrics whenever the header names it, whatever its q-value, and then escapes names
# (`vllm:prompt_tokens_total` -> `vllm_prompt_tokens_total`); asked for text 0.0.4 alone
# it keeps them intact. The parser still reads either, for servers that ignore the ask.
ACCEPT = "text/plain;version=0.0.4,*/*;q=0.1"
OPENMETRICS = "application/openmetrics-text"


@dataclass(frozen=True, slots=True)
class EngineTarget:
    namespace: str
    pod: str
    url: str  # the first URL tried
    path_annotated: bool = False  # an annotated path is the only one tried
    ports: tuple[int, ...] = ()  # the ports tried after `url`'s, in order


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    target: EngineTarget
    reading: EngineReading | None
    error: str | None  # a kind for the errors metric; None on success
    duration_seconds: float
    message: str = ""  # what went wrong, for people (the probe, debug logs)
    url: str = ""  # the URL that answered last (after falling back to another path)


def engine_target(pod: PodMeta, catalog: Catalog = BUILTIN) -> EngineTarget | None:
    """Where this pod's engine may serve its metrics; None if it cannot be scraped."""
    if pod.phase != "Running" or not pod.pod_ip:
        return None
    try:
        address = ipaddress.ip_address(pod.pod_ip)
    except ValueError:
        return None
    host = f"[{address}]" if address.version == 6 else str(address)
    first, *others = candidate_ports(pod, catalog)
    path = pod.annotations.get(PATH_ANNOTATION, "")
    annotated = bool(_PATH.match(path)) and "//" not in path and "/../" not in f"{path}/"
    if not annotated:
        path = DEFAULT_PATH
    url = f"http://{host}:{first}{path}"
    return EngineTarget(pod.namespace, pod.name, url, annotated, tuple(others))


def candidate_ports(pod: PodMeta, catalog: Catalog = BUILTIN) -> tuple[int, ...]:
    """The ports to try on the pod, in order (see the module's docstring); never empty."""
    text = pod.annotations.get(PORT_ANNOTATION, "")
    if text.isascii() and text.isdigit() and 0 < int(text) < 65536:
        return (int(text),)
    known = dict.fromkeys(port for spec in catalog.engines for port in spec.ports)
    declared = [port for port in pod.declared_ports if 0 < port < 65536]
    ports = dict.fromkeys(
        [pod.container_ports[name] for name in METRICS_PORT_NAMES if name in pod.container_ports]
        + [port for port in declared if port in known]
        + declared
        + list(known)
    )
    return tuple(port for port in ports if 0 < port < 65536)[:MAX_PORTS]


class EngineScraper:
    """Scrapes many engines concurrently over one aiohttp session. Event-loop only."""

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        monotonic: Callable[[], float] = time.monotonic,
        parser: EngineParser = BUILTIN_PARSER,
    ) -> None:
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._monotonic = monotonic
        self._parser = parser
        self._session: aiohttp.ClientSession | None = None
        # The port and the path that answered as an engine, per pod, where they differ
        # from the target's first (another candidate port; a catalog path after /metrics
        # said 404, or trtllm-serve's JSON): found once, not at every scrape.
        self._ports: dict[tuple[str, str], int] = {}
        self._paths: dict[tuple[str, str], str] = {}

    @property
    def catalog(self) -> Catalog:
        return self._parser.catalog

    async def scrape(self, targets: Iterable[EngineTarget]) -> list[ScrapeResult]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=128, limit_per_host=2, force_close=False),
                headers={"Accept": ACCEPT, "User-Agent": "gpuwork-exporter"},
                auto_decompress=True,
            )
        targets = list(targets)
        live = {(t.namespace, t.pod) for t in targets}
        self._paths = {key: path for key, path in self._paths.items() if key in live}
        self._ports = {key: port for key, port in self._ports.items() if key in live}
        return list(await asyncio.gather(*(self._scrape(t) for t in targets)))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _scrape(self, target: EngineTarget) -> ScrapeResult:
        started = self._monotonic()
        key = (target.namespace, target.pod)
        try:
            async with asyncio.timeout(self._timeout):
                reading = await self._sweep(target, key)
        except TimeoutError:
            return self._result(
                target, None, ErrorKind.TIMEOUT, started, f"no answer in {self._timeout:g} s"
            )
        except (_ScrapeError, ExpositionError) as error:
            return self._result(target, None, error.kind, started, str(error))
        except (aiohttp.ClientError, OSError) as error:
            return self._result(
                target, None, ErrorKind.CONNECTION, started, str(error) or repr(error)
            )
        return self._result(target, reading, None, started, url=self._url(target))

    async def _sweep(self, target: EngineTarget, key: tuple[str, str]) -> EngineReading:
        """The reading of the first candidate port that answers as an engine (only the
        remembered one, once found); else the most telling error: an answer that was no
        engine's over a refused connection, the first port's over the others'."""
        found = self._ports.get(key)
        ports = (found,) if found is not None else (None, *target.ports)
        failure: Exception | None = None
        for port in ports:
            url = target.url if port is None else _with_port(target.url, port)
            try:
                reading = await self._read_engine(target, key, url)
            except (_ScrapeError, ExpositionError, aiohttp.ClientError, OSError) as error:
                if failure is None or (_connection(failure) and not _connection(error)):
                    failure = error
                continue
            if port is not None:
                self._ports[key] = port
            return reading
        assert failure is not None
        raise failure

    async def _read_engine(
        self, target: EngineTarget, key: tuple[str, str], url: str
    ) -> EngineReading:
        """The engine at `url`, or on another path of the catalog's where /metrics is not it."""
        path = self._paths.get(key)
        if path is not None:
            return await self._fetch(_with_path(url, path))
        try:
            return await self._fetch(url)
        except (_ScrapeError, ExpositionError) as error:
            if target.path_annotated or not _wrong_path(error):
                raise
            return await self._other_paths(key, url, error)

    def _url(self, target: EngineTarget) -> str:
        """The target's URL, on the port and path found to serve its engine where one was."""
        key = (target.namespace, target.pod)
        port, path = self._ports.get(key), self._paths.get(key)
        url = target.url if port is None else _with_port(target.url, port)
        return _with_path(url, path) if path is not None else url

    async def _other_paths(self, key: tuple[str, str], url: str, error: Exception) -> EngineReading:
        """The first of the catalog's other paths that serves an engine; else `error`."""
        for path in self._other_path_list(url):
            try:
                reading = await self._fetch(_with_path(url, path))
            except (_ScrapeError, ExpositionError):
                continue
            self._paths[key] = path
            return reading
        raise error

    def _other_path_list(self, url: str) -> list[str]:
        current = "/" + url.partition("://")[2].split("/", 1)[1]
        paths = dict.fromkeys(path for spec in self.catalog.engines for path in spec.paths)
        return [path for path in paths if path != current]

    async def _fetch(self, url: str) -> EngineReading:
        """The engine's reading. Raises `_ScrapeError` or `ExpositionError`."""
        assert self._session is not None
        async with self._session.get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise _ScrapeError(
                    http_status_kind(response.status), f"{url} answered {response.status}"
                )
            too_large = f"{url}: body over {self._max_bytes} bytes"
            if (response.content_length or 0) > self._max_bytes:
                raise _ScrapeError(ErrorKind.TOO_LARGE, too_large)
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > self._max_bytes:
                    raise _ScrapeError(ErrorKind.TOO_LARGE, too_large)
            openmetrics = response.headers.get("Content-Type", "").startswith(OPENMETRICS)
        return self._parser.parse(bytes(body), openmetrics=openmetrics)

    def _result(
        self,
        target: EngineTarget,
        reading: EngineReading | None,
        error: str | None,
        started: float,
        message: str = "",
        url: str = "",
    ) -> ScrapeResult:
        elapsed = self._monotonic() - started
        return ScrapeResult(target, reading, error, elapsed, message, url or target.url)


class _ScrapeError(SourceError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message, kind=kind)
        self.kind: str = kind


def _wrong_path(error: Exception) -> bool:
    """What an engine answers on a path it does not serve metrics on."""
    if isinstance(error, ExpositionError):
        return error.kind == ErrorKind.NOT_METRICS
    return isinstance(error, _ScrapeError) and error.kind == http_status_kind(404)


def _with_path(url: str, path: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}{path}"


def _with_port(url: str, port: int) -> str:
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    host = authority.rsplit(":", 1)[0]
    return f"{scheme}://{host}:{port}{slash}{path}"


def _connection(error: Exception) -> bool:
    """Nothing answered: a refused or reset connection, not an answer that was no engine."""
    return isinstance(error, aiohttp.ClientError | OSError) and not isinstance(
        error, _ScrapeError | ExpositionError
    )


def targets_for(
    pods: Mapping[tuple[str, str], PodMeta],
    holders: Iterable[tuple[str, str]],
    catalog: Catalog = BUILTIN,
) -> list[EngineTarget]:
    """The scrape targets among the pods that hold GPU devices."""
    found = []
    for key in sorted(set(holders)):
        pod = pods.get(key)
        target = engine_target(pod, catalog) if pod is not None else None
        if target is not None:
            found.append(target)
    return found
