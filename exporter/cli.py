"""`gpuwork-exporter`: wires settings, the NVML source, the loop and the server."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__
from exporter.collection import Collection
from exporter.config import FLAGS, Settings, SettingsError, load_settings
from exporter.logs import configure_logging
from exporter.metrics import SnapshotCollector
from exporter.nvml_reader import NvmlReader
from exporter.server import make_app
from exporter.simulation.scenario import ScenarioError

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
    from exporter.simulation.fake_nvml import SimulatedNvml
    from exporter.simulation.node import SimulatedNode
    from exporter.simulation.scenario import load_scenario

    scenario = load_scenario(settings.simulate)
    node = settings.node_name if "node_name" in settings.model_fields_set else scenario.node
    return SimulatedNvml(SimulatedNode(scenario)), node


def build_registry(snapshots: SnapshotCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(snapshots)
    ProcessCollector(registry=registry)  # these register themselves
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


async def serve(settings: Settings, nvml: Any, node: str) -> None:
    snapshots = SnapshotCollector()
    collection = Collection(
        NvmlReader(nvml),
        node=node,
        publish=snapshots.update,
        timeout=settings.collect_timeout,
    )
    runner = web.AppRunner(make_app(build_registry(snapshots), lambda: collection.ready),
                           access_log=None)  # fmt: skip
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("serving", address=settings.listen_address, simulate=settings.simulate,
             node=node, interval_seconds=settings.collect_interval)  # fmt: skip

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await collection.run(settings.collect_interval, stop)
    finally:
        log.info("shutting down")
        await collection.close()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(parse_args(argv), os.environ)
        configure_logging(settings.log_level, settings.log_format)
        nvml, node = nvml_library(settings)
    except (SettingsError, ScenarioError) as error:
        print(f"gpuwork-exporter: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings, nvml, node))
    except OSError as error:  # most often: the listen address is taken
        print(f"gpuwork-exporter: cannot serve on {settings.listen_address}: {error}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
