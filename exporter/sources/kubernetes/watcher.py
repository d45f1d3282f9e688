"""The Kubernetes API source: this node's pods and the namespaces, kept by LIST + WATCH.

A thin client on aiohttp. We deliberately do not use the `kubernetes` client package:
importing it alone costs tens of MB of RSS (generated models for every API group), and
the exporter runs in an 80 MB memory budget on every GPU node. The exporter needs two
read-only watches and a handful of fields, which plain HTTP and JSON do well.

A LIST answer is decoded as it arrives, one item at a time, with `ijson` (its C backend,
yajl2_c, comes in its wheels): each item is turned into a `PodMeta` or `NamespaceMeta`
as soon as it is complete and dropped. Reading 1,000 pods (~10 MB of JSON) whole and
decoding them with `json.loads` left the process ~60 MB larger for good: the few objects
kept were scattered among the freed temporaries, and the allocator could not give that
memory back. Streamed, the temporaries at any moment are one read chunk's parse events
and one item. Watch events (one small object per line) are decoded with `json`.

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
  resourceVersion, fails the attempt as a `decode` error (back off, re-LIST).
- A first LIST asks for `resourceVersion=0` (served from the API server's watch cache,
  cheap for the server); a re-list asks for "not older than what we saw", and falls back
  to a quorum read only when the server says that version is gone.

Only what `PodMeta` and `NamespaceMeta` hold is kept, with tenant-controlled strings
capped (63 characters for label values, 253 for annotation values, as Kubernetes itself
limits them) so that a hostile object cannot grow the exporter. A malformed line or an
object without its identifying fields is counted as a `decode` error and skipped.

Nothing here runs on the scrape path: `ClusterWatcher.view()` hands out an immutable
`ClusterView`, rebuilt only when something changed since the previous call. Call it from
the event loop that runs `ClusterWatcher.run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import ssl
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

import aiohttp
import ijson
import structlog

from exporter.model import ClusterView, NamespaceMeta, PodMeta

SERVICE_ACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
ANNOTATION_PREFIX: Final = "prometheus.io/"
MAX_LABEL_VALUE: Final = 63  # Kubernetes' own limit on a label value
MAX_ANNOTATION_VALUE: Final = 253
MAX_ANNOTATIONS: Final = 16  # prometheus.io/* annotations kept per pod (sorted by key)
MAX_PORTS: Final = 64  # named container ports kept per pod
MAX_EVENT_BYTES: Final = 16 << 20  # one watch event; the API server stores objects < 1.5 MB
MAX_LIST_BYTES: Final = 256 << 20
LIST_CHUNK_BYTES: Final = 16 << 10  # read and decoded at a time; bounds the parse events
MAX_STATUS_BYTES: Final = 64 << 10  # the body of an error answer, for the log
FORBIDDEN_HINT: Final = (
    "the exporter's ClusterRole needs get/list/watch on pods and namespaces (deploy/rbac.yaml)"
)

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class KubeApi:
    """Where the API server is and how to authenticate to it."""

    url: str  # e.g. "https://10.96.0.1:443"; no trailing slash
    token_file: str | None = None  # re-read when it changes: bound tokens rotate
    ca_file: str | None = None  # None: the system's trust store


def in_cluster_api(
    environ: Mapping[str, str], service_account_dir: str = SERVICE_ACCOUNT_DIR
) -> KubeApi | None:
    """The API server as a pod sees it, or None outside a cluster.

    Reads KUBERNETES_SERVICE_HOST/PORT (an IPv6 host is bracketed) and the service
    account's token and CA where they are mounted. A port that is not a number raises
    ValueError: that is a broken pod, not "outside a cluster".
    """
    host = environ.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = environ.get("KUBERNETES_SERVICE_PORT", "").strip()
    if not host or not port:
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"KUBERNETES_SERVICE_PORT is not a port number: {port!r}")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    token = os.path.join(service_account_dir, "token")
    ca = os.path.join(service_account_dir, "ca.crt")
    return KubeApi(
        url=f"https://{host}:{port}",
        token_file=token if os.path.exists(token) else None,
        ca_file=ca if os.path.exists(ca) else None,
    )


# -- errors ------------------------------------------------------------------------------------


class _MalformedError(ValueError):
    """An object or event without the fields it must have."""


class _GoneError(Exception):
    """410: the resourceVersion we asked for is older than the server keeps."""


class _AttemptError(Exception):
    """An attempt failed; `kind` is the error kind counted in `ClusterWatcher.errors`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# -- converting API objects --------------------------------------------------------------------


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _MalformedError(f"{what} is not an object")
    return value


