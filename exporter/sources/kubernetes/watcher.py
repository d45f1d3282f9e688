"""ClusterWatcher: this node's pods and the namespaces, kept by LIST + WATCH.

How it talks to the API server, per resource (pods of this node, namespaces):

- LIST once (pods only with `fieldSelector=spec.nodeName=<node>`: never a cluster-wide
  pod LIST), then WATCH from the list's resourceVersion with `allowWatchBookmarks=true`
  and a randomized server-side `timeoutSeconds`, reading one JSON event per line.
- A watch that ends normally is re-opened from the last resourceVersion seen (an event
  or a bookmark): no LIST. An `ERROR` event or 410 Gone (the resourceVersion has been
  compacted away) means re-LIST. Connection errors and 5xx mark the metadata stale,
  back off (exponential, capped, jittered) and re-LIST: a re-list replaces the store, so
  pods deleted while the exporter was cut off disappear. 401/403 are logged once, with
  the permission that is missing, and retried the same way; they never crash the exporter.
- A LIST answer over `MAX_LIST_BYTES`, or one that is not JSON or not a list with a
  resourceVersion, fails the attempt as a `decode` error (back off, re-LIST). It is
  decoded while it arrives (stream.py), so the whole list never exists as Python objects.
- A first LIST asks for `resourceVersion=0` (served from the API server's watch cache,
  cheap for the server); a re-list asks for "not older than what we saw", and falls back
  to a quorum read only when the server says that version is gone.
- A malformed line or an object without its identifying fields is counted as a `decode`
  error and skipped.

Nothing here runs on the scrape path: `ClusterWatcher.view()` hands out an immutable
`ClusterView`, rebuilt only when something changed since the previous call. Call it from
the event loop that runs `ClusterWatcher.run()`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import aiohttp
import ijson
import structlog

from exporter.errors import ErrorKind, http_status_kind
from exporter.model import ClusterView
from exporter.sources.kubernetes.api import BearerToken, KubeApi, check, open_session
from exporter.sources.kubernetes.errors import AttemptError, GoneError, MalformedError
from exporter.sources.kubernetes.health import Health
from exporter.sources.kubernetes.objects import as_object, optional_str, required_str
from exporter.sources.kubernetes.store import Resource, namespaces, node_pods
from exporter.sources.kubernetes.stream import FAST_BACKEND, lines, read_list

MAX_EVENT_BYTES: Final = 16 << 20  # one watch event; the API server stores objects < 1.5 MB
MAX_LIST_BYTES: Final = 256 << 20
LIST_CHUNK_BYTES: Final = 16 << 10  # read and decoded at a time; bounds the parse events


class ClusterWatcher:
    """Keeps this node's pods and the cluster's namespaces, for `view()` to hand out.

    `run(stop)` runs two LIST+WATCH loops until `stop` is set. The health attributes
    (`errors`, `last_sync_timestamp`, `events`) are for the exporter's own metrics.
    """

    def __init__(
        self,
        api: KubeApi,
        node: str,
        *,
        pod_label_keys: frozenset[str],
        namespace_label_keys: frozenset[str],
        wall_clock: Callable[[], float] = time.time,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        watch_timeout: float = 300.0,
        request_timeout: float = 30.0,
    ) -> None:
        if not node:
            raise ValueError("the node name is empty")
        self._api = api
        self._url = api.url.rstrip("/")
        self._node = node
        self._wall_clock = wall_clock
        self._backoff_initial = backoff_initial
        self._backoff_max = max(backoff_max, backoff_initial)
        self._watch_timeout = max(watch_timeout, 1.0)
        self._request_timeout = request_timeout
        self._token = BearerToken(api.token_file)
        self._log = structlog.get_logger(component="exporter.sources.kubernetes.watcher")
        self._health = Health(self._log, wall_clock, api.token_file)

        self.errors = self._health.errors
        self.last_sync_timestamp: float | None = None
        self.events = 0

        self._pods = node_pods(node, pod_label_keys)
        self._namespaces = namespaces(namespace_label_keys)
        self._version = 0  # bumped on every change the view shows
        self._view: ClusterView | None = None
        self._view_version = -1

    # -- what the rest of the exporter reads

    @property
    def synced(self) -> bool:
        return self._pods.synced and self._namespaces.synced

    @property
    def stale(self) -> bool:
        return self._pods.failure is not None or self._namespaces.failure is not None

    def view(self) -> ClusterView:
        """The current pods and namespaces; the same object until something changes."""
        if self._view is None or self._view_version != self._version:
            self._view = ClusterView(
                pods=MappingProxyType(dict(self._pods.store)),
                namespaces=MappingProxyType(dict(self._namespaces.store)),
                synced=self.synced,
                stale=self.stale,
            )
            self._view_version = self._version
        return self._view

    # -- the loops

    async def run(self, stop: asyncio.Event) -> None:
        """Lists and watches until `stop` is set."""
        if ijson.backend != FAST_BACKEND:
            self._log.warning(
                "ijson's C backend is missing; decoding lists with a slower one",
                backend=ijson.backend,
            )
        async with open_session(self._api) as session:
            loops = [
                asyncio.create_task(self._loop(self._pods, session), name="kube-pods"),
                asyncio.create_task(self._loop(self._namespaces, session), name="kube-namespaces"),
            ]
            stopped = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait([*loops, stopped], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (*loops, stopped):
                    task.cancel()
                await asyncio.gather(*loops, stopped, return_exceptions=True)

    async def _loop(self, resource: Resource[Any, Any], session: aiohttp.ClientSession) -> None:
        backoff = self._backoff_initial
        list_version = "0"  # served from the API server's watch cache
        while True:
            try:
                await self._list(resource, session, list_version)
                self._succeeded(resource)
                backoff = self._backoff_initial
                while await self._watch(resource, session):
                    pass  # the server ended the watch: go on from the last resourceVersion
                list_version = resource.resource_version  # 410: re-list, not older than now
                continue
            except GoneError as gone:
                if list_version:
                    # A re-list asked for a version the server no longer has: read the latest.
                    self._health.count(ErrorKind.GONE)
                    self._log.info("resourceVersion expired; listing the latest",
                                   resource=resource.name, error=str(gone))  # fmt: skip
                    list_version = ""
                    continue
                self._failed(resource, ErrorKind.GONE, str(gone))  # the latest is never gone; retry
            except AttemptError as failure:
                self._failed(resource, failure.kind, str(failure))
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._failed(
                    resource, ErrorKind.UNREACHABLE, f"{type(exc).__name__}: {exc}".strip()
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not take the exporter down with it
                self._log.exception("Kubernetes watch failed", resource=resource.name)
                self._failed(resource, ErrorKind.INTERNAL, repr(exc))
            await asyncio.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, self._backoff_max)
            list_version = resource.resource_version or "0"

    async def _list(
        self, resource: Resource[Any, Any], session: aiohttp.ClientSession, version: str
    ) -> None:
        params = dict(resource.params)
        if version:
            params["resourceVersion"] = version
        async with session.get(
            self._url + resource.path,
            params=params,
            headers=self._token.headers(),
            timeout=aiohttp.ClientTimeout(total=self._request_timeout),
        ) as response:
            await check(response, "list", resource.name)
            # Each item is converted and dropped as it arrives (see stream.py).
            fresh: dict[Any, Any] = {}
            list_version = await read_list(
                response.content,
                resource.name,
                lambda items: self._keep(resource, items, fresh),
                chunk_bytes=LIST_CHUNK_BYTES,
                max_bytes=MAX_LIST_BYTES,
            )
        if resource.replace(fresh):
            self._version += 1
        resource.resource_version = list_version
        self.last_sync_timestamp = self._wall_clock()
        if not resource.synced:
            resource.synced = True
            self._version += 1
            self._log.debug("listed", resource=resource.name, items=len(fresh))

    def _keep(self, resource: Resource[Any, Any], items: list[Any], into: dict[Any, Any]) -> None:
        """Converts listed items into `into`; a malformed one is counted and skipped."""
        for item in items:
            try:
                key, value = resource.convert(as_object(item, "item"))
            except ValueError as exc:
                self._health.decode_error(resource.name, exc)
                continue
            into[key] = value

    async def _watch(self, resource: Resource[Any, Any], session: aiohttp.ClientSession) -> bool:
        """One WATCH; True when the server ended it normally, False on 410 (re-list)."""
        timeout = int(self._watch_timeout * (1 + random.random()))
        params = {
            **resource.params,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource.resource_version,
            "timeoutSeconds": str(timeout),
        }
        started = time.monotonic()
        events = 0
        try:
            async with session.get(
                self._url + resource.path,
                params=params,
                headers=self._token.headers(),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self._request_timeout,
                    sock_connect=self._request_timeout,
                    sock_read=timeout + self._request_timeout,
                ),
            ) as response:
                await check(response, "watch", resource.name)
                async for line in lines(response.content, MAX_EVENT_BYTES):
                    if line is None:
                        self._health.decode_error(resource.name, MalformedError("event too large"))
                        continue
                    if self._on_line(resource, line):
                        return False
                    events += 1
        except GoneError:
            self._health.count(ErrorKind.GONE)
            return False
        if events == 0 and time.monotonic() - started < 1.0:
            await asyncio.sleep(self._backoff_initial)  # a proxy that ends watches at once
        return True

    def _on_line(self, resource: Resource[Any, Any], line: bytes) -> bool:
        """Applies one watch event; True when it says the resourceVersion is gone."""
        if not line.strip():
            return False
        try:
            event = as_object(json.loads(line), "event")
            kind = event.get("type")
            obj = as_object(event.get("object"), "object")
            if kind == "ERROR":
                return self._on_error_event(resource, obj)
            version = required_str(as_object(obj.get("metadata"), "metadata"), "resourceVersion")
            changed = resource.apply(kind, obj)
        except ValueError as exc:
            self._health.decode_error(resource.name, exc)
            return False
        self.events += 1
        if changed:
            self._version += 1
        resource.resource_version = version
        self.last_sync_timestamp = self._wall_clock()
        return False

    def _on_error_event(self, resource: Resource[Any, Any], status: Mapping[str, Any]) -> bool:
        code = status.get("code")
        if code == 410:
            self._health.count(ErrorKind.GONE)
            self._log.info(
                "watch expired; listing again",
                resource=resource.name,
                error=optional_str(status, "message")[:500],
            )
            return True
        kind = http_status_kind(code) if isinstance(code, int) else ErrorKind.DECODE
        raise AttemptError(kind, optional_str(status, "message")[:500] or f"ERROR event {code}")

    # -- health: the view goes stale when one loop fails, fresh when both work again

    def _failed(self, resource: Resource[Any, Any], kind: str, message: str) -> None:
        was_stale, previous = self.stale, resource.failure
        resource.failure = kind
        if not was_stale:
            self._version += 1
        self._health.failed(resource.name, kind, message, previous=previous,
                            went_stale=not was_stale, pods=len(self._pods.store))  # fmt: skip

    def _succeeded(self, resource: Resource[Any, Any]) -> None:
        if resource.failure is None:
            return
        resource.failure = None
        if not self.stale:
            self._version += 1
            self._health.recovered(pods=len(self._pods.store),
                                   namespaces=len(self._namespaces.store))  # fmt: skip
