"""Memory of the Kubernetes API watch with 1,000 pods on the node.

A real etcd and kube-apiserver run on loopback (`harness/kube_apiserver.py`). The
parent creates `PODS` pods bound to this benchmark's node (`spec.nodeName` set, as
a scheduler leaves them: labels, annotations, an init container and three
containers with named ports, owner references, a kubelet-like status) and
`OTHER_PODS` on another node, then starts a fresh child process
(`python -m bench.kube_memory --child`) that imports the exporter and runs a
`ClusterWatcher` with the exporter's own token (RBAC from deploy/rbac.yaml) until it
holds all the node's pods. Then the parent deletes the pods and creates them again
(churn) and the child follows. Last, the child starts tracemalloc and syncs two new
watchers, one on this node and one on a node without pods, to count the bytes each
holds once its connection is closed.

Without a kube-apiserver binary (`make kube-apiserver`) or etcd, the benchmark is
skipped and says why.
Run: `python -m bench.kube_memory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PODS = 1000
OTHER_PODS = 100
NAMESPACES = 20  # tenant namespaces the pods spread over
NODE = "gpu-node-0001"
OTHER_NODE = "gpu-node-0002"
EMPTY_NODE = "gpu-node-0003"  # no pods: what a watcher holds for namespaces alone
CONCURRENCY = 32  # writes in flight from the parent
PHASE_TIMEOUT = 180.0
MB = 1024 * 1024
START_TIME = "2024-05-01T12:00:00Z"
ROOT = Path(__file__).resolve().parent.parent
APPS = ("vllm-chat", "vllm-search", "triton-ranker", "trainer-llm", "embedder")


@dataclass
class KubeMemoryResult:
    skipped: str | None = None  # why nothing was measured
    pods: int = 0
    other_pods: int = 0
    namespaces: int = 0  # what the watcher holds: the tenant ones and the cluster's own
    list_bytes: int = 0  # the node's pod LIST answer, as JSON
    create_seconds: float = 0.0  # parent: creating and running the node's pods
    rss_before: int = 0  # child, after imports, before the watcher starts
    rss_synced: int = 0  # child, once the watcher holds every pod
    hwm_synced: int = 0  # VmHWM then: the peak so far, the LIST decode included
    sync_seconds: float = 0.0  # watcher start to every pod held
    rss_empty: int = 0  # after all the node's pods were deleted and seen to go
    rss_resynced: int = 0  # after they were created again and seen
    hwm_resynced: int = 0
    events: int = 0  # watch events the first watcher applied
    errors: dict[str, int] = field(default_factory=dict)
    held_bytes: int = 0  # tracemalloc: held by a synced watcher on the node (and its view)
    held_empty_bytes: int = 0  # the same for a node without pods

    @property
    def added_mb(self) -> float:
        return (self.rss_synced - self.rss_before) / MB

    @property
    def churn_growth_mb(self) -> float:
        return (self.rss_resynced - self.rss_synced) / MB

    @property
    def per_pod_bytes(self) -> float:
        return (self.held_bytes - self.held_empty_bytes) / self.pods if self.pods else 0.0


# -- the parent: the cluster and its pods -------------------------------------------------------


def apiserver_binary() -> tuple[str | None, str]:
    """The kube-apiserver binary (`$GPUWORK_KUBE_APISERVER`, else the one
    `scripts/kube-apiserver.sh` caches), or None and why. Never builds it: that takes
    many minutes and wants root."""
    env = os.environ.get("GPUWORK_KUBE_APISERVER")
    if env:
        if os.access(env, os.X_OK):
            return env, ""
        return None, f"GPUWORK_KUBE_APISERVER={env} is not an executable"
    cache = os.environ.get("GPUWORK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gpuwork"
    )
    binary = os.path.join(cache, "kube-apiserver")
    if os.access(binary, os.X_OK):
        return binary, ""
    return None, f"no kube-apiserver at {binary} (`make kube-apiserver` builds it)"


def _digest(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def pod_body(i: int, node: str, generation: int = 0) -> dict[str, Any]:
    """A GPU inference or training pod as a Deployment and Helm chart leave it."""
    app = APPS[i % len(APPS)]
    namespace = f"team-{i % NAMESPACES:02d}"
    template = _digest(app, namespace, generation)[:10]
    owner = f"{app}-{template}"
    ports = [
        ("server", [("http", 8000), ("grpc", 8001)]),
        ("log-shipper", [("fb-metrics", 2020)]),
        ("envoy", [("envoy-admin", 15000), ("envoy-prom", 15090)]),
    ]
    containers = [
        {
            "name": name,
            "image": image,
            "ports": [{"name": p, "containerPort": n, "protocol": "TCP"} for p, n in named],
            "resources": resources,
            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
        }
        for (name, named), image, resources in zip(
            ports,
            ("vllm/vllm-openai:v0.6.3", "fluent/fluent-bit:3.0.4", "envoyproxy/envoy:v1.30.2"),
            (
                {"requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                 "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"}},
                {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            ),
            strict=True,
        )
    ]  # fmt: skip
    server = containers[0]
    server["args"] = ["--model", f"/models/{app}", "--port", "8000",
                      "--gpu-memory-utilization", "0.90", "--max-model-len", "8192"]  # fmt: skip
    server["env"] = [
        {"name": "HF_HOME", "value": "/models/hf"},
        {"name": "NCCL_DEBUG", "value": "WARN"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    server["readinessProbe"] = {"httpGet": {"path": "/health", "port": "http"},
                                "periodSeconds": 10}  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{owner}-{_digest(i, generation, node)[:5]}",
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/instance": f"{app}-{namespace}",
                "app.kubernetes.io/component": "training" if "train" in app else "inference",
                "app.kubernetes.io/part-of": "ml-platform",
                "app.kubernetes.io/managed-by": "Helm",
                "helm.sh/chart": f"{app}-1.4.2",
                "pod-template-hash": template,
                "team": namespace,
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "8000",
                "prometheus.io/path": "/metrics",
                "kubectl.kubernetes.io/default-container": "server",
                "kubectl.kubernetes.io/restartedAt": "2024-05-01T11:58:03Z",
                "checksum/config": _digest("config", app, namespace),
                "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": owner,
                    "uid": str(uuid.UUID(_digest("rs", owner)[:32])),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": node,
            "initContainers": [
                {
                    "name": "fetch-model",
                    "image": "registry.example.com/ml/fetcher:2.1.0",
                    "args": ["--to", "/models"],
                    "volumeMounts": [{"name": "models", "mountPath": "/models"}],
                }
            ],
            "containers": containers,
            "volumes": [
                {"name": "models", "emptyDir": {}},
                {"name": "config", "configMap": {"name": f"{app}-config"}},
            ],
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "terminationGracePeriodSeconds": 30,
        },
    }


def pod_status(i: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """What the kubelet writes once the pod runs."""
    ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255 or 1}"
    running = {"running": {"startedAt": START_TIME}}
    statuses = [
        {"name": c["name"], "image": c["image"], "imageID": f"docker.io/{c['image']}@sha256:"
         + _digest("image", c["image"]), "containerID": "containerd://" + _digest(i, c["name"]),
         "ready": True, "started": True, "restartCount": 0, "state": running}
        for c in body["spec"]["containers"]
    ]  # fmt: skip
    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": START_TIME}
        for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    return {"phase": "Running", "hostIP": "192.168.10.21", "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": START_TIME, "conditions": conditions,
            "containerStatuses": statuses}  # fmt: skip


async def _each(count: int, action: Callable[[int], Awaitable[object]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            await action(i)

    await asyncio.gather(*(one(i) for i in range(count)))


async def _create(admin: Any, count: int, node: str, generation: int) -> list[tuple[str, str]]:
    """Creates `count` running pods on `node`; returns (namespace, name) of each."""
    names: list[tuple[str, str]] = []

    async def one(i: int) -> None:
        body = pod_body(i, node, generation)
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        await admin.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)
        await admin.patch_pod_status(namespace, name, pod_status(i, body))
        names.append((namespace, name))

    await _each(count, one)
    return names


class _Child:
    """The child process: JSON lines from its stdout, commands to its stdin."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), PHASE_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(f"kube_memory child silent for {PHASE_TIMEOUT:.0f} s:\n"
                               f"{self._stderr_tail()}") from None  # fmt: skip
        if not line:
            await self.proc.wait()
            raise RuntimeError(
                f"kube_memory child exited with {self.proc.returncode}:\n{self._stderr_tail()}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _stderr_tail(self) -> str:
        return self.stderr.read_text(errors="replace")[-3000:]

    async def tell(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word.encode() + b"\n")
        await self.proc.stdin.drain()


async def _bench(cluster: Any, scratch: Path) -> KubeMemoryResult:
    from harness.kube_apiserver import RBAC_YAML, KubeAdmin

    result = KubeMemoryResult(pods=PODS, other_pods=OTHER_PODS)
    async with KubeAdmin(cluster.url, cluster.ca_file, cluster.admin_token) as admin:
        await admin.apply(RBAC_YAML)
        for n in range(NAMESPACES):
            await admin.create_namespace(f"team-{n:02d}", {"gpuwork.io/tenant": f"tenant-{n}"})
        started = time.perf_counter()
        names = await _create(admin, PODS, NODE, generation=0)
        result.create_seconds = time.perf_counter() - started
        await _create(admin, OTHER_PODS, OTHER_NODE, generation=0)
        listed = await admin.request("GET", "/api/v1/pods",
                                     params={"fieldSelector": f"spec.nodeName={NODE}"})  # fmt: skip
        result.list_bytes = len(json.dumps(listed, separators=(",", ":")))  # as the server sends

        config = {
            "url": cluster.url,
            "ca_file": cluster.ca_file,
            "token_file": cluster.write_token("exporter", cluster.exporter_token),
            "pods": PODS,
        }
        stderr = scratch / "child.stderr"
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.kube_memory", "--child", json.dumps(config),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
            )  # fmt: skip
        child = _Child(proc, stderr)
        try:
            synced = await child.read()
            result.rss_before, result.rss_synced = synced["rss_before"], synced["rss"]
            result.hwm_synced, result.sync_seconds = synced["hwm"], synced["seconds"]
            result.namespaces = synced["namespaces"]
            await _each(len(names), lambda i: admin.delete_pod(*names[i]))
            await child.tell("deleted")
            result.rss_empty = (await child.read())["rss"]
            await _create(admin, PODS, NODE, generation=1)
            await child.tell("created")
            resynced = await child.read()
            result.rss_resynced, result.hwm_resynced = resynced["rss"], resynced["hwm"]
            result.events, result.errors = resynced["events"], resynced["errors"]
            traced = await child.read()
            result.held_bytes, result.held_empty_bytes = traced["held"], traced["held_empty"]
            await asyncio.wait_for(proc.wait(), PHASE_TIMEOUT)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    return result


