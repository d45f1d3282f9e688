"""`gpuwork-exporter`: wires settings, the sources, the loop and the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__
from exporter.accounting.useful_work import WorkLedger
from exporter.accounting.waste import WasteLedger
from exporter.collection import Collection, Sources
from exporter.errors import GpuworkError, ListenError, os_reason
from exporter.exposition.bodies import Exposition
from exporter.exposition.families import SnapshotCollector
from exporter.exposition.server import make_app
from exporter.exposition.web_config import WebConfigFile, load_web_config
from exporter.logs import configure_logging
from exporter.model import NodeSnapshot
from exporter.node import NodeInputs, real_node
from exporter.settings import FLAGS, Settings, load_settings
from exporter.sources.engines.catalog import BUILTIN, Catalog, load_catalog
from exporter.sources.engines.parser import EngineParser
from exporter.sources.engines.scraper import EngineScraper
from exporter.sources.engines.source import EngineSource
from exporter.sources.nvml.reader import NvmlReader
from exporter.sources.nvml.source import NvmlSource
from exporter.sources.podresources.client import PodResourcesClient
from exporter.sources.podresources.source import PodResourcesSource
from exporter.sources.processes import ProcessPods, ProcessSource

if TYPE_CHECKING:  # the simulator is imported only when --simulate asks for it
    from simulator.serving import Simulation

log = structlog.get_logger(component="exporter")

MAX_STEP_INTERVALS = 3  # an interval longer than this many is not charged to the ledger


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


def load_simulation(settings: Settings) -> Simulation | None:
    """The simulated node --simulate names; None on a real node."""
    if settings.simulate is None:
        return None
    from simulator.serving import Simulation

    return Simulation(settings)


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


def load_engine_catalog(settings: Settings, simulation: Simulation | None) -> Catalog:
    """The built-in engines with --engines.catalog's, or with --simulate and no flag,
    the scenario's `engine_catalog`. Raises `CatalogError` naming the line."""
    path = settings.engines_catalog or (simulation.engine_catalog if simulation else "")
    return load_catalog(path)


def build_sources(settings: Settings, node: NodeInputs, catalog: Catalog = BUILTIN) -> Sources:
    """Every source of the node; attribution's only where the kubelet socket is set."""
    timeout = settings.collect_timeout
    nvml = NvmlSource(NvmlReader(node.nvml), timeout=timeout)
    if not node.kubelet_socket:
        return Sources(nvml)
    client = PodResourcesClient(node.kubelet_socket, timeout=timeout / 2,
                                resources=settings.kubelet_resource_list)  # fmt: skip
    engines = None
    if settings.engines_scrape:
        scraper = EngineScraper(timeout=settings.engines_timeout,
                                max_bytes=settings.engines_max_bytes,
                                parser=EngineParser(catalog))  # fmt: skip
        engines = EngineSource(scraper)
    return Sources(
        nvml,
        kubelet=PodResourcesSource(client, timeout=timeout),
        processes=ProcessSource(ProcessPods(node.proc_root), timeout=timeout),
        cluster=node.cluster,
        engines=engines,
        catalog=catalog,
    )


def build_collection(
    settings: Settings,
    node: NodeInputs,
    publish: Callable[[NodeSnapshot], Awaitable[None] | None],
    *,
    monotonic: Callable[[], float] = time.monotonic,
    catalog: Catalog = BUILTIN,
) -> Collection:
    """The loop as `serve` runs it; `monotonic` is the ledger's clock (benchmarks move it),
    `catalog` the engines it recognises."""
    attributing = bool(node.kubelet_socket)
    ledger = WasteLedger(window=settings.state_window,
                         busy_threshold=settings.state_busy_threshold,
                         max_step=MAX_STEP_INTERVALS * settings.collect_interval)  # fmt: skip
    return Collection(
        build_sources(settings, node, catalog),
        node=node.name,
        publish=publish,
        rules=settings.tenant_rule_list,
        ledger=ledger if attributing else None,
        work=WorkLedger(histograms=settings.engines_histograms),
        prices=node.gpu_prices,
        monotonic=monotonic,
    )


def freeze_startup_objects() -> None:
    """Hides what exists after start-up (modules, schemas, settings) from the garbage
    collector: a full collection then scans only what collections allocated, instead of
    tens of thousands of objects that live for the whole run."""
    gc.collect()
    gc.freeze()


@contextlib.asynccontextmanager
async def open_node(
    settings: Settings, simulation: Simulation | None, stop: asyncio.Event
) -> AsyncIterator[NodeInputs]:
    if simulation is None:
        async with real_node(settings, stop) as node:
            yield node
    else:
        async with simulation.serve() as node:
            yield node


async def serve(
    settings: Settings,
    simulation: Simulation | None = None,
    web_config: WebConfigFile | None = None,
    catalog: Catalog | None = None,
) -> None:
    """`web_config` and `catalog`: --web.config.file and the engine catalog as `main`
    loaded them; loaded here when not given."""
    web_config = web_config or load_web_config(settings.web_config_file)
    catalog = catalog or load_engine_catalog(settings, simulation)
    stop = asyncio.Event()
    async with open_node(settings, simulation, stop) as node:
        await _serve(settings, node, simulation, stop, web_config, catalog)


async def _serve(
    settings: Settings,
    node: NodeInputs,
    simulation: Simulation | None,
    stop: asyncio.Event,
    web_config: WebConfigFile | None,
    catalog: Catalog,
) -> None:
    exposition = build_exposition()
    collection = build_collection(settings, node, exposition.publish, catalog=catalog)
    freeze_startup_objects()
    authorize = web_config.authorized if web_config else None
    runner = web.AppRunner(make_app(exposition, lambda: collection.ready, authorize=authorize),
                           access_log=None)  # fmt: skip
    await runner.setup()
    ssl_context = web_config.ssl_context if web_config else None
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise ListenError(
            f"cannot serve on {settings.listen_address}: {os_reason(error)}"
        ) from error
    log.info("serving", address=settings.listen_address, simulate=settings.simulate,
             node=node.name, interval_seconds=settings.collect_interval,
             scheme="https" if ssl_context else "http")  # fmt: skip

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for seconds in simulation.exporter_restarts() if simulation else ():
            await _run_for(collection, settings.collect_interval, stop, seconds)
            if stop.is_set():
                break
            log.warning("the scenario restarts the exporter: what it kept in memory starts anew")
            await collection.close()
            collection = build_collection(settings, node, exposition.publish, catalog=catalog)
        await collection.run(settings.collect_interval, stop)
    finally:
        log.info("shutting down")
        await collection.close()
        await runner.cleanup()


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
        simulation = load_simulation(settings)
        web_config = load_web_config(settings.web_config_file)
        catalog = load_engine_catalog(settings, simulation)
    except GpuworkError as error:  # bad settings, a scenario, web config or engine catalog
        print(f"gpuwork-exporter: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings, simulation, web_config, catalog))
    except OSError as error:  # the listen address, or a simulated engine's, is taken
        print(f"gpuwork-exporter: {error}", file=sys.stderr)
        return 1
    return 0
