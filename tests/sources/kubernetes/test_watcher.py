"""The Kubernetes source against a real kube-apiserver v1.20 and etcd on loopback.

Nothing in the API is mocked: the watcher lists and watches a real API server, with the
exporter's own token and `deploy/rbac.yaml` applied (RBAC is the only authorizer). The
control plane starts once per session (see harness/kube_apiserver.py). Two tests do not need
it: `in_cluster_api`, and malformed input, which a real API server never sends, so a
tiny HTTP server on loopback plays a broken one there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import ijson
import pytest
import structlog
from aiohttp import web
from structlog.testing import LogCapture

import exporter.sources.kubernetes.watcher
from exporter.model import ClusterView
from exporter.sources.kubernetes.api import KubeApi, in_cluster_api
from exporter.sources.kubernetes.objects import MAX_ANNOTATIONS, pod_meta
from exporter.sources.kubernetes.stream import ListDecoder
from exporter.sources.kubernetes.watcher import ClusterWatcher
from harness.kube_apiserver import (
    RBAC_YAML,
    ClusterUnavailableError,
    KubeAdmin,
    KubeCluster,
    KubeError,
)

WAIT = 15.0  # bound on every wait below; never reached when the code is right
POD_LABELS = frozenset({"team", "app.kubernetes.io/name"})
NAMESPACE_LABELS = frozenset({"tenant"})
START_TIME = "2024-05-01T12:00:00Z"
START_UNIX = 1714564800.0


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeCluster]:
    try:
        cluster = KubeCluster.start()
    except ClusterUnavailableError as err:
        if os.environ.get("CI"):
            pytest.fail(f"the Kubernetes test cluster is unavailable in CI: {err}")
        pytest.skip(f"no kube-apiserver/etcd here (`make kube-apiserver`): {err}")
    try:
        asyncio.run(_apply_rbac(cluster))
        yield cluster
    finally:
        cluster.stop()


async def _apply_rbac(cluster: KubeCluster) -> None:
    async with KubeAdmin(cluster.url, cluster.ca_file, cluster.admin_token) as admin:
        await admin.apply(RBAC_YAML)


@pytest.fixture
async def admin(kube: KubeCluster) -> AsyncIterator[KubeAdmin]:
    async with KubeAdmin(kube.url, kube.ca_file, kube.admin_token) as client:
        yield client


@pytest.fixture
def exporter_api(kube: KubeCluster) -> KubeApi:
    """The primary API server as the exporter sees it: its own token, the server's CA."""
    token = kube.write_token(f"exporter-{uuid.uuid4().hex[:6]}", kube.exporter_token)
    return KubeApi(kube.url, token_file=token, ca_file=kube.ca_file)


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every structlog event, whatever another test configured (level, caching)."""
    saved = structlog.get_config()
    capture = LogCapture()
    structlog.configure(
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    try:
        yield capture
    finally:
        structlog.configure(**saved)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def watcher_for(api: KubeApi, node: str, **kwargs: Any) -> ClusterWatcher:
    options: dict[str, Any] = {
        "pod_label_keys": POD_LABELS,
        "namespace_label_keys": NAMESPACE_LABELS,
        "backoff_initial": 0.05,
        "backoff_max": 0.5,
    }
    options.update(kwargs)
    return ClusterWatcher(api, node, **options)


@contextlib.asynccontextmanager
async def running(watcher: ClusterWatcher) -> AsyncIterator[ClusterWatcher]:
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    try:
        yield watcher
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)  # raises whatever crashed the watcher


async def eventually(predicate: Callable[[], bool], what: str, within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def pod_names(view: ClusterView) -> set[tuple[str, str]]:
    return set(view.pods)


async def run_status(admin: KubeAdmin, namespace: str, name: str, ip: str) -> None:
    await admin.patch_pod_status(
        namespace,
        name,
        {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": START_TIME},
    )


# -- in_cluster_api (no cluster needed) --------------------------------------------------------


def test_in_cluster_api(tmp_path: Path) -> None:
    assert in_cluster_api({}) is None
    assert in_cluster_api({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}) is None

    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_api(env, str(tmp_path)) == KubeApi("https://10.96.0.1:443", None, None)

    (tmp_path / "token").write_text("t0k3n\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    api = in_cluster_api(env, str(tmp_path))
    assert api == KubeApi(
        "https://10.96.0.1:443", str(tmp_path / "token"), str(tmp_path / "ca.crt")
    )

    v6 = {"KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert in_cluster_api(v6, str(tmp_path / "absent")) == KubeApi("https://[fd00:10:96::1]:6443")
    with pytest.raises(ValueError, match="KUBERNETES_SERVICE_PORT"):
        in_cluster_api({**env, "KUBERNETES_SERVICE_PORT": "https"})


# -- against the real API server ---------------------------------------------------------------


@pytest.mark.integration
async def test_initial_sync_keeps_only_this_nodes_pods(
    admin: KubeAdmin, exporter_api: KubeApi
) -> None:
    node, other = unique("node"), unique("node")
    ns = unique("team")
    await admin.create_namespace(ns, {"tenant": "acme", "unrelated": "x"})
    await admin.create_pod(ns, "here-1", node, labels={"team": "ml"})
    await admin.create_pod(ns, "here-2", node)
    await admin.create_pod(ns, "elsewhere", other)
    await run_status(admin, ns, "here-1", "10.1.2.3")

    watcher = watcher_for(exporter_api, node)
    assert watcher.view().synced is False
    async with running(watcher):
        await eventually(lambda: watcher.view().synced, "the first lists")
        view = watcher.view()
        assert pod_names(view) == {(ns, "here-1"), (ns, "here-2")}
        assert view.stale is False
        pod = view.pods[(ns, "here-1")]
        assert (pod.namespace, pod.name, pod.phase, pod.pod_ip) == (
            ns,
            "here-1",
            "Running",
            "10.1.2.3",
        )
        assert pod.start_time == START_UNIX
        assert pod.uid and dict(pod.labels) == {"team": "ml"}
        assert view.pods[(ns, "here-2")].phase == "Pending"
        assert view.pods[(ns, "here-2")].start_time is None
        assert dict(view.namespaces[ns].labels) == {"tenant": "acme"}
        assert "default" in view.namespaces and "kube-system" in view.namespaces
        assert watcher.last_sync_timestamp is not None
        assert not watcher.errors


@pytest.mark.integration
async def test_labels_annotations_and_ports_are_filtered_and_capped(
    admin: KubeAdmin, exporter_api: KubeApi
) -> None:
    node, ns = unique("node"), unique("ns")
    await admin.create_namespace(ns)
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8000",
        "prometheus.io/path": "/" + "m" * 2000,  # the API server allows long annotations
        "example.com/secret-ish": "dropped",
        **{f"prometheus.io/zz-extra-{i:02}": "v" for i in range(MAX_ANNOTATIONS)},  # sort last
    }
    labels = {"team": "t" * 63, "app.kubernetes.io/name": "vllm", "pod-template-hash": "abc"}
    ports: list[tuple[str | None, int]] = [("metrics", 8000), ("http", 8080), (None, 9000)]
    await admin.create_pod(ns, "engine", node, labels=labels, annotations=annotations, ports=ports)

    watcher = watcher_for(exporter_api, node)
    async with running(watcher):
        await eventually(lambda: (ns, "engine") in watcher.view().pods, "the pod")
        pod = watcher.view().pods[(ns, "engine")]
    assert dict(pod.labels) == {"team": "t" * 63, "app.kubernetes.io/name": "vllm"}
    assert dict(pod.container_ports) == {"metrics": 8000, "http": 8080}
    assert len(pod.annotations) == MAX_ANNOTATIONS
    assert all(key.startswith("prometheus.io/") for key in pod.annotations)
    assert pod.annotations["prometheus.io/path"] == "/" + "m" * 252  # capped at 253
    assert pod.annotations["prometheus.io/port"] == "8000"
    assert isinstance(pod.labels, MappingProxyType)


@pytest.mark.integration
async def test_add_modify_and_delete_through_the_watch(
    admin: KubeAdmin, exporter_api: KubeApi
) -> None:
    node, ns = unique("node"), unique("ns")
    await admin.create_namespace(ns)
    watcher = watcher_for(exporter_api, node)
    async with running(watcher):
        await eventually(lambda: watcher.view().synced, "the first lists")
        assert watcher.view().pods == {}
        assert watcher.view() is watcher.view()  # nothing changed: no rebuild

        await admin.create_pod(ns, "p", node, labels={"team": "a"})
        await eventually(lambda: (ns, "p") in watcher.view().pods, "ADDED")
        assert watcher.view().pods[(ns, "p")].phase == "Pending"

        await run_status(admin, ns, "p", "10.9.8.7")
        await eventually(lambda: watcher.view().pods[(ns, "p")].pod_ip == "10.9.8.7", "status")
        assert watcher.view().pods[(ns, "p")].phase == "Running"

        await admin.patch_pod(ns, "p", {"metadata": {"labels": {"team": "b"}}})
        await eventually(lambda: watcher.view().pods[(ns, "p")].labels == {"team": "b"}, "label")

        # A change to something the exporter does not keep leaves the view as it is.
        before, events = watcher.view(), watcher.events
        await admin.patch_pod(ns, "p", {"metadata": {"labels": {"unkept": "1"}}})
        await eventually(lambda: watcher.events > events, "the MODIFIED event")
        assert watcher.view() is before
        with pytest.raises(TypeError):
            before.pods[(ns, "q")] = before.pods[(ns, "p")]  # type: ignore[index]

        await admin.delete_pod(ns, "p")
        await eventually(lambda: (ns, "p") not in watcher.view().pods, "DELETED")
    assert not watcher.errors


@pytest.mark.integration
async def test_namespace_label_changes_and_deletion(
    admin: KubeAdmin, exporter_api: KubeApi
) -> None:
    ns = unique("ns")
    watcher = watcher_for(exporter_api, unique("node"))
    async with running(watcher):
        await eventually(lambda: watcher.view().synced, "the first lists")
        await admin.create_namespace(ns, {"tenant": "a"})
        await eventually(lambda: ns in watcher.view().namespaces, "the new namespace")
        await admin.patch_namespace_labels(ns, {"tenant": "b"})
        await eventually(lambda: watcher.view().namespaces[ns].labels == {"tenant": "b"}, "b")
        await admin.patch_namespace_labels(ns, {"tenant": None})
        await eventually(lambda: watcher.view().namespaces[ns].labels == {}, "label removed")
        await admin.delete_namespace(ns)
        await eventually(lambda: ns not in watcher.view().namespaces, "namespace deleted")


@pytest.mark.integration
async def test_an_expired_resource_version_relists(kube: KubeCluster) -> None:
    """410 Gone for real: etcd compacts past the watcher's resourceVersion.

    The watcher talks to the API server without a watch cache, so each re-WATCH (every
    1-2 s here) goes to etcd, which answers the compacted version with 410.
    """
    server = kube.uncached
    token = kube.write_token(unique("exporter"), kube.exporter_token)
    api = KubeApi(server.url, token_file=token, ca_file=server.ca_file)
    node, ns = unique("node"), unique("ns")
    async with KubeAdmin(server.url, server.ca_file, kube.admin_token) as admin:
        await admin.create_namespace(ns)
        await admin.create_pod(ns, "old", node)
        watcher = watcher_for(api, node, watch_timeout=1.0)
        async with running(watcher):
            await eventually(lambda: watcher.view().synced, "the first lists")
            # Writes the watcher does not see (another node) move etcd on; then compact.
            # (Two writes: etcd keeps the compaction revision itself.)
            for name in ("elsewhere-1", "elsewhere-2"):
                await admin.create_pod(ns, name, unique("node"))
            await asyncio.to_thread(kube.etcd.compact)
            await eventually(lambda: watcher.errors["gone"] > 0, "410 Gone")
            await eventually(lambda: not watcher.view().stale, "the re-list")
            await admin.create_pod(ns, "new", node)
            await admin.delete_pod(ns, "old")
            await eventually(lambda: pod_names(watcher.view()) == {(ns, "new")}, "new, not old")
            assert watcher.view().stale is False
    assert set(watcher.errors) == {"gone"}


@pytest.mark.integration
async def test_api_server_restart(
    kube: KubeCluster, admin: KubeAdmin, exporter_api: KubeApi, logs: LogCapture
) -> None:
    node, ns = unique("node"), unique("ns")
    await admin.create_namespace(ns)
    for name in ("stays", "deleted-while-down"):
        await admin.create_pod(ns, name, node)
    watcher = watcher_for(exporter_api, node)
    async with running(watcher):
        await eventually(lambda: len(watcher.view().pods) == 2, "both pods")

        await asyncio.to_thread(kube.primary.stop, 0)  # a crash: SIGKILL
        await eventually(lambda: watcher.view().stale, "stale while the API server is down")
        assert pod_names(watcher.view()) == {(ns, "stays"), (ns, "deleted-while-down")}
        assert watcher.view().synced

        # Another API server of the same cluster changes things meanwhile.
        server = kube.uncached
        async with KubeAdmin(server.url, server.ca_file, kube.admin_token) as other:
            await other.delete_pod(ns, "deleted-while-down")
            await other.create_pod(ns, "created-while-down", node)
        await eventually(lambda: watcher.errors["unreachable"] >= 6, "a few retries")
        await asyncio.to_thread(kube.primary.start)

        await eventually(lambda: not watcher.view().stale, "recovery")
        assert pod_names(watcher.view()) == {(ns, "stays"), (ns, "created-while-down")}
    # One warning and one info line for the outage, however many retries it took. (A
    # starting API server may answer 403 until its RBAC cache is filled: logged once.)
    assert all(e["component"] == "exporter.sources.kubernetes.watcher" for e in logs.entries)
    warnings = [e["event"] for e in logs.entries if e["log_level"] == "warning"]
    assert warnings == ["Kubernetes API unreachable; keeping the last known pods"]
    infos = [e["event"] for e in logs.entries if e["log_level"] == "info"]
    assert infos == ["Kubernetes API reachable again; pods re-listed"]
    errors = [e for e in logs.entries if e["log_level"] == "error"]
    assert all("forbidden" in e["event"] for e in errors) and len(errors) <= 2
    assert watcher.errors["unreachable"] >= 6


@pytest.mark.integration
async def test_rbac_forbidden_until_the_binding_exists(
    kube: KubeCluster, admin: KubeAdmin, logs: LogCapture
) -> None:
    node, ns = unique("node"), unique("ns")
    await admin.create_namespace(ns)
    await admin.create_pod(ns, "p", node)
    binding = ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "gpuwork-exporter")
    await admin.delete_manifest_object(*binding)
    # A rotated token is picked up: first a stale one, then the real one.
    token_name = unique("rotating")
    token = kube.write_token(token_name, "not-a-valid-token")
    api = KubeApi(kube.url, token_file=token, ca_file=kube.ca_file)
    watcher = watcher_for(api, node)
    try:
        async with running(watcher):
            await eventually(lambda: watcher.errors["unauthorized"] > 0, "401 Unauthorized")
            assert watcher.view().stale and not watcher.view().synced
            kube.write_token(token_name, kube.exporter_token)
            await eventually(lambda: watcher.errors["forbidden"] > 0, "403 Forbidden")
            assert watcher.view().stale and not watcher.view().synced
            await admin.apply(RBAC_YAML)
            await eventually(lambda: watcher.view().synced, "the lists, once allowed")
            await eventually(lambda: not watcher.view().stale, "not stale")
            assert pod_names(watcher.view()) == {(ns, "p")}
    finally:
        await admin.apply(RBAC_YAML)
    errors = [e for e in logs.entries if e["log_level"] == "error"]
    forbidden = [e["event"] for e in errors if "forbidden" in e["event"]]
    assert forbidden, errors
    assert all("get/list/watch on pods and namespaces" in event for event in forbidden)
    assert len(forbidden) <= 2  # once per resource, not once per retry


@pytest.mark.integration
async def test_the_exporter_role_is_read_only(kube: KubeCluster) -> None:
    async with KubeAdmin(kube.url, kube.ca_file, kube.exporter_token) as exporter:
        await exporter.request("GET", "/api/v1/namespaces")
        await exporter.request("GET", "/api/v1/pods", params={"fieldSelector": "spec.nodeName=x"})
        for method, path, body in [
            ("GET", "/api/v1/secrets", None),
            ("GET", "/api/v1/configmaps", None),
            ("POST", "/api/v1/namespaces", {"metadata": {"name": "nope"}}),
            ("DELETE", "/api/v1/namespaces/default/pods/x", None),
        ]:
            with pytest.raises(KubeError) as raised:
                await exporter.request(method, path, body)
            assert raised.value.status == 403, (method, path)


@pytest.mark.integration
async def test_churn_of_a_thousand_pods(admin: KubeAdmin, exporter_api: KubeApi) -> None:
    node, ns = unique("node"), unique("ns")
    await admin.create_namespace(ns)
    watcher = watcher_for(exporter_api, node)
    count = 1000
    gate = asyncio.Semaphore(48)

    async def each(action: Callable[[str], Any]) -> None:
        async def one(i: int) -> None:
            async with gate:
                await action(f"pod-{i:04}")

        await asyncio.gather(*(one(i) for i in range(count)))

    async with running(watcher):
        await eventually(lambda: watcher.view().synced, "the first lists")
        baseline = len(watcher.view().pods)
        empty_size = sys.getsizeof(watcher._pods.store)
        await each(lambda name: admin.create_pod(ns, name, node, labels={"team": "churn"}))
        await eventually(lambda: len(watcher.view().pods) == baseline + count, "1000 pods")
        await each(lambda name: admin.delete_pod(ns, name))
        await eventually(lambda: len(watcher.view().pods) == baseline, "none left")
        assert watcher.events >= 2 * count
        assert watcher._pods.store == {}
        assert sys.getsizeof(watcher._pods.store) <= empty_size  # the table was given back
        assert not watcher.errors and not watcher.view().stale


@pytest.mark.integration
async def test_a_large_list_is_decoded_in_small_reads(
    admin: KubeAdmin, exporter_api: KubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first LIST of 300 pods (~400 KB, gzip-compressed by the API server) read 100
    bytes at a time is the same as the one read in the usual chunks."""
    node, ns = unique("node"), unique("ns")
    await admin.create_namespace(ns)
    gate = asyncio.Semaphore(48)

    async def create(i: int) -> None:
        async with gate:
            await admin.create_pod(
                ns, f"pod-{i:03}", node, labels={"team": f"t{i}"}, ports=[("metrics", 9000 + i)]
            )

    await asyncio.gather(*(create(i) for i in range(300)))
    await run_status(admin, ns, "pod-150", "10.1.5.0")

    async def listed() -> ClusterView:
        watcher = watcher_for(exporter_api, node)
        async with running(watcher):
            await eventually(lambda: watcher.view().synced, "the first lists")
            view = watcher.view()
        assert not watcher.errors and watcher.events == 0  # all of it from the LIST
        return view

    usual = await listed()
    monkeypatch.setattr(exporter.sources.kubernetes.watcher, "LIST_CHUNK_BYTES", 100)
    small = await listed()
    assert len(small.pods) == 300
    assert small.pods == usual.pods and small.namespaces == usual.namespaces
    pod = small.pods[(ns, "pod-150")]
    assert (dict(pod.labels), dict(pod.container_ports)) == ({"team": "t150"}, {"metrics": 9150})
    assert (pod.phase, pod.pod_ip, pod.start_time) == ("Running", "10.1.5.0", START_UNIX)