def _required_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _MalformedError(f"missing {key}")
    return value


def _optional_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _labels(metadata: Mapping[str, Any], keys: frozenset[str]) -> Mapping[str, str]:
    labels = _mapping(metadata.get("labels"), "metadata.labels")
    kept: dict[str, str] = {}
    for key in keys:  # the configured keys are few; a pod's labels may be many
        value = labels.get(key)
        if isinstance(value, str):
            kept[key] = value[:MAX_LABEL_VALUE]
    return MappingProxyType(kept)


def _annotations(metadata: Mapping[str, Any]) -> Mapping[str, str]:
    annotations = _mapping(metadata.get("annotations"), "metadata.annotations")
    keys = sorted(
        k
        for k, v in annotations.items()
        if isinstance(k, str) and k.startswith(ANNOTATION_PREFIX) and isinstance(v, str)
    )
    # The same few keys on every pod: interned, one copy is kept, not one per pod.
    return MappingProxyType(
        {sys.intern(k): annotations[k][:MAX_ANNOTATION_VALUE] for k in keys[:MAX_ANNOTATIONS]}
    )


def _container_ports(spec: Mapping[str, Any]) -> Mapping[str, int]:
    ports: dict[str, int] = {}
    # Sidecars (init containers that keep running) can serve metrics too; a regular
    # container's name wins a clash.
    for section in ("initContainers", "containers"):
        containers = spec.get(section)
        if not isinstance(containers, list):
            continue
        for container in containers:
            if not isinstance(container, dict) or not isinstance(container.get("ports"), list):
                continue
            for port in container["ports"]:
                if not isinstance(port, dict):
                    continue
                name, number = port.get("name"), port.get("containerPort")
                if (
                    isinstance(name, str)
                    and name
                    and isinstance(number, int)
                    and not isinstance(number, bool)
                    and (name in ports or len(ports) < MAX_PORTS)
                ):
                    ports[sys.intern(name[:MAX_LABEL_VALUE])] = number  # "http", "metrics"
    return MappingProxyType(ports)


