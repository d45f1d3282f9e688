"""The collection loop: reads every source, joins, accounts, publishes one snapshot.

Each source is read through one wrapper (`_read`), as node_exporter's `execute()`
runs each collector: it times the read, records success in the source's health,
counts a failure by kind, and hands on whatever answer there is, so that one source's
failure costs only its own series:

- NVML down: device metrics go; the kubelet's allocations are mapped onto the devices
  NVML listed last, so attribution and the engines' useful work flow on, and the waste
  ledger's totals stand, nothing charged;
- the kubelet down: its last allocations stand in for `keep_last` seconds, then
  attribution and engines pause; device metrics flow on;
- the API server away: the watch's last view, marked stale;
- an engine down: its series hold their values (`exporter.accounting.useful_work`).

Before NVML has answered once there are no devices to map allocations onto, so the
join and the engines wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

from exporter.accounting.cost import hourly_costs
from exporter.accounting.energy import EnergyLedger
from exporter.accounting.useful_work import WorkLedger
from exporter.accounting.waste import WasteLedger
from exporter.errors import ErrorKind, SourceError
from exporter.join.attribution import attribute, gpu_pids, holders_only
from exporter.join.tenancy import TenantRule
from exporter.model import (
    Attribution,
    ClusterView,
    CollectorHealth,
    EngineReading,
    KubeletDevices,
    NodeSnapshot,
    NvmlReading,
    PodWork,
    StateLedger,
)
from exporter.sources.engines.catalog import BUILTIN, Catalog
from exporter.sources.engines.scraper import EngineTarget, targets_for
from exporter.sources.engines.source import EngineSource
from exporter.sources.nvml.source import NvmlSource
from exporter.sources.source import Source

log = structlog.get_logger(component="exporter.collection")

T = TypeVar("T")
A = TypeVar("A")

NVML = NvmlSource.name
ENGINES = EngineSource.name  # the useful-work ledger's errors are counted under it
JOIN = "join"  # not a source: the `collector` of a failure of the join itself (a bug)

PodKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Sources:
    """What one node reads from. NVML always; the rest where attribution is on."""

    nvml: NvmlSource
    kubelet: Source[None, KubeletDevices] | None = None
    processes: Source[Iterable[int], Mapping[int, str]] | None = None
    cluster: Source[None, ClusterView] | None = None
    engines: Source[Sequence[EngineTarget], Mapping[PodKey, EngineReading | None]] | None = None
    catalog: Catalog = BUILTIN  # the engines recognised: their default ports are tried

    def all(self) -> tuple[Source[Any, Any], ...]:
        return tuple(
            s
            for s in (self.nvml, self.kubelet, self.processes, self.cluster, self.engines)
            if s is not None
        )


@dataclass(frozen=True, slots=True)
class _Answer(Generic[T]):
    value: T
    fresh: bool  # read this collection; else the source's last answer, standing in
    at: float  # monotonic time of the read that gave it


def _fresh(answer: _Answer[Any] | None) -> bool:
    return answer is not None and answer.fresh


class Collection:
    """Owns the sources' lifecycle; publishes one snapshot per collection."""

    def __init__(
        self,
        sources: Sources,
        *,
        node: str,
        publish: Callable[[NodeSnapshot], Awaitable[None] | None],
        rules: Sequence[TenantRule] = (),
        ledger: WasteLedger | None = None,
        work: WorkLedger | None = None,
        energy: EnergyLedger | None = None,
        prices: Sequence[tuple[str, float]] = (),
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._sources = sources
        self._node = node
        self._publish = publish
        self._rules = tuple(rules)
        self._ledger = ledger
        self._work = work if work is not None else WorkLedger()
        self._energy = energy if energy is not None else EnergyLedger()
        self._prices = tuple(prices)
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._last: dict[str, _Answer[Any]] = {}  # source -> its last good answer
        self._health: dict[str, CollectorHealth] = {}
        self._last_success: dict[str, float] = {}  # source -> unix time
        self._errors: Counter[tuple[str, str]] = Counter()  # what the wrapper counted
        self._closed = False
        self.collections = 0

    @property
    def sources(self) -> Sources:
        return self._sources

    @property
    def ready(self) -> bool:
        """True once a first collection has been published."""
        return self.collections > 0

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Collects every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            started = self._monotonic()
            await self.collect_once()
            remaining = interval - (self._monotonic() - started)
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), remaining)

    async def collect_once(self) -> NodeSnapshot:
        sources = self._sources
        started = self._monotonic()
        nvml = await self._read(sources.nvml, None)
        cluster = await self._read(sources.cluster, None)
        kubelet = await self._read(sources.kubelet, None)
        view = cluster.value if cluster is not None else None
        attribution = await self._join(nvml, kubelet, view)
        work = await self._useful_work(attribution, view)
        reading = nvml.value if nvml is not None and nvml.fresh else None
        ledger = self._account(reading, attribution, work, started)
        snapshot = NodeSnapshot(
            node=self._node,
            nvml_up=sources.nvml.up,
            nvml=reading,
            collectors=dict(self._health),
            errors_total=self._error_totals(),
            dropped_series_total=self._dropped_totals(),
            attribution=attribution,
            ledger=ledger,
            metadata_stale=view is not None and (view.stale or not _fresh(cluster)),
            work=work,
            device_hourly_cost=hourly_costs(reading, self._prices) if reading else {},
            device_energy=self._energy.update(reading, started) if reading else self._energy.held(),
        )
        published = self._publish(snapshot)
        if published is not None:
            await published  # the exposition renders in a thread of its own
        self.collections += 1
        return snapshot

    async def close(self) -> None:
        """Closes every source, each waiting at most its timeout. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for source in self._sources.all():
            try:
                await source.close()
            except Exception:  # one source's clean-up must not keep the others open
                log.exception("closing a source failed", collector=source.name)

    # -- the one wrapper every source is read through

    async def _read(self, source: Source[A, T] | None, ask: A) -> _Answer[T] | None:
        """The source's answer, or its last one while it may stand in; None if neither."""
        if source is None:
            return None
        name, started = source.name, self._monotonic()
        try:
            value = await source.read(ask)
        except SourceError as error:
            if error.kind is not None:
                self._errors[(name, error.kind)] += 1
            log.debug("source failed", collector=name, kind=error.kind, error=str(error))
        except Exception:  # a bug in one source must not cost the others
            self._errors[(name, ErrorKind.INTERNAL)] += 1
            log.exception("source failed", collector=name)
        else:
            answer = _Answer(value, fresh=True, at=started)
            self._last[name] = answer
            self._record(name, source.complete, started)
            return answer
        self._record(name, False, started)
        return self._stand_in(source, started)

    def _record(self, name: str, success: bool, started: float) -> None:
        if success:
            self._last_success[name] = self._wall_clock()
        self._health[name] = CollectorHealth(
            success, self._monotonic() - started, self._last_success.get(name)
        )

    def _stand_in(self, source: Source[Any, T], now: float) -> _Answer[T] | None:
        last = self._last.get(source.name)
        if last is None:
            return None
        if now - last.at > source.keep_last:
            log.warning("last answer too old to stand in; going without it",
                        collector=source.name, age_seconds=round(now - last.at))  # fmt: skip
            del self._last[source.name]
            return None
        return _Answer(last.value, fresh=False, at=last.at)

    # -- the join and the accounting

    async def _join(
        self,
        nvml: _Answer[NvmlReading] | None,
        kubelet: _Answer[KubeletDevices] | None,
        cluster: ClusterView | None,
    ) -> Attribution | None:
        if nvml is None or kubelet is None:
            return None
        try:
            if not nvml.fresh:
                return holders_only(nvml.value, kubelet.value, cluster, self._rules)
            pids = await self._read(self._sources.processes, gpu_pids(nvml.value))
            pid_pods = pids.value if pids is not None and pids.fresh else {}
            return attribute(nvml.value, kubelet.value, cluster, self._rules, pid_pods)
        except Exception:  # a bug in the join must not cost the device metrics
            self._errors[(JOIN, ErrorKind.INTERNAL)] += 1
            log.exception("the join failed")
            return None

    async def _useful_work(
        self, attribution: Attribution | None, cluster: ClusterView | None
    ) -> tuple[PodWork, ...]:
        if attribution is None or self._sources.engines is None:
            return ()
        pods = cluster.pods if cluster is not None else {}
        tenants = {(a.namespace, a.pod): a.tenant for a in attribution.allocations}
        targets = targets_for(pods, tenants, self._sources.catalog)
        scraped = await self._read(self._sources.engines, targets)
        if scraped is None:
            return ()
        readings = scraped.value
        holders = ((key, tenants[key], pods[key].start_time) for key in readings)
        return self._work.update(holders, readings, self._wall_clock())

    def _account(
        self,
        reading: NvmlReading | None,
        attribution: Attribution | None,
        work: tuple[PodWork, ...],
        now: float,
    ) -> StateLedger | None:
        if self._ledger is None or attribution is None:
            return None
        if reading is None:
            return self._ledger.held()
        worked = {(w.namespace, w.pod): w.worked for w in work if w.up}
        return self._ledger.update(reading, attribution, now, worked)

    # -- what the snapshot says of the exporter itself

    def _error_totals(self) -> dict[tuple[str, str], int]:
        totals = Counter(self._errors)
        for source in self._sources.all():
            totals.update({(source.name, kind): n for kind, n in source.errors.items()})
        if self._sources.engines is not None:
            totals.update({(ENGINES, kind): n for kind, n in self._work.errors.items()})
        return dict(totals)

    def _dropped_totals(self) -> dict[str, int]:
        dropped: Counter[str] = Counter()
        for source in self._sources.all():
            dropped.update(source.dropped_series)
        if self._work.dropped_series:
            dropped["engine_series_cap"] += self._work.dropped_series
        return dict(dropped)