# -- a broken server (a real one never sends these) --------------------------------------------


CLOSING = web.AppKey("closing", asyncio.Event)


@contextlib.asynccontextmanager
async def fake_api(
    pods: Callable[[web.Request], Any], namespaces: Callable[[web.Request], Any]
) -> AsyncIterator[KubeApi]:
    """An HTTP server on loopback with these handlers for pods and namespaces."""
    app = web.Application()
    app[CLOSING] = closing = asyncio.Event()
    app.router.add_get("/api/v1/pods", pods)
    app.router.add_get("/api/v1/namespaces", namespaces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield KubeApi(f"http://127.0.0.1:{runner.addresses[0][1]}")
    finally:
        closing.set()  # ends the watches still open
        await runner.cleanup()


def list_pod(i: int) -> dict[str, Any]:
    """A pod as a LIST answer has it, with what the exporter does not keep as well."""
    return {
        "metadata": {
            "uid": f"uid-{i}",
            "namespace": f"ns-{i % 3}",
            "name": f"pod-{i:04}",
            "resourceVersion": str(100 + i),
            "labels": {"team": f"t{i}", "unkept": "x" * 50},
            "annotations": {"prometheus.io/port": str(8000 + i), "other": "y" * 100},
            "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {"f:x": {}}}}],
        },
        "spec": {
            "containers": [{"name": "c", "ports": [{"name": "m", "containerPort": 9000 + i}]}],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "priority": 0.5,  # a float, and unicode in a skipped field: decoded the same
            "nodeSelector": {"zone": "\u00e9t\u00e9 \U0001f680"},
        },
        "status": {"phase": "Running", "podIP": f"10.0.{i // 250}.{i % 250}",
                   "startTime": START_TIME, "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


def list_answer(items: list[Any], version: str = "99") -> bytes:
    return json.dumps(
        {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": version},
         "items": items}, separators=(",", ":"),
    ).encode()  # fmt: skip


async def empty_watch(request: web.Request) -> web.StreamResponse:
    """An empty list, and a watch that stays open without events."""
    if request.query.get("watch") != "true":
        return web.Response(body=list_answer([]), content_type="application/json")
    response = web.StreamResponse()
    await response.prepare(request)
    await request.app[CLOSING].wait()
    return response


@pytest.mark.parametrize("backend", ["yajl2_c", "python"])
def test_list_decoder_hands_over_each_item_when_it_ends(backend: str) -> None:
    items = [list_pod(i) for i in range(40)]
    items[7] = 42  # an item that is not an object comes out as it is, for the caller to count
    items[8] = [{"nested": [1, [2]]}]
    body = list_answer(items, version="12345")
    ends, end = [], body.index(b'"items":[') + len(b'"items":[')
    for item in items:
        end += len(json.dumps(item, separators=(",", ":")))
        ends.append(end)  # where the item's text ends in the body
        end += 1  # the comma
    decoder = ListDecoder(ijson.get_backend(backend))
    got: list[Any] = []
    # Fed in 13-byte pieces: each item is handed over with the piece that ends it, none
    # before (a number, 42, only once the comma after it shows that it ended).
    for fed in range(13, len(body) + 13, 13):
        got += decoder.feed(body[fed - 13 : fed])
        complete = sum(end <= fed for end in ends)
        assert len(got) == complete or (len(got), items[len(got)]) == (complete - 1, 42)
    version, last = decoder.close()
    assert (version, got + last) == ("12345", items)
    assert got + last == json.loads(body)["items"]


@pytest.mark.parametrize("backend", ["yajl2_c", "python"])
@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"metadata": {"resourceVersion": "5"}, "items": [{"a": 1}', None),  # cut short
        (b'{"metadata": {"resourceVersion": "5"}, "items": []} []', None),  # a second document
        (b'{"metadata": {"resourceVersion": "5"}, "items": ["\xff"]}', None),  # not UTF-8
        (b"[]", "the list is not an object"),
        (b"null", "the list is not an object"),
        (b'{"metadata": {"resourceVersion": "5"}, "items": {"item": {}}}', "items is not an"),
        (b'{"metadata": [], "items": []}', "metadata is not an object"),
        (b'{"metadata": {"resourceVersion": 5}, "items": []}', "missing resourceVersion"),
        (b'{"metadata": {"resourceVersion": ""}, "items": []}', "missing resourceVersion"),
        (b'{"items": [], "kind": {"metadata": {"resourceVersion": "5"}}}', "missing resource"),
    ],
)
def test_list_decoder_rejects_what_is_not_a_list(
    backend: str, body: bytes, error: str | None
) -> None:
    """Not JSON: ijson's error (its message differs between backends); JSON that is not
    a list answer: ours."""
    decoder = ListDecoder(ijson.get_backend(backend))
    expected = pytest.raises(ijson.JSONError) if error is None else pytest.raises(ValueError)
    with expected as raised:
        decoder.feed(body)
        decoder.close()
    if error is not None:
        assert error in str(raised.value)


@pytest.mark.parametrize(
    "body",
    [
        b'{"metadata": {"resourceVersion": "5"}}',
        b'{"items": null, "metadata": {"continue": "", "resourceVersion": "5"}}',
        b'{"items": [], "metadata": {"resourceVersion": "5", "remainingItemCount": 0}}',
    ],
)
def test_list_decoder_accepts_what_a_list_may_lack(body: bytes) -> None:
    decoder = ListDecoder()
    assert decoder.feed(body) == []
    assert decoder.close() == ("5", [])


async def test_a_list_is_decoded_item_by_item_and_bad_items_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A LIST of 2,000 pods (~1.5 MB), read 4 KiB at a time; malformed items in the
    middle are counted and skipped, all the others kept."""
    monkeypatch.setattr(exporter.sources.kubernetes.watcher, "LIST_CHUNK_BYTES", 4096)
    items: list[Any] = [list_pod(i) for i in range(2000)]
    items[500] = "a string"
    del items[1000]["metadata"]["uid"]
    items[1500]["metadata"] = ["not", "an", "object"]
    body = list_answer(items)
    assert len(body) > 1 << 20

    async def pods(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            return await empty_watch(request)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for start in range(0, len(body), 10_000):  # the server's writes do not match our reads
            await response.write(body[start : start + 10_000])
        await response.write_eof()
        return response

    async with fake_api(pods, empty_watch) as api:
        watcher = watcher_for(api, "node")
        async with running(watcher):
            await eventually(lambda: watcher.view().synced, "the first lists")
            view = watcher.view()
    assert watcher.errors == {"decode": 3}
    assert len(view.pods) == 1997 and not view.stale
    assert ("ns-2", "pod-0500") not in view.pods and ("ns-1", "pod-1000") not in view.pods
    for i in (0, 499, 501, 999, 1001, 1499, 1501, 1999):
        pod = view.pods[(f"ns-{i % 3}", f"pod-{i:04}")]
        assert pod == pod_meta(items[i], POD_LABELS)
        assert dict(pod.labels) == {"team": f"t{i}"}
        assert dict(pod.container_ports) == {"m": 9000 + i}


@pytest.mark.parametrize(
    "bad",
    [
        list_answer([list_pod(i) for i in range(50)])[:-20],  # cut short
        b'{"metadata": {"resourceVersion": "5"}, "items": "none"}',
        list_answer([list_pod(i) for i in range(50)], version=""),
        b"<html>proxy error</html>",
        list_answer([list_pod(i) for i in range(200)]),  # over MAX_LIST_BYTES (made small)
    ],
    ids=["truncated", "items-not-a-list", "no-resource-version", "not-json", "too-large"],
)
async def test_a_malformed_list_fails_the_attempt(
    bad: bytes, monkeypatch: pytest.MonkeyPatch, logs: LogCapture
) -> None:
    """A bad document fails the LIST as a whole: nothing of it is kept, the watcher
    is stale and tries again, and a good answer then syncs it."""
    monkeypatch.setattr(exporter.sources.kubernetes.watcher, "MAX_LIST_BYTES", 64 << 10)
    monkeypatch.setattr(exporter.sources.kubernetes.watcher, "LIST_CHUNK_BYTES", 1000)
    answers = [bad, bad, list_answer([list_pod(i) for i in range(3)])]
    lists = 0

    async def pods(request: web.Request) -> web.StreamResponse:
        nonlocal lists
        if request.query.get("watch") == "true":
            return await empty_watch(request)
        body = answers[min(lists, len(answers) - 1)]
        lists += 1
        return web.Response(body=body, content_type="application/json")

    async with fake_api(pods, empty_watch) as api:
        watcher = watcher_for(api, "node")
        async with running(watcher):
            await eventually(lambda: watcher.errors["decode"] >= 1, "a failed list")
            assert watcher.view().stale and not watcher.view().synced
            assert watcher.view().pods == {}
            await eventually(lambda: watcher.view().synced, "the good list")
            assert not watcher.view().stale
            assert set(watcher.view().pods) == {(f"ns-{i}", f"pod-{i:04}") for i in range(3)}
    assert watcher.errors == {"decode": 2}  # one per failed attempt, however many items
    failed = [e for e in logs.entries if e["event"].startswith("Kubernetes API failing")]
    assert [e["reason"] for e in failed] == ["decode"]  # logged once
    assert "pods list" in failed[0]["error"]
    assert "\n" not in failed[0]["error"]


async def test_malformed_lines_and_objects_are_counted_and_skipped() -> None:
    good = {"metadata": {"uid": "u1", "namespace": "n", "name": "good", "resourceVersion": "5"}}
    missing = {"metadata": {"namespace": "n", "resourceVersion": "6"}}  # no name, no uid
    watch_lines = [
        b"this is not json",
        json.dumps({"type": "ADDED", "object": missing}).encode(),
        json.dumps({"type": "ADDED", "object": "a string"}).encode(),
        json.dumps({"type": "SURPRISE", "object": good}).encode(),
        json.dumps(
            {
                "type": "ADDED",
                "object": {
                    **good,
                    "metadata": {
                        **good["metadata"],
                        "name": "late",
                        "uid": "u2",
                        "resourceVersion": "7",
                    },
                },
            }
        ).encode(),
        b"[1, 2",
    ]
    served, closing = asyncio.Event(), asyncio.Event()

    async def pods(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            return web.json_response(
                {"metadata": {"resourceVersion": "4"}, "items": [good, missing, 42]}
            )
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"\n".join(watch_lines) + b"\n")
        served.set()
        await closing.wait()
        return response

    async def namespaces(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            return web.json_response({"metadata": {"resourceVersion": "4"}, "items": []})
        response = web.StreamResponse()
        await response.prepare(request)
        await closing.wait()
        return response

    app = web.Application()
    app.router.add_get("/api/v1/pods", pods)
    app.router.add_get("/api/v1/namespaces", namespaces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        watcher = watcher_for(KubeApi(f"http://127.0.0.1:{port}"), "node")
        async with running(watcher):
            await eventually(lambda: ("n", "late") in watcher.view().pods, "the good event")
            await served.wait()
            await eventually(lambda: watcher.errors["decode"] == 7, "every bad line counted")
            view = watcher.view()
            assert pod_names(view) == {("n", "good"), ("n", "late")}
            assert view.synced and not view.stale
            assert set(watcher.errors) == {"decode"}
    finally:
        closing.set()
        await runner.cleanup()
