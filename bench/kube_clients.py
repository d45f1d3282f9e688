"""The thin Kubernetes client against kubernetes_asyncio and kubernetes, side by side.

The exporter watches this node's pods and the namespaces with its own client on aiohttp
(`ClusterWatcher`, exporter/sources/kubernetes/) instead of a client library, for memory.
This measures that choice on the same real etcd and kube-apiserver v1.20 on loopback
(`harness/kube_apiserver.py`, started as `bench/kube_memory.py` starts it). The parent
creates `PODS` pods bound to one node (`spec.nodeName`; the Helm-style pods of
kube_memory, with a kubelet-like status), `OTHER_PODS` on another node, over
`NAMESPACES` tenant namespaces. Then, one fresh child process per client
(`python -m bench.kube_clients --child CLIENT CONFIG`), each with the exporter's own
token (RBAC from deploy/rbac.yaml):

- `thin`: `ClusterWatcher` with the default tenant rules' label keys;
- `kubernetes_asyncio`: `CoreV1Api.list_pod_for_all_namespaces(field_selector=
  "spec.nodeName=<node>")` and `list_namespace`, then `watch.Watch().stream` of each from
  the list's resourceVersion (bookmarks on), the objects kept in a dict by key as an
  informer keeps them;
- `kubernetes`: the same with the sync client, each `watch.Watch().stream` in a thread.

A child records its RSS before and after importing the client alone, lists and watches
until it holds every pod and namespace (RSS, peak, CPU), then the parent makes the same
churn for each (`CHURN` pod status updates, a new pod IP, in ten batches a second apart);
`STEADY_SECONDS` after the sync, once the child has seen every update, it records RSS and
CPU again. Last, it imports `exporter.cli` (what the exporter imports besides the client)
and records RSS: the difference between two clients there is what swapping one for the
other would add to the exporter, their shared dependencies (aiohttp, PyYAML) counted once.

Without a kube-apiserver binary (`make kube-apiserver`) or etcd, the benchmark is
skipped and says why; a client library that is not installed (`pip install -e '.[bench]'`)
is skipped alone.
Run: `python -m bench.kube_clients`.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench import kube_memory, memory

# Only the standard library and those two (standard library only at their top): a child
# measures what its client's imports add.

CLIENTS = ("thin", "kubernetes_asyncio", "kubernetes")
LIBRARIES = {"thin": "aiohttp", "kubernetes_asyncio": "kubernetes_asyncio",
             "kubernetes": "kubernetes"}  # fmt: skip
PODS = kube_memory.PODS
OTHER_PODS = kube_memory.OTHER_PODS
NAMESPACES = kube_memory.NAMESPACES
NODE = kube_memory.NODE
CHURN = 100  # pod updates after the sync, the same for every client
CHURN_BATCHES = 10  # one a second
STEADY_SECONDS = 20.0  # from the sync to the second measurement
PHASE_TIMEOUT = 180.0
MB = 1024 * 1024
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass
class ClientRun:
    client: str
    version: str = ""
    skipped: str | None = None
    rss_bare: int = 0  # the child's interpreter, before the client's imports
    rss_imported: int = 0
    rss_synced: int = 0  # holding every pod and namespace
    hwm_synced: int = 0  # VmHWM then: the peak so far, the LIST decode included
    sync_seconds: float = 0.0
    cpu_sync: float = 0.0  # CPU seconds from the client's start to the sync
    rss_steady: int = 0  # STEADY_SECONDS after the sync, the churn seen
    hwm_steady: int = 0
    cpu_steady: float = 0.0  # CPU seconds from the sync to then
    rss_with_exporter: int = 0  # the same process once `exporter.cli` is imported too
    pods: int = 0
    namespaces: int = 0

    @property
    def import_mb(self) -> float:
        return (self.rss_imported - self.rss_bare) / MB

    @property
    def cpu(self) -> float:
        return self.cpu_sync + self.cpu_steady


@dataclass
class KubeClientsResult:
    skipped: str | None = None
    runs: list[ClientRun] = field(default_factory=list)
    list_bytes: int = 0  # the node's pod LIST answer, as JSON

    def run(self, client: str) -> ClientRun | None:
        return next((r for r in self.runs if r.client == client and not r.skipped), None)

    def extra_mb(self, client: str) -> float | None:
        """What using `client` instead of the thin client adds to the exporter's RSS."""
        run, thin = self.run(client), self.run("thin")
        if run is None or thin is None:
            return None
        return (run.rss_with_exporter - thin.rss_with_exporter) / MB


