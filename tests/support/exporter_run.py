"""The exporter as `serve` wires it, on a simulated node's clock, kubelet, /proc and engines."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter.accounting.waste import WasteLedger
from exporter.collection import Collection, Sources
from exporter.join.tenancy import DEFAULT_TENANT_RULES, parse_tenant_rules
from exporter.model import NodeSnapshot
from exporter.sources.engines.catalog import load_catalog
from exporter.sources.engines.parser import EngineParser
from exporter.sources.engines.scraper import EngineScraper
from exporter.sources.engines.source import EngineSource
from exporter.sources.kubernetes.source import ClusterSource
from exporter.sources.nvml.reader import NvmlReader
from exporter.sources.nvml.source import NvmlSource
from exporter.sources.podresources.client import PodResourcesClient
from exporter.sources.podresources.source import PodResourcesSource
from exporter.sources.processes import ProcessPods, ProcessSource
from simulator.engines import SimulatedEngines
from simulator.kubelet import FakeKubelet
from simulator.proc import write_proc_root
from simulator.scenario import Scenario, exporter_restarts
from tests.support.sim import Sim, make_sim

WINDOW, THRESHOLD, INTERVAL = 60.0, 0.05, 10.0


STEPS = 180  # 30 minutes: every load profile goes through its phases, one engine restarts


@dataclass
class Run:
    sim: Sim
    engines: SimulatedEngines
    kubelet: FakeKubelet
    collection: Collection
    published: list[NodeSnapshot]
    times: list[float]
    start_exporter: Callable[[], Collection]  # a new exporter process on the same node

    async def collect(self, steps: int) -> NodeSnapshot:
        """`steps + 1` collections, INTERVAL apart. At the scenario's `exporter_restart`
        faults the exporter is down for one interval (no collection), then starts anew."""
        for _ in range(steps + 1):
            await self.engines.refresh()  # engines follow the moved clock: restarts
            now = self.sim.clock()
            self.times.append(now)
            if any(now - INTERVAL < at <= now for at in self.restarts):
                await self.restart_exporter()
            else:
                await self.collection.collect_once()
            self.sim.clock.advance(INTERVAL)
        return self.published[-1]

    @property
    def restarts(self) -> list[float]:
        return exporter_restarts(self.sim.node.scenario)

    async def restart_exporter(self) -> None:
        """The exporter process ends and another starts: nothing in memory survives."""
        await self.collection.close()
        self.collection = self.start_exporter()


@contextlib.asynccontextmanager
async def exporter_on_mixed(
    tmp_path: Path, prices: Sequence[tuple[str, float]] = (), scenario: Scenario | str = "mixed"
) -> AsyncIterator[Run]:
    """The exporter as `serve` wires it, on the simulated `mixed` node's clock: its
    kubelet over gRPC, its /proc, its engines over HTTP."""
    sim = make_sim(scenario, start=1.0)
    write_proc_root(sim.node, tmp_path / "proc")
    kubelet = FakeKubelet(str(tmp_path / "kubelet.sock"),
                          lambda: sim.node.kubelet_devices(sim.clock()))  # fmt: skip
    kubelet.start()
    engines = SimulatedEngines(sim.node, poll_seconds=0)  # the test moves the clock
    await engines.start()
    published: list[NodeSnapshot] = []

    catalog = load_catalog(sim.node.scenario.engine_catalog_path())  # as `--simulate` does

    def start_exporter() -> Collection:
        client = PodResourcesClient(kubelet.socket_path, timeout=2.0, monotonic=sim.clock)
        scraper = EngineScraper(timeout=2.0, max_bytes=8 << 20, parser=EngineParser(catalog))
        sources = Sources(
            NvmlSource(NvmlReader(sim.nvml), timeout=5.0, monotonic=sim.clock),
            kubelet=PodResourcesSource(client, timeout=5.0, keep_last=300.0),
            processes=ProcessSource(ProcessPods(str(tmp_path / "proc")), timeout=5.0),
            cluster=ClusterSource(lambda: sim.node.cluster_view()),
            engines=EngineSource(scraper),
            catalog=catalog,
        )
        return Collection(
            sources,
            node="sim-mixed",
            publish=published.append,
            rules=parse_tenant_rules(DEFAULT_TENANT_RULES),
            ledger=WasteLedger(window=WINDOW, busy_threshold=THRESHOLD, max_step=3 * INTERVAL),
            monotonic=sim.clock,
            wall_clock=lambda: sim.node.wall_start + sim.clock(),
            prices=prices,
        )

    run = Run(sim, engines, kubelet, start_exporter(), published, [], start_exporter)
    try:
        yield run
    finally:
        await run.collection.close()
        await engines.stop()
        kubelet.stop()
