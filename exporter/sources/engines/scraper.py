"""Scrapes the inference engines of the node's GPU pods, all at once, each at its own pod IP.

Where to scrape is decided by `engine_target` from the pod's metadata alone, and the
host is always the pod's own IP from its status: an annotation can choose a port and a
path, never a host, a scheme or a query, so a tenant cannot aim the exporter at
anything but its own pod. Every scrape has its own timeout and a cap on the body
size; one that hangs, floods or answers junk costs only its own sample.
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
from exporter.sources.engines.catalog import ENGINES
from exporter.sources.engines.parser import ExpositionError, parse_engine

PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"
DEFAULT_PORT = 8000  # vLLM's, and the port most engine images listen on
DEFAULT_PATH = "/metrics"
METRICS_PORT_NAMES = ("metrics", "http", "http-metrics")  # named container ports, in order
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
    url: str
    path_annotated: bool = False  # an annotated path is the only one tried


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    target: EngineTarget
    reading: EngineReading | None
    error: str | None  # a kind for the errors metric; None on success
    duration_seconds: float
    message: str = ""  # what went wrong, for people (the probe, debug logs)
    url: str = ""  # the URL that answered last (after falling back to another path)


def engine_target(pod: PodMeta) -> EngineTarget | None:
    """Where this pod's engine serves its metrics; None if it cannot be scraped."""
    if pod.phase != "Running" or not pod.pod_ip:
        return None
    try:
        address = ipaddress.ip_address(pod.pod_ip)
    except ValueError:
        return None
    host = f"[{address}]" if address.version == 6 else str(address)
    port = _port(pod)
    path = pod.annotations.get(PATH_ANNOTATION, "")
    annotated = bool(_PATH.match(path)) and "//" not in path and "/../" not in f"{path}/"
    if not annotated:
        path = DEFAULT_PATH
    return EngineTarget(pod.namespace, pod.name, f"http://{host}:{port}{path}", annotated)


def _port(pod: PodMeta) -> int:
    text = pod.annotations.get(PORT_ANNOTATION, "")
    if text.isascii() and text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    for name in METRICS_PORT_NAMES:
        if name in pod.container_ports:
            return pod.container_ports[name]
    return DEFAULT_PORT


class EngineScraper:
    """Scrapes many engines concurrently over one aiohttp session. Event-loop only."""

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._monotonic = monotonic
        self._session: aiohttp.ClientSession | None = None
        # A path from the engine catalog that answered after /metrics did not (404, or
        # trtllm-serve's JSON): per pod, so it is found once, not at every scrape.
        self._paths: dict[tuple[str, str], str] = {}

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
        return list(await asyncio.gather(*(self._scrape(t) for t in targets)))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _scrape(self, target: EngineTarget) -> ScrapeResult:
        started = self._monotonic()
        key = (target.namespace, target.pod)
        url = self._url(target)
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    reading = await self._fetch(url)
                except (_ScrapeError, ExpositionError) as error:
                    if target.path_annotated or key in self._paths or not _wrong_path(error):
                        raise
                    reading = await self._other_paths(key, url, error)
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

    def _url(self, target: EngineTarget) -> str:
        """The target's URL, on the path found to serve its engine where one was."""
        path = self._paths.get((target.namespace, target.pod))
        return _with_path(target.url, path) if path is not None else target.url

    async def _other_paths(self, key: tuple[str, str], url: str, error: Exception) -> EngineReading:
        """The first of the catalog's other paths that serves an engine; else `error`."""
        for path in _other_paths(url):
            try:
                reading = await self._fetch(_with_path(url, path))
            except (_ScrapeError, ExpositionError):
                continue
            self._paths[key] = path
            return reading
        raise error

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
        return parse_engine(bytes(body), openmetrics=openmetrics)

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


def _other_paths(url: str) -> list[str]:
    current = "/" + url.partition("://")[2].split("/", 1)[1]
    paths = dict.fromkeys(spec.default_path for spec in ENGINES.values())
    return [path for path in paths if path != current]


def targets_for(
    pods: Mapping[tuple[str, str], PodMeta], holders: Iterable[tuple[str, str]]
) -> list[EngineTarget]:
    """The scrape targets among the pods that hold GPU devices."""
    found = []
    for key in sorted(set(holders)):
        pod = pods.get(key)
        target = engine_target(pod) if pod is not None else None
        if target is not None:
            found.append(target)
    return found