def _timestamp(value: object) -> float | None:
    """RFC 3339 (as the API server writes it) to unix seconds; None when absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def pod_meta(obj: Mapping[str, Any], label_keys: frozenset[str]) -> PodMeta:
    """What the exporter keeps of one pod object; raises ValueError when it is malformed."""
    metadata = _mapping(obj.get("metadata"), "metadata")
    spec = _mapping(obj.get("spec"), "spec")
    status = _mapping(obj.get("status"), "status")
    return PodMeta(
        uid=_required_str(metadata, "uid"),
        namespace=sys.intern(_required_str(metadata, "namespace")),
        name=_required_str(metadata, "name"),
        labels=_labels(metadata, label_keys),
        annotations=_annotations(metadata),
        container_ports=_container_ports(spec),
        phase=sys.intern(_optional_str(status, "phase")[:MAX_LABEL_VALUE]),
        pod_ip=_optional_str(status, "podIP")[:64],
        start_time=_timestamp(status.get("startTime")),
    )


def namespace_meta(obj: Mapping[str, Any], label_keys: frozenset[str]) -> NamespaceMeta:
    """What the exporter keeps of one namespace object; raises ValueError when malformed."""
    metadata = _mapping(obj.get("metadata"), "metadata")
    return NamespaceMeta(
        name=sys.intern(_required_str(metadata, "name")),
        labels=_labels(metadata, label_keys),
    )


def _pod_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = _mapping(obj.get("metadata"), "metadata")
    return (_required_str(metadata, "namespace"), _required_str(metadata, "name"))


def _namespace_key(obj: Mapping[str, Any]) -> str:
    return _required_str(_mapping(obj.get("metadata"), "metadata"), "name")


# -- one watched resource ----------------------------------------------------------------------


@dataclass(slots=True)
class _Resource(Generic[K, V]):
    """One LIST+WATCH loop's target and its state."""

    name: str  # "pods", "namespaces": used in logs and requests
    path: str
    params: Mapping[str, str]
    key: Callable[[Mapping[str, Any]], K]
    convert: Callable[[Mapping[str, Any]], tuple[K, V]]
    store: dict[K, V] = field(default_factory=dict)
    peak: int = 0  # the store's largest size since it was last rebuilt
    resource_version: str = ""
    synced: bool = False
    failure: str | None = None  # the kind of the last attempt's failure; None when it worked

    def replace(self, items: dict[K, V]) -> bool:
        """Swaps in a fresh store (a re-list); True when its contents changed."""
        changed = items != self.store
        self.store, self.peak = items, len(items)
        return changed

    def put(self, key: K, value: V) -> bool:
        if self.store.get(key) == value:
            return False
        self.store[key] = value
        self.peak = max(self.peak, len(self.store))
        return True

    def remove(self, key: K) -> bool:
        if self.store.pop(key, None) is None:
            return False
        # A dict never gives back its table: after a burst of pods is gone, copy it.
        if not self.store:
            self.store, self.peak = {}, 0
        elif self.peak >= 64 and len(self.store) * 4 < self.peak:
            self.store = dict(self.store)
            self.peak = len(self.store)
        return True