# -- the parent ---------------------------------------------------------------------------------


async def _ask(proc: asyncio.subprocess.Process, stderr: Path) -> dict[str, Any]:
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), PHASE_TIMEOUT)
    except TimeoutError:
        line = b""
    if not line:
        raise RuntimeError(f"kube_clients child ended or fell silent:\n{_tail(stderr)}")
    answer: dict[str, Any] = json.loads(line)
    return answer


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


async def _churn(admin: Any, churn: list[tuple[str, str, str]]) -> None:
    """The pods' new IPs, as a kubelet writes them, in batches a second apart."""
    size = -(-len(churn) // CHURN_BATCHES)
    for start in range(0, len(churn), size):
        began = time.monotonic()
        await asyncio.gather(
            *(admin.patch_pod_status(ns, name, {"podIP": ip, "podIPs": [{"ip": ip}]})
              for ns, name, ip in churn[start : start + size])
        )  # fmt: skip
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - began)))


async def _measure(
    client: str,
    config: dict[str, Any],
    admin: Any,
    churn: list[tuple[str, str, str]],
    scratch: Path,
) -> ClientRun:
    run = ClientRun(client, version=_version(LIBRARIES[client]))
    if importlib.util.find_spec(LIBRARIES[client]) is None:
        run.skipped = f"{LIBRARIES[client]} is not installed (pip install -e '.[bench]')"
        return run
    stderr = scratch / f"{client}.stderr"
    arguments = json.dumps({**config, "churn": churn})
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.kube_clients", "--child", client, arguments,
            cwd=kube_memory.ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
        )  # fmt: skip
    try:
        imported = await _ask(proc, stderr)
        run.rss_bare, run.rss_imported = imported["rss_bare"], imported["rss"]
        synced = await _ask(proc, stderr)
        run.rss_synced, run.hwm_synced = synced["rss"], synced["hwm"]
        run.sync_seconds, run.cpu_sync = synced["seconds"], synced["cpu"]
        run.pods, run.namespaces = synced["pods"], synced["namespaces"]
        await _churn(admin, churn)
        assert proc.stdin is not None
        proc.stdin.write(b"churned\n")
        await proc.stdin.drain()
        steady = await _ask(proc, stderr)
        run.rss_steady, run.hwm_steady, run.cpu_steady = steady["rss"], steady["hwm"], steady["cpu"]
        run.rss_with_exporter = (await _ask(proc, stderr))["rss"]
        await asyncio.wait_for(proc.wait(), PHASE_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return run


async def _bench(cluster: Any, scratch: Path) -> KubeClientsResult:
    from exporter.join.tenancy import DEFAULT_TENANT_RULES, label_keys, parse_tenant_rules
    from harness.kube_apiserver import RBAC_YAML, KubeAdmin

    result = KubeClientsResult()
    pod_keys, namespace_keys = label_keys(parse_tenant_rules(DEFAULT_TENANT_RULES))
    async with KubeAdmin(cluster.url, cluster.ca_file, cluster.admin_token) as admin:
        await admin.apply(RBAC_YAML)
        for n in range(NAMESPACES):
            await admin.create_namespace(f"team-{n:02d}", {"gpuwork.io/tenant": f"tenant-{n}"})
        names = await kube_memory._create(admin, PODS, NODE, generation=0)
        await kube_memory._create(admin, OTHER_PODS, kube_memory.OTHER_NODE, generation=0)
        listed = await admin.request("GET", "/api/v1/pods",
                                     params={"fieldSelector": f"spec.nodeName={NODE}"})  # fmt: skip
        result.list_bytes = len(json.dumps(listed, separators=(",", ":")))
        config = {
            "url": cluster.url,
            "ca_file": cluster.ca_file,
            "token_file": cluster.write_token("exporter", cluster.exporter_token),
            "node": NODE,
            "pods": PODS,
            "pod_label_keys": sorted(pod_keys),
            "namespace_label_keys": sorted(namespace_keys),
        }
        for round_, client in enumerate(CLIENTS):
            # The same churn for every client; new IPs each round, so each is a change.
            churn = [(ns, name, f"10.{200 + round_}.{i // 250}.{i % 250 + 1}")
                     for i, (ns, name) in enumerate(sorted(names)[:CHURN])]  # fmt: skip
            print(f"  {client}: measuring", file=sys.stderr, flush=True)
            result.runs.append(await _measure(client, config, admin, churn, scratch))
    return result


def run() -> KubeClientsResult:
    binary, why = kube_memory.apiserver_binary()
    if binary is None:
        return KubeClientsResult(skipped=why)
    from harness.kube_apiserver import ClusterUnavailableError, KubeCluster

    cluster = KubeCluster(binary)
    try:
        try:
            kube_memory._start(cluster)
        except ClusterUnavailableError as error:
            return KubeClientsResult(skipped=str(error))
        with tempfile.TemporaryDirectory(prefix="gpuwork-bench-") as scratch:
            return asyncio.run(_bench(cluster, Path(scratch)))
    finally:
        cluster.stop()


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


# -- the child: one client ----------------------------------------------------------------------


class _Client:
    """One way of keeping this node's pods and the namespaces."""

    def load(self) -> None:
        """Imports the library (measured)."""

    async def start(self) -> None:
        raise NotImplementedError

    def synced(self) -> bool:
        raise NotImplementedError

    def counts(self) -> tuple[int, int]:
        raise NotImplementedError

    def pod_ip(self, namespace: str, name: str) -> str | None:
        raise NotImplementedError

    async def close(self) -> None:
        """Ends the watches where the library can (the sync client's threads end with
        the process)."""


class _Thin(_Client):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = config

    def load(self) -> None:
        from exporter.sources.kubernetes.api import KubeApi
        from exporter.sources.kubernetes.watcher import ClusterWatcher

        self._api, self._watcher_type = KubeApi, ClusterWatcher

    async def start(self) -> None:
        from exporter.logs import configure_logging

        configure_logging("warning", "logfmt")  # on stderr, as the exporter logs
        c = self._config
        self._watcher = self._watcher_type(
            self._api(c["url"], token_file=c["token_file"], ca_file=c["ca_file"]),
            c["node"],
            pod_label_keys=frozenset(c["pod_label_keys"]),
            namespace_label_keys=frozenset(c["namespace_label_keys"]),
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._watcher.run(self._stop))

    def synced(self) -> bool:
        return self._watcher.view().synced

    async def close(self) -> None:
        self._stop.set()
        await self._task

    def counts(self) -> tuple[int, int]:
        view = self._watcher.view()
        return len(view.pods), len(view.namespaces)

    def pod_ip(self, namespace: str, name: str) -> str | None:
        pod = self._watcher.view().pods.get((namespace, name))
        return pod.pod_ip if pod is not None else None


class _Informers(_Client):
    """A list, then a watch from its resourceVersion, per resource; whole objects kept."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = config
        self.pods: dict[tuple[str, str], Any] = {}
        self.namespaces: dict[tuple[str, str], Any] = {}
        self._listed: set[str] = set()

    def _configuration(self, module: Any) -> Any:
        c = self._config
        token = Path(c["token_file"]).read_text().strip()
        conf = module.Configuration(host=c["url"], api_key={"BearerToken": token},
                                    api_key_prefix={"BearerToken": "Bearer"})  # fmt: skip
        conf.ssl_ca_cert = c["ca_file"]
        return conf

    def _listed_into(self, store: dict[tuple[str, str], Any], name: str, listed: Any) -> str:
        for obj in listed.items:
            store[(obj.metadata.namespace, obj.metadata.name)] = obj
        self._listed.add(name)
        return str(listed.metadata.resource_version)

    @staticmethod
    def _apply(store: dict[tuple[str, str], Any], event: Mapping[str, Any]) -> None:
        obj = event["object"]
        if event["type"] in ("ADDED", "MODIFIED"):
            store[(obj.metadata.namespace, obj.metadata.name)] = obj
        elif event["type"] == "DELETED":
            store.pop((obj.metadata.namespace, obj.metadata.name), None)

    def synced(self) -> bool:
        return self._listed == {"pods", "namespaces"}

    def counts(self) -> tuple[int, int]:
        return len(self.pods), len(self.namespaces)

    def pod_ip(self, namespace: str, name: str) -> str | None:
        pod = self.pods.get((namespace, name))
        return pod.status.pod_ip if pod is not None and pod.status is not None else None


class _Asyncio(_Informers):
    def load(self) -> None:
        from kubernetes_asyncio import client, watch

        self._client, self._watch = client, watch

    async def start(self) -> None:
        self._api = self._client.ApiClient(self._configuration(self._client))
        v1 = self._client.CoreV1Api(self._api)
        selector = f"spec.nodeName={self._config['node']}"
        self._tasks = [
            asyncio.create_task(self._inform("pods", v1.list_pod_for_all_namespaces, self.pods,
                                             field_selector=selector)),
            asyncio.create_task(self._inform("namespaces", v1.list_namespace, self.namespaces)),
        ]  # fmt: skip

    async def _inform(
        self, name: str, list_: Callable[..., Any], store: dict[tuple[str, str], Any], **kw: Any
    ) -> None:
        version = self._listed_into(store, name, await list_(**kw))
        async with self._watch.Watch() as watch:
            async for event in watch.stream(list_, resource_version=version,
                                            allow_watch_bookmarks=True, **kw):  # fmt: skip
                self._apply(store, event)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._api.close()


class _Sync(_Informers):
    def load(self) -> None:
        from kubernetes import client, watch

        self._client, self._watch = client, watch

    async def start(self) -> None:
        api = self._client.ApiClient(self._configuration(self._client))
        v1 = self._client.CoreV1Api(api)
        selector = f"spec.nodeName={self._config['node']}"
        for args in (("pods", v1.list_pod_for_all_namespaces, self.pods, selector),
                     ("namespaces", v1.list_namespace, self.namespaces, None)):  # fmt: skip
            threading.Thread(target=self._inform, args=args, daemon=True).start()

    def _inform(
        self, name: str, list_: Callable[..., Any], store: dict[tuple[str, str], Any],
        selector: str | None,
    ) -> None:  # fmt: skip
        kw = {"field_selector": selector} if selector else {}
        version = self._listed_into(store, name, list_(**kw))
        for event in self._watch.Watch().stream(list_, resource_version=version,
                                                allow_watch_bookmarks=True, **kw):  # fmt: skip
            self._apply(store, event)


_CHILDREN: dict[str, Callable[[Mapping[str, Any]], _Client]] = {
    "thin": _Thin, "kubernetes_asyncio": _Asyncio, "kubernetes": _Sync,
}  # fmt: skip


async def _child(client_name: str, config: Mapping[str, Any]) -> None:
    status = kube_memory._status_bytes
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)

    def emit(**fields: object) -> None:
        print(json.dumps(fields), flush=True)

    async def until(predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{client_name} did not get {what}")
            await asyncio.sleep(0.02)

    client = _CHILDREN[client_name](config)
    gc.collect()
    bare = status("VmRSS")
    client.load()
    gc.collect()
    emit(rss_bare=bare, rss=status("VmRSS"))

    cpu, started = time.process_time(), time.perf_counter()
    await client.start()
    pods = int(config["pods"])
    await until(lambda: client.synced() and client.counts()[0] == pods, f"{pods} pods")
    synced_at, cpu_synced = time.perf_counter(), time.process_time()
    gc.collect()
    pod_count, namespace_count = client.counts()
    emit(rss=status("VmRSS"), hwm=status("VmHWM"), seconds=synced_at - started,
         cpu=cpu_synced - cpu, pods=pod_count, namespaces=namespace_count)  # fmt: skip

    line = await asyncio.wait_for(commands.readline(), PHASE_TIMEOUT)
    if line.strip() != b"churned":
        raise RuntimeError(f"expected 'churned' from the parent, got {line!r}")
    churn = [tuple(c) for c in config["churn"]]
    await until(lambda: all(client.pod_ip(ns, name) == ip for ns, name, ip in churn), "the churn")
    await asyncio.sleep(max(0.0, STEADY_SECONDS - (time.perf_counter() - synced_at)))
    cpu_steady = time.process_time() - cpu_synced
    gc.collect()
    emit(rss=status("VmRSS"), hwm=status("VmHWM"), cpu=cpu_steady)

    import exporter.cli  # noqa: F401 -- what the exporter imports besides its client

    gc.collect()
    emit(rss=status("VmRSS"))
    await client.close()


# -- reporting ----------------------------------------------------------------------------------


def recorded_exporter_mb(results: Path = RESULTS) -> float | None:
    """The whole exporter's RSS after the memory benchmark's collections, as
    bench/RESULTS.md last recorded it."""
    try:
        text = results.read_text()
    except OSError:
        return None
    found = re.search(r"\| memory \| RSS after \d+ collections, whole exporter[^|]*\| ([\d.]+) MB",
                      text)  # fmt: skip
    return float(found.group(1)) if found else None


def _cell(value: float, thin: float | None, digits: int = 1) -> str:
    """A figure, with its ratio to the thin client's (None: this is the thin client)."""
    if thin is None:
        return f"{value:.{digits}f}"
    ratio = f"{value / thin:.2f}x" if thin > 0 else "-"
    return f"{value:.{digits}f} ({ratio})"


def table(r: KubeClientsResult) -> str:
    """One row per client, each figure with its ratio to the thin client."""
    thin = r.run("thin")
    lines = [
        "| client | import alone MB | RSS synced MB | peak synced MB | RSS after churn MB | "
        "CPU s (sync + steady) | RSS with the exporter's imports MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in r.runs:
        name = f"thin (aiohttp {c.version})" if c.client == "thin" else f"{c.client} {c.version}"
        if c.skipped:
            lines.append(f"| {name} | skipped: {c.skipped} | | | | | |")
            continue
        base = None if thin is None or c is thin else thin
        lines.append(
            f"| {name} | {_cell(c.import_mb, base and base.import_mb)} "
            f"| {_cell(c.rss_synced / MB, base and base.rss_synced / MB)} "
            f"| {_cell(c.hwm_synced / MB, base and base.hwm_synced / MB)} "
            f"| {_cell(c.rss_steady / MB, base and base.rss_steady / MB)} "
            f"| {_cell(c.cpu, base and base.cpu, 2)} ({c.cpu_sync:.2f} + {c.cpu_steady:.2f}) "
            f"| {c.rss_with_exporter / MB:.1f} |"
        )
    return "\n".join(lines)


def decision(r: KubeClientsResult, exporter_mb: float | None) -> list[str]:
    """For each library: adopt it only if the exporter would still hold its budget."""
    lines = []
    for client in CLIENTS[1:]:
        extra = r.extra_mb(client)
        if extra is None or exporter_mb is None:
            lines.append(f"{client}: not measured")
            continue
        total = exporter_mb + extra
        verdict = "adopt" if total <= memory.TARGET_MB else "keep the thin client"
        lines.append(
            f"{client}: {extra:+.1f} MB over the thin client in the exporter's process; "
            f"{exporter_mb:.1f} {extra:+.1f} = {total:.1f} MB against {memory.TARGET_MB:.0f} MB: "
            f"{verdict}"
        )
    return lines


def summary(r: KubeClientsResult, exporter_mb: float | None = None) -> str:
    if r.skipped:
        return f"kube clients: skipped: {r.skipped}"
    thin = r.run("thin")
    counts = f"{thin.pods} pods, {thin.namespaces} namespaces" if thin else f"{PODS} pods"
    where = "" if exporter_mb is None else f" (exporter RSS today {exporter_mb:.1f} MB)"
    return "\n".join(
        [
            f"kube clients: the node's {counts} (LIST {r.list_bytes / MB:.1f} MB of JSON), "
            f"{CHURN} pod updates, {STEADY_SECONDS:.0f} s from sync; real kube-apiserver",
            table(r),
            f"decision{where}:",
            *(f"  {line}" for line in decision(r, exporter_mb)),
        ]
    )


def main() -> None:
    if "--child" in sys.argv[1:]:
        at = sys.argv.index("--child")
        asyncio.run(_child(sys.argv[at + 1], json.loads(sys.argv[at + 2])))
        return
    print(summary(run(), recorded_exporter_mb()))


if __name__ == "__main__":
    main()