def _start(cluster: Any) -> None:
    """etcd and the primary API server only (the tests' second, uncached one is not
    needed here), with the tests' tokens and service-account key."""
    from harness.kube_apiserver import EXPORTER_GROUPS, EXPORTER_USER, ClusterUnavailableError

    if shutil.which("openssl") is None:
        raise ClusterUnavailableError("openssl is missing (Debian package openssl)")
    subprocess.run(["openssl", "genrsa", "-out", str(cluster.workdir / "sa.key"), "2048"],
                   check=True, capture_output=True)  # fmt: skip
    (cluster.workdir / "tokens.csv").write_text(
        f'{cluster.admin_token},gpuwork-bench-admin,admin,"system:masters"\n'
        f"{cluster.exporter_token},{EXPORTER_USER},exporter-uid,"
        f'"{",".join(EXPORTER_GROUPS)}"\n'
    )
    cluster.etcd.start()
    cluster.primary.start()


def run() -> KubeMemoryResult:
    binary, why = apiserver_binary()
    if binary is None:
        return KubeMemoryResult(skipped=why)
    from harness.kube_apiserver import ClusterUnavailableError, KubeCluster

    cluster = KubeCluster(binary)
    try:
        try:
            _start(cluster)
        except ClusterUnavailableError as error:
            return KubeMemoryResult(skipped=str(error))
        with tempfile.TemporaryDirectory(prefix="gpuwork-bench-") as scratch:
            return asyncio.run(_bench(cluster, Path(scratch)))
    finally:
        cluster.stop()