class _Token:
    """The bearer token file, read again whenever it changes (bound tokens rotate)."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._header: dict[str, str] = {}

    def headers(self) -> dict[str, str]:
        if self._path is None:
            return {}
        try:
            st = os.stat(self._path)  # follows the kubelet's ..data symlink swap
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                with open(self._path, encoding="utf-8") as handle:
                    token = handle.read().strip()
                self._header = {"Authorization": f"Bearer {token}"} if token else {}
                self._stamp = stamp
        except OSError:
            self._stamp, self._header = None, {}  # the server answers 401; logged there
        return dict(self._header)


async def _lines(stream: aiohttp.StreamReader, limit: int) -> AsyncIterator[bytes | None]:
    """The lines of a streamed body; None stands for a line over `limit` (skipped)."""
    buffer = bytearray()
    skipping = False
    async for chunk in stream.iter_any():
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not skipping:
                    buffer += chunk[start:]
                    if len(buffer) > limit:
                        buffer.clear()
                        skipping = True
                        yield None
                break
            if skipping:
                skipping = False
            else:
                buffer += chunk[start:end]
                yield bytes(buffer)
                buffer.clear()
            start = end + 1
    if buffer and not skipping:
        yield bytes(buffer)


_STARTS: Final = frozenset({"start_map", "start_array"})
_ENDS: Final = frozenset({"end_map", "end_array"})
_LIST_FIELDS: Final = {"items": ("start_array", "an array"), "metadata": ("start_map", "an object")}
_FAST_BACKEND: Final = "yajl2_c"  # what ijson's wheels ship; without it ijson picks another


class _ListDecoder:
    """A LIST answer, `{"metadata": {"resourceVersion": ...}, "items": [...]}`, decoded
    as its bytes arrive.

    `feed()` takes the next bytes and returns the items they completed, each a plain
    decoded JSON value; `close()` ends the document and returns the list's
    resourceVersion. Only the item being built and one chunk's parse events exist at a
    time, never the whole list. Raises `ijson.JSONError` for what is not JSON and
    `_MalformedError` for JSON that is not a list answer (not an object, `metadata`
    not an object, `items` not an array, no resourceVersion). Everything else in the
    answer is skipped.
    """

    def __init__(self, backend: Any = ijson) -> None:  # an ijson backend module, or ijson
        self._events: list[tuple[str, Any]] = ijson.sendable_list()
        self._parser = backend.basic_parse_coro(self._events, use_float=True)
        # The containers around the current value, outside any item: "list" (the
        # answer), "metadata" (its metadata), "items" (its items) or "" (skipped).
        self._outer: list[str] = []
        self._key = ""  # the key of the next value in the innermost outer object
        self._item: list[Any] = []  # the containers of the item being built, outermost first
        self._item_key = ""  # the key of the next value in the item's innermost object
        self._resource_version: str | None = None

    def feed(self, chunk: bytes) -> list[Any]:
        self._parser.send(chunk)
        return self._drain()

    def close(self) -> tuple[str, list[Any]]:
        """The list's resourceVersion and the items the last bytes completed."""
        self._parser.close()  # IncompleteJSONError when the document was cut short
        items = self._drain()
        if not self._resource_version:
            raise _MalformedError("missing resourceVersion")
        return self._resource_version, items

    def _drain(self) -> list[Any]:
        done: list[Any] = []
        item, outer = self._item, self._outer
        for event, value in self._events:
            if item:  # inside an item: build it
                if event == "map_key":
                    self._item_key = value
                    continue
                if event in _ENDS:
                    finished = item.pop()
                    if not item:
                        done.append(finished)
                    continue
                if event == "start_map":
                    value = {}
                elif event == "start_array":
                    value = []
                parent = item[-1]
                if type(parent) is list:
                    parent.append(value)
                else:
                    parent[self._item_key] = value
                if event in _STARTS:
                    item.append(value)
                continue
            if event == "map_key":
                self._key = value
                continue
            if event in _ENDS:
                outer.pop()
                continue
            role = self._role(outer[-1] if outer else None, event, value)
            if role == "item":
                if event in _STARTS:
                    item.append({} if event == "start_map" else [])
                else:
                    done.append(value)  # not an object: the caller counts it as malformed
            elif event in _STARTS:
                outer.append(role)
        del self._events[:]
        return done

    def _role(self, where: str | None, event: str, value: object) -> str:
        """What the value that `event` starts is, given the container it is in."""
        if where is None:
            if event != "start_map":
                raise _MalformedError("the list is not an object")
            return "list"
        if where == "items":
            return "item"
        if where == "list" and self._key in _LIST_FIELDS:
            start, what = _LIST_FIELDS[self._key]
            if event == start:
                return self._key
            if event != "null":  # null: as if absent
                raise _MalformedError(f"{self._key} is not {what}")
        elif where == "metadata" and self._key == "resourceVersion" and event == "string":
            self._resource_version = value if isinstance(value, str) else None
        return ""


