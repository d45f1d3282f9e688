"""`gpuwork-exporter`: wires settings, the sources, the loop and the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__
from exporter.accounting.waste import WasteLedger
from exporter.collection import Collection
from exporter.exposition.bodies import Exposition
from exporter.exposition.families import SnapshotCollector
from exporter.exposition.server import make_app
from exporter.join.attributor import Attributor
from exporter.join.tenancy import label_keys
from exporter.logs import configure_logging
from exporter.model import ClusterView
from exporter.settings import FLAGS, Settings, SettingsError, load_settings
from exporter.sources.engines.scraper import EngineScraper
from exporter.sources.engines.source import EngineSource
from exporter.sources.kubernetes.api import KubeApi, in_cluster_api
from exporter.sources.kubernetes.watcher import ClusterWatcher
from exporter.sources.nvml.reader import NvmlReader
from exporter.sources.podresources.client import PodResourcesClient
from exporter.sources.processes import ProcessPods
from simulator.scenario import ScenarioError

log = structlog.get_logger(component="exporter")


def parse_args(argv: Sequence[str] | None) -> dict[str, str | None]:
    parser = argparse.ArgumentParser(
        prog="gpuwork-exporter",
        description="Exports per-GPU and per-MIG-instance NVML metrics for Prometheus.",
        epilog="Every flag can also be set as the environment variable shown in brackets.",
    )
    for flag in FLAGS:
        parser.add_argument(flag.name, dest=flag.field, metavar="VALUE",
                            help=f"{flag.help} [{flag.env}]")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"gpuwork-exporter {__version__}")
    return vars(parser.parse_args(argv))


def nvml_library(settings: Settings) -> tuple[Any, str]:
    """The NVML to read and the node name: the real pynvml module and
    --node.name, or the simulated node named by --simulate and its own name."""
    if settings.simulate is None:
        import pynvml

        return pynvml, settings.node_name
    from simulator.node import SimulatedNode
    from simulator.nvml import SimulatedNvml
    from simulator.scenario import load_scenario

    scenario = load_scenario(settings.simulate)
    node = settings.node_name if "node_name" in settings.model_fields_set else scenario.node
    return SimulatedNvml(SimulatedNode(scenario)), node


def gpu_prices(settings: Settings, nvml: Any) -> tuple[tuple[str, float], ...]:
    """The price table: --cost.gpu-hourly when given (as a flag or variable, even empty),
    else the simulated scenario's `gpu_hourly_cost`, else none."""
    if settings.simulate is None or "cost_gpu_hourly" in settings.model_fields_set:
        return settings.gpu_prices
    prices: tuple[tuple[str, float], ...] = nvml.node.scenario.gpu_prices
    return prices


class ListenError(OSError):
    """An address the exporter or its simulated node cannot listen on; one line naming it."""


def _reason(error: OSError) -> str:
    """`Address already in use`, without asyncio's repetition of the address."""
    return os.strerror(error.errno) if error.errno and error.errno > 0 else str(error)


