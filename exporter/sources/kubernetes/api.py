"""Where the API server is, how to authenticate to it, and what its refusals mean.

`KubeApi` names the server (in a pod: `in_cluster_api`); `BearerToken` supplies the
Authorization header from a token file that the kubelet rotates; `open_session` opens
the HTTP session with the server's CA; `check` turns an answer that is not 200 into the
error the watcher acts on (410: list again; anything else: back off, counted by kind).
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp

from exporter.errors import ErrorKind, http_status_kind
from exporter.sources.kubernetes.errors import AttemptError, GoneError
from exporter.sources.kubernetes.objects import as_object, optional_str

SERVICE_ACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_STATUS_BYTES: Final = 64 << 10  # the body of an error answer, for the log


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


class BearerToken:
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


def open_session(api: KubeApi) -> aiohttp.ClientSession:
    """An HTTP session for the API server; call it from a running event loop."""
    context: ssl.SSLContext | bool = False
    if api.url.startswith("https:"):
        context = ssl.create_default_context(cafile=api.ca_file)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=4),
        headers={"Accept": "application/json", "User-Agent": "gpuwork-exporter"},
    )


async def check(response: aiohttp.ClientResponse, verb: str, resource: str) -> None:
    """Returns on 200; raises `GoneError` on 410 and `AttemptError` on anything else."""
    if response.status == 200:
        return
    message = ""
    with contextlib.suppress(Exception):  # the body is only for the log
        raw = bytearray()
        while len(raw) < MAX_STATUS_BYTES and (chunk := await response.content.read(4096)):
            raw += chunk
        message = optional_str(as_object(json.loads(raw), "status"), "message")
    message = (message or response.reason or "").strip()[:500]
    if response.status == 410:
        raise GoneError(message)
    if response.status == 403:
        kind: str = ErrorKind.FORBIDDEN
    elif response.status == 401:
        kind = ErrorKind.UNAUTHORIZED
    else:
        kind = http_status_kind(response.status)
    raise AttemptError(kind, f"cannot {verb} {resource}: {message}")