# -- the watcher -------------------------------------------------------------------------------


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
        self._token = _Token(api.token_file)
        self._log = structlog.get_logger(component="exporter.sources.kubernetes.watcher")

        self.errors: Counter[str] = Counter()
        self.last_sync_timestamp: float | None = None
        self.events = 0

        def convert_pod(obj: Mapping[str, Any]) -> tuple[tuple[str, str], PodMeta]:
            pod = pod_meta(obj, pod_label_keys)
            return (pod.namespace, pod.name), pod

        def convert_namespace(obj: Mapping[str, Any]) -> tuple[str, NamespaceMeta]:
            namespace = namespace_meta(obj, namespace_label_keys)
            return namespace.name, namespace

        self._pods: _Resource[tuple[str, str], PodMeta] = _Resource(
            "pods",
            "/api/v1/pods",
            {"fieldSelector": f"spec.nodeName={node}"},
            _pod_key,
            convert_pod,
        )
        self._namespaces: _Resource[str, NamespaceMeta] = _Resource(
            "namespaces", "/api/v1/namespaces", {}, _namespace_key, convert_namespace
        )
        self._version = 0  # bumped on every change the view shows
        self._view: ClusterView | None = None
        self._view_version = -1
        self._stale_since: float | None = None

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
        if ijson.backend != _FAST_BACKEND:
            self._log.warning(
                "ijson's C backend is missing; decoding lists with a slower one",
                backend=ijson.backend,
            )
        context: ssl.SSLContext | bool = False
        if self._url.startswith("https:"):
            context = ssl.create_default_context(cafile=self._api.ca_file)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=4),
            headers={"Accept": "application/json", "User-Agent": "gpuwork-exporter"},
        )
        async with session:
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

    async def _loop(self, resource: _Resource[Any, Any], session: aiohttp.ClientSession) -> None:
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
            except _GoneError as gone:
                if list_version:
                    # A re-list asked for a version the server no longer has: read the latest.
                    self._count("gone")
                    self._log.info("resourceVersion expired; listing the latest",
                                   resource=resource.name, error=str(gone))  # fmt: skip
                    list_version = ""
                    continue
                self._failed(resource, "gone", str(gone))  # the latest is never gone; retry
            except _AttemptError as failure:
                self._failed(resource, failure.kind, str(failure))
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._failed(resource, "unreachable", f"{type(exc).__name__}: {exc}".strip())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not take the exporter down with it
                self._log.exception("Kubernetes watch failed", resource=resource.name)
                self._failed(resource, "internal", repr(exc))
            await asyncio.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, self._backoff_max)
            list_version = resource.resource_version or "0"

    async def _list(
        self, resource: _Resource[Any, Any], session: aiohttp.ClientSession, version: str
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
            await self._check(response, resource, "list")
            # Decoded while it arrives: each item is converted and dropped at once, so the
            # whole list never exists as Python objects (see the module docstring).
            decoder, received = _ListDecoder(), 0
            fresh: dict[Any, Any] = {}
            try:
                async for chunk in response.content.iter_chunked(LIST_CHUNK_BYTES):
                    received += len(chunk)
                    if received > MAX_LIST_BYTES:
                        raise _AttemptError(
                            "decode", f"the {resource.name} list is over {MAX_LIST_BYTES} bytes"
                        )
                    self._keep(resource, decoder.feed(chunk), fresh)
                list_version, items = decoder.close()
            except (ijson.JSONError, ValueError) as exc:
                error = " ".join(str(exc).split())[:300]  # yajl's are several lines
                raise _AttemptError(
                    "decode", f"cannot decode the {resource.name} list: {error}"
                ) from exc
        self._keep(resource, items, fresh)
        if resource.replace(fresh):
            self._version += 1
        resource.resource_version = list_version
        self.last_sync_timestamp = self._wall_clock()
        if not resource.synced:
            resource.synced = True
            self._version += 1
            self._log.debug("listed", resource=resource.name, items=len(fresh))

    def _keep(self, resource: _Resource[Any, Any], items: list[Any], into: dict[Any, Any]) -> None:
        """Converts listed items into `into`; a malformed one is counted and skipped."""
        for item in items:
            try:
                key, value = resource.convert(_mapping(item, "item"))
            except ValueError as exc:
                self._decode_error(resource, exc)
                continue
            into[key] = value

    async def _watch(self, resource: _Resource[Any, Any], session: aiohttp.ClientSession) -> bool:
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
                await self._check(response, resource, "watch")
                async for line in _lines(response.content, MAX_EVENT_BYTES):
                    if line is None:
                        self._decode_error(resource, _MalformedError("event too large"))
                        continue
                    if self._on_line(resource, line):
                        return False
                    events += 1
        except _GoneError:
            self._count("gone")
            return False
        if events == 0 and time.monotonic() - started < 1.0:
            await asyncio.sleep(self._backoff_initial)  # a proxy that ends watches at once
        return True

    def _on_line(self, resource: _Resource[Any, Any], line: bytes) -> bool:
        """Applies one watch event; True when it says the resourceVersion is gone."""
        if not line.strip():
            return False
        try:
            event = _mapping(json.loads(line), "event")
            kind = event.get("type")
            obj = _mapping(event.get("object"), "object")
            if kind == "ERROR":
                return self._on_error_event(resource, obj)
            version = _required_str(_mapping(obj.get("metadata"), "metadata"), "resourceVersion")
            if kind in ("ADDED", "MODIFIED"):
                key, value = resource.convert(obj)
                changed = resource.put(key, value)
            elif kind == "DELETED":
                changed = resource.remove(resource.key(obj))
            elif kind == "BOOKMARK":
                changed = False
            else:
                raise _MalformedError(f"unknown event type {kind!r}")
        except ValueError as exc:
            self._decode_error(resource, exc)
            return False
        self.events += 1
        if changed:
            self._version += 1
        resource.resource_version = version
        self.last_sync_timestamp = self._wall_clock()
        return False

    def _on_error_event(self, resource: _Resource[Any, Any], status: Mapping[str, Any]) -> bool:
        code = status.get("code")
        if code == 410:
            self._count("gone")
            self._log.info(
                "watch expired; listing again",
                resource=resource.name,
                error=_optional_str(status, "message")[:500],
            )
            return True
        kind = f"http_{code}" if isinstance(code, int) else "decode"
        raise _AttemptError(kind, _optional_str(status, "message")[:500] or f"ERROR event {code}")

    async def _check(
        self, response: aiohttp.ClientResponse, resource: _Resource[Any, Any], verb: str
    ) -> None:
        if response.status == 200:
            return
        message = ""
        with contextlib.suppress(Exception):  # the body is only for the log
            raw = bytearray()
            while len(raw) < MAX_STATUS_BYTES and (chunk := await response.content.read(4096)):
                raw += chunk
            message = _optional_str(_mapping(json.loads(raw), "status"), "message")
        message = (message or response.reason or "").strip()[:500]
        if response.status == 410:
            raise _GoneError(message)
        if response.status == 403:
            kind = "forbidden"
        elif response.status == 401:
            kind = "unauthorized"
        else:
            kind = f"http_{response.status}"
        raise _AttemptError(kind, f"cannot {verb} {resource.name}: {message}")

    # -- bookkeeping

    def _count(self, kind: str) -> None:
        self.errors[kind] += 1

    def _decode_error(self, resource: _Resource[Any, Any], exc: Exception) -> None:
        self._count("decode")
        if self.errors["decode"] <= 10 or self.errors["decode"] % 1000 == 0:
            self._log.warning(
                "skipped a malformed Kubernetes object",
                resource=resource.name,
                error=str(exc)[:200],
                decode_errors=self.errors["decode"],
            )

    def _failed(self, resource: _Resource[Any, Any], kind: str, message: str) -> None:
        self._count(kind)
        was_stale, previous = self.stale, resource.failure
        resource.failure = kind
        if kind != previous:
            if kind == "forbidden":
                self._log.error(
                    f"cannot watch {resource.name}: forbidden; {FORBIDDEN_HINT}",
                    resource=resource.name,
                    error=message,
                )
            elif kind == "unauthorized":
                self._log.error(
                    "Kubernetes API rejected the exporter's credentials (401 Unauthorized); "
                    "check the service-account token",
                    resource=resource.name,
                    token_file=self._api.token_file,
                    error=message,
                )
            elif previous is not None:
                self._log.debug(
                    "Kubernetes API still failing",
                    resource=resource.name,
                    reason=kind,
                    error=message,
                )
        if not was_stale:
            self._version += 1
            self._stale_since = self._wall_clock()
            self._log.warning(
                "Kubernetes API unreachable; keeping the last known pods"
                if kind == "unreachable"
                else "Kubernetes API failing; keeping the last known pods",
                resource=resource.name,
                reason=kind,
                error=message,
                pods=len(self._pods.store),
            )

    def _succeeded(self, resource: _Resource[Any, Any]) -> None:
        if resource.failure is None:
            return
        resource.failure = None
        if not self.stale:
            self._version += 1
            down = None
            if self._stale_since is not None:
                down = round(self._wall_clock() - self._stale_since, 3)
            self._stale_since = None
            self._log.info(
                "Kubernetes API reachable again; pods re-listed",
                pods=len(self._pods.store),
                namespaces=len(self._namespaces.store),
                stale_seconds=down,
            )