def build_registry(snapshots: SnapshotCollector) -> CollectorRegistry:
    """Everything /metrics holds: the snapshot, and prometheus_client's process, platform
    and garbage-collector families."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(snapshots)
    ProcessCollector(registry=registry)  # these register themselves
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def build_exposition() -> Exposition:
    """What /metrics serves: that registry, rendered once per collection."""
    snapshots = SnapshotCollector()
    return Exposition(snapshots, build_registry(snapshots))


KUBELET_KEEP_LAST_SECONDS = 300.0  # how long the last allocations stand in for the kubelet
MAX_STEP_INTERVALS = 3  # an interval longer than this many is not charged to the ledger


@dataclass
class PodSources:
    """Where attribution reads from: a kubelet socket, a /proc, and cluster metadata."""

    kubelet_socket: str
    proc_root: str
    cluster: Callable[[], ClusterView | None] = lambda: None
    cluster_errors: Callable[[], Counter[str]] = Counter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def pod_sources(
    settings: Settings, nvml: Any, node: str, stop: asyncio.Event
) -> AsyncIterator[PodSources | None]:
    """The real node's sources, or the simulated node serving its own: a fake kubelet on a
    temporary socket, a temporary /proc, the scenario's metadata, and its engines as HTTP
    servers on loopback addresses."""
    if settings.simulate is not None:
        from simulator.engines import SimulatedEngines
        from simulator.kubelet import FakeKubelet
        from simulator.proc import write_proc_root

        simulated = nvml.node
        with tempfile.TemporaryDirectory(prefix="gpuwork-sim-") as scratch:
            proc = Path(scratch, "proc")
            write_proc_root(simulated, proc)
            socket_path = os.path.join(scratch, "kubelet.sock")
            kubelet = FakeKubelet(socket_path, lambda: simulated.kubelet_devices(simulated.clock()))
            kubelet.start()
            try:
                engines = SimulatedEngines(simulated)
                await _start_engines(engines)
                try:
                    yield PodSources(socket_path, str(proc), cluster=simulated.cluster_view)
                finally:
                    await engines.stop()
            finally:
                kubelet.stop()
        return
    if not settings.kubelet_socket:
        log.info("attribution off: --kubelet.socket is empty")
        yield None
        return
    sources = PodSources(settings.kubelet_socket, settings.proc_root)
    api = (
        KubeApi(settings.kubernetes_api_url, settings.kubernetes_token_file,
                settings.kubernetes_ca_file)
        if settings.kubernetes_api_url
        else in_cluster_api(os.environ)
    )  # fmt: skip
    if api is None:
        log.warning("no Kubernetes API (not in a pod, no --kubernetes.api-url): "
                    "tenants come from namespace names only")  # fmt: skip
    else:
        pod_keys, namespace_keys = label_keys(settings.tenant_rule_list)
        watcher = ClusterWatcher(
            api, node, pod_label_keys=pod_keys, namespace_label_keys=namespace_keys
        )
        sources.cluster, sources.cluster_errors = watcher.view, lambda: watcher.errors
        sources.tasks.append(asyncio.create_task(watcher.run(stop), name="kubernetes"))
    try:
        yield sources
    finally:
        for task in sources.tasks:
            task.cancel()
        await asyncio.gather(*sources.tasks, return_exceptions=True)


async def _start_engines(engines: Any) -> None:
    """Starts the simulated engines; an address that cannot be listened on stops the
    exporter with a `ListenError` that names the pod and its address."""
    from simulator.node import PodAddressError, probe_listen

    try:
        await engines.start()
    except OSError as error:
        await engines.stop()  # let go of what did open, then find the address that did not
        for (namespace, name), (ip, port, _) in engines.addresses.items():
            try:
                probe_listen(ip, port)
            except PodAddressError as taken:
                raise ListenError(f"simulated engine {namespace}/{name}: {taken}") from error
        raise ListenError(f"simulated engines cannot listen: {_reason(error)}") from error


def freeze_startup_objects() -> None:
    """Hides what exists after start-up (modules, schemas, settings) from the garbage
    collector: a full collection then scans only what collections allocated, instead of
    tens of thousands of objects that live for the whole run."""
    gc.collect()
    gc.freeze()


def build_attributor(settings: Settings, sources: PodSources) -> Attributor:
    return Attributor(
        PodResourcesClient(sources.kubelet_socket, timeout=settings.collect_timeout / 2,
                           resources=settings.kubelet_resource_list),
        ProcessPods(sources.proc_root),
        settings.tenant_rule_list,
        keep_last=KUBELET_KEEP_LAST_SECONDS,
    )  # fmt: skip


def build_ledger(settings: Settings) -> WasteLedger:
    return WasteLedger(window=settings.state_window, busy_threshold=settings.state_busy_threshold,
                       max_step=MAX_STEP_INTERVALS * settings.collect_interval)  # fmt: skip


def build_engines(settings: Settings) -> EngineSource | None:
    if not settings.engines_scrape:
        return None
    return EngineSource(
        EngineScraper(timeout=settings.engines_timeout, max_bytes=settings.engines_max_bytes),
        histograms=settings.engines_histograms,
    )


async def serve(settings: Settings, nvml: Any, node: str) -> None:
    stop = asyncio.Event()
    async with pod_sources(settings, nvml, node, stop) as sources:
        await _serve(settings, nvml, node, sources, stop)


async def _serve(
    settings: Settings, nvml: Any, node: str, sources: PodSources | None, stop: asyncio.Event
) -> None:
    exposition = build_exposition()

    def start_collection() -> Collection:
        return Collection(
            NvmlReader(nvml),
            node=node,
            publish=exposition.publish,
            timeout=settings.collect_timeout,
            attributor=build_attributor(settings, sources) if sources else None,
            ledger=build_ledger(settings) if sources else None,
            engines=build_engines(settings) if sources else None,
            cluster=sources.cluster if sources else lambda: None,
            cluster_errors=sources.cluster_errors if sources else Counter,
            prices=gpu_prices(settings, nvml),
        )

    collection = start_collection()
    freeze_startup_objects()
    runner = web.AppRunner(make_app(exposition, lambda: collection.ready),
                           access_log=None)  # fmt: skip
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise ListenError(f"cannot serve on {settings.listen_address}: {_reason(error)}") from error
    log.info("serving", address=settings.listen_address, simulate=settings.simulate,
             node=node, interval_seconds=settings.collect_interval)  # fmt: skip

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for seconds in simulated_exporter_restarts(settings, nvml):
            await _run_for(collection, settings.collect_interval, stop, seconds)
            if stop.is_set():
                break
            log.warning("the scenario restarts the exporter: what it kept in memory starts anew")
            await collection.close()
            collection = start_collection()
        await collection.run(settings.collect_interval, stop)
    finally:
        log.info("shutting down")
        await collection.close()
        await runner.cleanup()


def simulated_exporter_restarts(settings: Settings, nvml: Any) -> list[float]:
    """Seconds from now to each restart of the exporter the simulated scenario holds
    (`exporter_restart` faults still ahead), each counted from the one before."""
    if settings.simulate is None:
        return []
    from simulator.scenario import exporter_restarts

    now = previous = nvml.node.clock()
    waits = []
    for at in exporter_restarts(nvml.node.scenario):
        if at > now:
            waits.append(at - previous)
            previous = at
    return waits


async def _run_for(
    collection: Collection, interval: float, stop: asyncio.Event, seconds: float
) -> None:
    """Collect every `interval` for `seconds`, or until `stop`."""
    over = asyncio.Event()

    async def end() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        over.set()

    ender = asyncio.create_task(end())
    try:
        await collection.run(interval, over)
    finally:
        ender.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["probe"]:
        from exporter.probe import main as probe

        return probe(args[1:])
    try:
        settings = load_settings(parse_args(args), os.environ)
        configure_logging(settings.log_level, settings.log_format)
        nvml, node = nvml_library(settings)
    except (SettingsError, ScenarioError) as error:
        print(f"gpuwork-exporter: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings, nvml, node))
    except ListenError as error:  # the listen address, or a simulated engine's, is taken
        print(f"gpuwork-exporter: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"gpuwork-exporter: {error}", file=sys.stderr)
        return 1
    return 0
