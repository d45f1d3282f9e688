"""A real Kubernetes control plane on loopback for the watch and RBAC tests.

`KubeCluster.start()` runs Debian's etcd and two kube-apiserver v1.20 processes on the
same etcd, as an HA control plane has them:

- `primary`: the one the exporter talks to in most tests, with the watch cache on
  (as in production). Tests stop, start and restart it on its port.
- `uncached`: `--watch-cache=false`, so watches are served straight from etcd and a
  watch from a compacted resourceVersion really answers 410 Gone. Tests also write
  through it while the primary is down.

Authentication is a static token file: an admin token (group `system:masters`) and
a token for the exporter's service-account user. Authorization is RBAC only, so the
exporter's token can do exactly what `deploy/rbac.yaml` grants. No controller manager
and no scheduler run: pods are created with `spec.nodeName` set, deleted with a zero
grace period, and namespaces are finalized by hand.

`KubeAdmin` is a small async REST client with the admin token for the tests' writes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
RBAC_YAML = ROOT / "deploy" / "rbac.yaml"
SCRIPT = ROOT / "scripts" / "kube-apiserver.sh"
ETCD = "/usr/bin/etcd"
EXPORTER_USER = "system:serviceaccount:gpuwork:gpuwork-exporter"
EXPORTER_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:gpuwork")
START_TIMEOUT = 60.0


class ClusterUnavailableError(RuntimeError):
    """A program the cluster needs is missing."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_apiserver() -> str:
    """The kube-apiserver binary: `$GPUWORK_KUBE_APISERVER`, else what the build script prints."""
    env = os.environ.get("GPUWORK_KUBE_APISERVER")
    if env:
        if not os.access(env, os.X_OK):
            raise ClusterUnavailableError(f"GPUWORK_KUBE_APISERVER={env} is not an executable")
        return env
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, check=False, timeout=1800
    )
    path = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not os.access(path, os.X_OK):
        raise ClusterUnavailableError(
            f"{SCRIPT.name} could not provide kube-apiserver (rc {done.returncode}): "
            f"{done.stderr[-2000:]}"
        )
    return path


def _wait_until(predicate: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s\n{tail}")


def _stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (at once when `grace` is 0)."""
    if proc is None or proc.poll() is not None:
        return
    if grace > 0:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait(timeout=10)


@dataclass
class Etcd:
    workdir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self) -> None:
        if not os.access(ETCD, os.X_OK):
            raise ClusterUnavailableError(f"{ETCD} is missing (Debian package etcd-server)")
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = self.workdir / "etcd.log"
        self.proc = subprocess.Popen(
            [
                ETCD,
                "--name=gpuwork-test",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=gpuwork-test={peer}",
                "--initial-cluster-state=new",
                "--log-level=warn",
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_until(self._healthy, START_TIMEOUT, "etcd", log)

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {self.proc.returncode}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                return bool(json.load(resp).get("health") == "true")
        except (OSError, ValueError):
            return False

    def stop(self) -> None:
        _stop(self.proc)

    # etcd's JSON gateway (keys and values travel base64-encoded)
    def _call(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            result: dict[str, Any] = json.load(resp)
            return result

    def revision(self) -> int:
        answer = self._call("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
        return int(answer["header"]["revision"])

    def compact(self, revision: int | None = None) -> int:
        """Compacts etcd's history up to `revision` (default: now); returns it."""
        rev = self.revision() if revision is None else revision
        self._call("/v3/kv/compaction", {"revision": rev, "physical": True})
        return rev


@dataclass
class ApiServer:
    """One kube-apiserver process; `stop()`/`start()` keep its port, certificate and flags."""

    name: str
    binary: str
    workdir: Path
    etcd_url: str
    extra_args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    admin_token: str = ""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def cert_dir(self) -> Path:
        return self.workdir / f"{self.name}-certs"

    @property
    def ca_file(self) -> str:
        """The self-signed serving certificate (with its CA) that the clients trust."""
        return str(self.cert_dir / "apiserver.crt")

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        self.cert_dir.mkdir(exist_ok=True)
        work = self.workdir
        args = [
            self.binary,
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            "--insecure-port=0",
            f"--cert-dir={self.cert_dir}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            f"--token-auth-file={work / 'tokens.csv'}",
            f"--service-account-key-file={work / 'sa.key'}",
            f"--service-account-signing-key-file={work / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            # No controller manager runs: the ServiceAccount admission plugin would wait
            # for default service accounts that nobody creates.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
            "--logtostderr=true",
            "--v=0",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            args, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self) -> None:
        _wait_until(self._ready, START_TIMEOUT, f"kube-apiserver {self.name}", self.log)

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"kube-apiserver exited with {self.proc.returncode}\n{tail}")
        if not Path(self.ca_file).exists():
            return False
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
            request = urllib.request.Request(
                f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
            )
            with urllib.request.urlopen(request, timeout=2, context=context) as resp:
                return bool(resp.status == 200)
        except (OSError, ssl.SSLError, urllib.error.URLError):
            return False

    def stop(self, grace: float = 3.0) -> None:
        """Stops the server: SIGTERM, and SIGKILL after `grace` seconds (0: a crash).

        A kube-apiserver asked to stop lingers while watches are open; 3 s is enough for
        the watchers to notice and short enough for the tests.
        """
        _stop(self.proc, grace)
        self.proc = None

    def restart(self, grace: float = 3.0) -> None:
        self.stop(grace)
        self.start()