# -- the child: the exporter's imports and the watcher ------------------------------------------


def _status_bytes(key: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM) in bytes; 0 off Linux."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    """Sets VmHWM back to the current RSS (Linux; nothing elsewhere)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


async def _child(config: Mapping[str, Any]) -> None:
    import tracemalloc

    import exporter.cli  # noqa: F401 -- everything the exporter imports
    from bench._common import quiet_logs
    from exporter.join.tenancy import DEFAULT_TENANT_RULES, label_keys, parse_tenant_rules
    from exporter.sources.kubernetes.api import KubeApi
    from exporter.sources.kubernetes.watcher import ClusterWatcher

    quiet_logs()
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    api = KubeApi(config["url"], token_file=config["token_file"], ca_file=config["ca_file"])
    pod_keys, namespace_keys = label_keys(parse_tenant_rules(DEFAULT_TENANT_RULES))
    pods = int(config["pods"])

    def watcher(node: str) -> ClusterWatcher:
        return ClusterWatcher(api, node, pod_label_keys=pod_keys,
                              namespace_label_keys=namespace_keys)  # fmt: skip

    def running(w: ClusterWatcher, count: int) -> bool:
        view = w.view()
        return (
            view.synced
            and len(view.pods) == count
            and all(p.phase == "Running" and p.pod_ip for p in view.pods.values())
        )

    async def until(predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the watcher did not see {what}")
            await asyncio.sleep(0.02)

    def emit(**fields: object) -> None:
        print(json.dumps(fields), flush=True)

    async def expect(word: str) -> None:
        line = await asyncio.wait_for(commands.readline(), PHASE_TIMEOUT)
        if line.strip().decode() != word:
            raise RuntimeError(f"expected {word!r} from the parent, got {line!r}")

    async def follow() -> None:
        """The first watcher: sync, the pods go, they come back."""
        gc.collect()
        before = _status_bytes("VmRSS")
        first, stop = watcher(NODE), asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(first.run(stop))
        await until(lambda: running(first, pods), f"{pods} running pods")
        seconds = time.perf_counter() - started
        gc.collect()
        emit(rss_before=before, rss=_status_bytes("VmRSS"), hwm=_status_bytes("VmHWM"),
             seconds=seconds, namespaces=len(first.view().namespaces))  # fmt: skip
        _reset_peak()  # the churn's peak is its own
        await expect("deleted")
        await until(lambda: not first.view().pods, "the pods go")
        gc.collect()
        emit(rss=_status_bytes("VmRSS"))
        await expect("created")
        await until(lambda: running(first, pods), f"{pods} running pods again")
        gc.collect()
        emit(rss=_status_bytes("VmRSS"), hwm=_status_bytes("VmHWM"), events=first.events,
             errors=dict(first.errors))  # fmt: skip
        stop.set()
        await task

    async def hold(node: str, count: int) -> int:
        """Bytes a watcher synced on `node` holds once its connection is closed."""
        gc.collect()
        tracemalloc.start()
        try:
            w, stop = watcher(node), asyncio.Event()
            task = asyncio.create_task(w.run(stop))
            await until(functools.partial(running, w, count), f"{count} pods on {node}")
            stop.set()
            await task  # the session and its buffers are gone; the store and the view stay
            w.view()
            del task
            gc.collect()
            with_watcher = tracemalloc.get_traced_memory()[0]
            del w
            gc.collect()
            return with_watcher - tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    await follow()
    emit(held=await hold(NODE, pods), held_empty=await hold(EMPTY_NODE, 0))


# -- reporting ----------------------------------------------------------------------------------


def summary(r: KubeMemoryResult) -> str:
    if r.skipped:
        return f"kube memory: skipped: {r.skipped}"
    return "\n".join(
        [
            f"kube memory: ClusterWatcher on a node with {r.pods} pods ({r.other_pods} more on "
            f"another node, {r.namespaces} namespaces), real kube-apiserver",
            f"  the node's pod LIST: {r.list_bytes / MB:.2f} MB of JSON "
            f"({r.list_bytes / r.pods / 1024:.1f} KiB per pod); created in "
            f"{r.create_seconds:.1f} s",
            f"  child RSS: {r.rss_before / MB:.1f} MB after imports, {r.rss_synced / MB:.1f} MB "
            f"synced ({r.added_mb:+.2f} MB), peak {r.hwm_synced / MB:.1f} MB; sync took "
            f"{r.sync_seconds:.2f} s",
            f"  churn (delete {r.pods}, create {r.pods}): RSS {r.rss_empty / MB:.1f} MB empty, "
            f"{r.rss_resynced / MB:.1f} MB synced again ({r.churn_growth_mb:+.2f} MB), peak "
            f"{r.hwm_resynced / MB:.1f} MB; {r.events} events, errors {r.errors or 'none'}",
            f"  held by a synced watcher (tracemalloc): {r.held_bytes / 1024:.0f} KiB; with no "
            f"pods {r.held_empty_bytes / 1024:.0f} KiB; {r.per_pod_bytes:.0f} bytes per pod",
        ]
    )


def main() -> None:
    if "--child" in sys.argv[1:]:
        asyncio.run(_child(json.loads(sys.argv[sys.argv.index("--child") + 1])))
        return
    print(summary(run()))


if __name__ == "__main__":
    main()
