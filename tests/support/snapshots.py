"""Snapshots as the exporter builds them from a simulated node, for the exposition tests."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from exporter.accounting.cost import hourly_costs
from exporter.accounting.energy import EnergyLedger
from exporter.accounting.useful_work import WorkLedger
from exporter.accounting.waste import WasteLedger
from exporter.exposition.families import SnapshotCollector
from exporter.join.attribution import attribute
from exporter.join.tenancy import DEFAULT_TENANT_RULES, parse_tenant_rules
from exporter.model import CollectorHealth, EngineReading, NodeSnapshot, NvmlReading
from exporter.sources.engines.parser import parse_engine
from simulator.bodies.exposition import render_exposition
from simulator.node import pod_pid, pod_uid
from simulator.work import engine_stats
from tests.support.sim import Sim

WALL_CLOCK = 1_700_000_000.0


def two_readings(sim: Sim, seconds: float = 10.0) -> tuple[NvmlReading, NvmlReading]:
    """Reads at the sim's start and `seconds` later: GPM needs two samples for activity."""
    sim.reader.start()
    first = sim.reader.read()
    sim.clock.advance(seconds)
    second = sim.reader.read()
    return first, second


def attributed(sim: Sim, first: NvmlReading, second: NvmlReading) -> dict[str, Any]:
    """Attribution and a ledger over the two readings, as the exporter would build them."""
    kubelet, cluster = sim.node.kubelet_devices(sim.clock()), sim.node.cluster_view()
    pids = {pod_pid(pod): pod_uid(pod) for pod in sim.node.scenario.pods}
    rules = parse_tenant_rules(DEFAULT_TENANT_RULES)
    book = WasteLedger(window=60.0, busy_threshold=0.05, max_step=30.0)
    book.update(first, attribute(first, kubelet, cluster, rules, pids), sim.clock() - 10.0)
    attribution = attribute(second, kubelet, cluster, rules, pids)

    # the engines as the exporter reads them: rendered by the simulation, parsed back
    def readings(t: float) -> dict[tuple[str, str], EngineReading | None]:
        return {
            (pod.namespace, pod.name): parse_engine(render_exposition(
                pod.engine, stats, process_start_time=1_699_999_900.0))
            for pod in sim.node.scenario.pods
            if pod.engine and (stats := engine_stats(sim.node, pod, t))
        }  # fmt: skip

    tenants = {(a.namespace, a.pod): a.tenant for a in attribution.allocations}
    engines = WorkLedger()
    for t, wall in ((sim.clock(), 1_699_999_990.0), (sim.clock() + 60.0, 1_700_000_050.0)):
        seen = readings(t)  # before the engines' cold start, then after it
        work = engines.update(((k, tenants[k], 1_699_999_900.0) for k in seen), seen, wall)
    worked = {(w.namespace, w.pod): w.worked for w in work}
    energy = EnergyLedger()
    energy.update(first, sim.clock() - 10.0)
    return {
        "attribution": attribution,
        "ledger": book.update(second, attribution, sim.clock(), worked),
        "work": work,
        "device_hourly_cost": hourly_costs(second, (("*H100*", 4.0),)),
        "device_energy": energy.update(second, sim.clock()),
    }


def snapshot_of(
    reading: NvmlReading | None, sim: Sim | None = None, node: str = "n1", **extra: Any
) -> NodeSnapshot:
    reader = sim.reader if sim else None
    return NodeSnapshot(
        node=node,
        nvml_up=reading is not None,
        nvml=reading,
        collectors={"nvml": CollectorHealth(reading is not None, 0.125, WALL_CLOCK)},
        errors_total={("nvml", k): v for k, v in sorted(reader.errors.items())} if reader else {},
        dropped_series_total=dict(reader.dropped_series) if reader else {},
        **extra,
    )


def registry_of(snapshot: NodeSnapshot) -> CollectorRegistry:
    """A private registry holding only the snapshot's families."""
    collector = SnapshotCollector()
    collector.update(snapshot)
    registry = CollectorRegistry()
    registry.register(collector)
    return registry