class KubeCluster:
    """etcd and two kube-apiservers on loopback in a temporary directory."""

    def __init__(self, binary: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="gpuwork-kube-"))
        self.admin_token = secrets.token_hex(16)
        self.exporter_token = secrets.token_hex(16)
        self.etcd = Etcd(self.workdir)
        self.primary = ApiServer("primary", binary, self.workdir, self.etcd.url)
        self.uncached = ApiServer(
            "uncached", binary, self.workdir, self.etcd.url, extra_args=["--watch-cache=false"]
        )
        for server in (self.primary, self.uncached):
            server.admin_token = self.admin_token

    @classmethod
    def start(cls) -> KubeCluster:
        cluster = cls(find_apiserver())
        try:
            cluster._start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start(self) -> None:
        if shutil.which("openssl") is None:
            raise ClusterUnavailableError("openssl is missing (Debian package openssl)")
        subprocess.run(
            ["openssl", "genrsa", "-out", str(self.workdir / "sa.key"), "2048"],
            check=True,
            capture_output=True,
        )
        groups = ",".join(EXPORTER_GROUPS)
        (self.workdir / "tokens.csv").write_text(
            f'{self.admin_token},gpuwork-test-admin,admin,"system:masters"\n'
            f'{self.exporter_token},{EXPORTER_USER},exporter-uid,"{groups}"\n'
        )
        self.etcd.start()
        self.primary.spawn()
        self.uncached.spawn()
        self.primary.wait_ready()
        self.uncached.wait_ready()

    @property
    def url(self) -> str:
        return self.primary.url

    @property
    def ca_file(self) -> str:
        return self.primary.ca_file

    def restart_apiserver(self, grace: float = 3.0) -> None:
        """Restarts the primary API server on the same port with the same certificate."""
        self.primary.restart(grace)

    def write_token(self, name: str, token: str) -> str:
        """Writes a token file (as the kubelet projects one) and returns its path."""
        path = self.workdir / f"{name}.token"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(token)
        tmp.replace(path)
        return str(path)

    def stop(self) -> None:
        for server in (self.uncached, self.primary):
            with contextlib.suppress(Exception):
                server.stop()
        with contextlib.suppress(Exception):
            self.etcd.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# -- admin REST helper ------------------------------------------------------------------------


class KubeError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


_COLLECTIONS = {
    ("v1", "Namespace"): "/api/v1/namespaces",
    ("v1", "ServiceAccount"): "/api/v1/namespaces/{namespace}/serviceaccounts",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    ),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
    ),
}


def pod_body(
    namespace: str,
    name: str,
    node: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    ports: Iterable[tuple[str | None, int]] = (),
) -> dict[str, Any]:
    container_ports = [
        {"containerPort": port, **({"name": port_name} if port_name else {})}
        for port_name, port in ports
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "engine:test", "ports": container_ports}],
        },
    }


class KubeAdmin:
    """Async admin client (token in `system:masters`); use as `async with KubeAdmin(...)`."""

    def __init__(self, url: str, ca_file: str, token: str) -> None:
        self.url = url
        self._ssl = ssl.create_default_context(cafile=ca_file)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeAdmin:
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=64),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        assert self._session is not None, "use `async with KubeAdmin(...)`"
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self._session.request(
            method, self.url + path, data=data, headers=headers, params=params
        ) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise KubeError(resp.status, text)
            result: dict[str, Any] = json.loads(text) if text else {}
            return result

    # namespaces
    async def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        if labels:
            body["metadata"] = {"name": name, "labels": dict(labels)}
        await self.request("POST", "/api/v1/namespaces", body)

    async def ensure_namespace(self, name: str) -> None:
        try:
            await self.create_namespace(name)
        except KubeError as err:
            if err.status != 409:
                raise

    async def patch_namespace_labels(self, name: str, labels: Mapping[str, str | None]) -> None:
        await self.request(
            "PATCH",
            f"/api/v1/namespaces/{name}",
            {"metadata": {"labels": dict(labels)}},
            content_type="application/merge-patch+json",
        )

    async def delete_namespace(self, name: str) -> None:
        """Deletes a namespace and finalizes it at once (no namespace controller runs)."""
        current = await self.request("DELETE", f"/api/v1/namespaces/{name}")
        if current.get("kind") == "Namespace":
            current["spec"] = {"finalizers": []}
            with contextlib.suppress(KubeError):  # already gone
                await self.request("PUT", f"/api/v1/namespaces/{name}/finalize", current)

    # pods
    async def create_pod(
        self,
        namespace: str,
        name: str,
        node: str,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        ports: Iterable[tuple[str | None, int]] = (),
    ) -> dict[str, Any]:
        body = pod_body(namespace, name, node, labels=labels, annotations=annotations, ports=ports)
        return await self.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)

    async def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        await self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            patch,
            content_type="application/merge-patch+json",
        )

    async def patch_pod_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Sets status fields as the kubelet would (phase, podIP, startTime)."""
        await self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": dict(status)},
            content_type="application/merge-patch+json",
        )

    async def delete_pod(self, namespace: str, name: str) -> None:
        # A bound pod waits for its kubelet unless the grace period is zero.
        await self.request(
            "DELETE",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            params={"gracePeriodSeconds": "0"},
        )

    # manifests
    async def apply(self, path: Path = RBAC_YAML) -> None:
        """Creates or replaces every object of a manifest file (a tiny `kubectl apply`)."""
        text = await asyncio.to_thread(path.read_text)
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            namespace = doc["metadata"].get("namespace", "")
            collection = _COLLECTIONS[(doc["apiVersion"], doc["kind"])].format(namespace=namespace)
            if namespace:
                await self.ensure_namespace(namespace)
            try:
                await self.request("POST", collection, doc)
            except KubeError as err:
                if err.status != 409:
                    raise
                item = f"{collection}/{doc['metadata']['name']}"
                current = await self.request("GET", item)
                doc = {**doc, "metadata": {**doc["metadata"], **_rv(current)}}
                await self.request("PUT", item, doc)

    async def delete_manifest_object(self, api_version: str, kind: str, name: str) -> None:
        """Deletes one cluster-scoped object of a manifest; absent is fine."""
        collection = _COLLECTIONS[(api_version, kind)]
        try:
            await self.request("DELETE", f"{collection}/{name}")
        except KubeError as err:
            if err.status != 404:
                raise


def _rv(obj: Mapping[str, Any]) -> dict[str, str]:
    return {"resourceVersion": str(obj["metadata"]["resourceVersion"])}
