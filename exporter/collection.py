"""The background collection loop: reads NVML on a timer and publishes snapshots.

NVML calls block, so they run in one named worker thread under
`asyncio.wait_for`; so does attribution (kubelet gRPC, /proc), right after NVML,
with the cluster metadata the event loop keeps. A read that hangs past its timeout
is left to finish on its own; until it does, later cycles report `still_running`
instead of piling up threads. When NVML itself is down, `nvmlInit` is retried with exponential
backoff while every cycle still publishes a snapshot saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import structlog

from exporter.accounting.cost import hourly_costs
from exporter.accounting.waste import WasteLedger
from exporter.join.attributor import AttributionResult, Attributor
from exporter.model import (
    Attribution,
    ClusterView,
    CollectorHealth,
    NodeSnapshot,
    NvmlReading,
    PodWork,
    StateLedger,
)
from exporter.sources.engines.source import EngineSource
from exporter.sources.nvml.reader import NvmlDownError, NvmlReader

log = structlog.get_logger(component="exporter.collection")

T = TypeVar("T")

NVML = "nvml"
PODRESOURCES = "podresources"
KUBERNETES = "kubernetes"
ENGINES = "engines"
INITIAL_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0


class Collection:
    """Owns the NVML reader's thread and lifecycle; publishes one snapshot per cycle."""

    def __init__(
        self,
        reader: NvmlReader,
        *,
        node: str,
        publish: Callable[[NodeSnapshot], Awaitable[None] | None],
        timeout: float,
        attributor: Attributor | None = None,
        ledger: WasteLedger | None = None,
        engines: EngineSource | None = None,
        cluster: Callable[[], ClusterView | None] = lambda: None,
        cluster_errors: Callable[[], Counter[str]] = Counter,
        prices: Sequence[tuple[str, float]] = (),
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._reader = reader
        self._attributor = attributor
        self._ledger = ledger
        self._engines = engines
        self._engines_health: CollectorHealth | None = None
        self._cluster = cluster
        self._cluster_errors = cluster_errors
        self._prices = tuple(prices)
        self._node = node
        self._publish = publish
        self._timeout = timeout
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nvml")
        self._in_flight: Future[Any] | None = None
        self._nvml_up = False
        self._next_start_attempt = 0.0
        self._backoff = INITIAL_BACKOFF_SECONDS
        self._errors: Counter[str] = Counter()  # kinds this loop sees itself
        self._reader_errors: Counter[str] = Counter()  # copied from the reader between reads
        self._reader_dropped: Counter[str] = Counter()
        self._attributed: AttributionResult | None = None  # the last one, for its counters
        self._last_success: float | None = None
        self._closed = False
        self.collections = 0

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
        started = self._monotonic()
        reading = await self._read_nvml()
        duration = self._monotonic() - started
        if reading is not None:
            self._last_success = self._wall_clock()
        cluster = self._cluster()
        attributed = await self._attribute(reading, cluster)
        work: tuple[PodWork, ...] = ()
        ledger = None
        attribution = attributed.attribution if attributed is not None else None
        if reading is not None and attribution is not None:
            work = await self._scrape_engines(attribution, cluster)
            if self._ledger is not None:
                worked = {(w.namespace, w.pod): w.worked for w in work if w.up}
                ledger = self._ledger.update(reading, attribution, started, worked)
        snapshot = self._snapshot(reading, CollectorHealth(reading is not None, duration,
                                                           self._last_success),
                                  attributed, cluster, ledger, work)  # fmt: skip
        published = self._publish(snapshot)
        if published is not None:
            await published  # the exposition renders in a thread of its own
        self.collections += 1
        return snapshot

    async def close(self) -> None:
        """Shuts NVML down, waiting at most one timeout for a hung call. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._in_flight is None or self._in_flight.done():
            await self._in_worker(self._reader.stop)
            if self._attributor is not None:
                await self._in_worker(self._attributor.close)
        if self._engines is not None:
            await self._engines.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _read_nvml(self) -> NvmlReading | None:
        if self._in_flight is not None and not self._in_flight.done():
            self._errors["still_running"] += 1
            log.warning("previous NVML collection still running; skipping this one")
            return None
        if not self._nvml_up and not await self._try_start():
            return None
        try:
            return await self._in_worker(self._reader.read)
        except NvmlDownError as error:
            self._errors["nvml_down"] += 1
            log.error("NVML went away; will initialize again", error=str(error))
            self._nvml_up = False
            await self._in_worker(self._reader.stop)
            self._next_start_attempt = self._monotonic()  # first retry at the next cycle
        except TimeoutError:
            self._errors["timeout"] += 1
            log.error("NVML collection timed out", timeout_seconds=self._timeout)
        except Exception:  # a bug in the reader must not stop the exporter
            self._errors["internal"] += 1
            log.exception("NVML collection failed")
        finally:
            self._copy_reader_counters()
        return None

    async def _attribute(
        self, reading: NvmlReading | None, cluster: ClusterView | None
    ) -> AttributionResult | None:
        """Attribution for this reading; None without a reading or an attributor."""
        attributor = self._attributor
        if attributor is None or reading is None:
            return None
        try:
            result = await self._in_worker(lambda: attributor.collect(reading, cluster))
        except TimeoutError:
            self._errors["attribution_timeout"] += 1
            log.error("attribution timed out", timeout_seconds=self._timeout)
            return None
        except Exception:  # a bug in the join must not cost the device metrics
            self._errors["attribution_internal"] += 1
            log.exception("attribution failed")
            return None
        self._attributed = result
        return result

    async def _scrape_engines(
        self, attribution: Attribution, cluster: ClusterView | None
    ) -> tuple[PodWork, ...]:
        if self._engines is None:
            return ()
        try:
            work, self._engines_health = await self._engines.collect(attribution, cluster)
        except Exception:  # a bug in the engine side must not cost the device metrics
            self._errors["engines_internal"] += 1
            log.exception("engine scraping failed")
            return ()
        return work

    async def _try_start(self) -> bool:
        now = self._monotonic()
        if now < self._next_start_attempt:
            return False
        try:
            await self._in_worker(self._reader.start)
        except (NvmlDownError, TimeoutError) as error:
            self._errors["nvml_init"] += 1
            self._next_start_attempt = now + self._backoff
            log.error("cannot initialize NVML", error=str(error) or "timed out",
                      retry_in_seconds=self._backoff)  # fmt: skip
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)
            return False
        self._nvml_up = True
        self._backoff = INITIAL_BACKOFF_SECONDS
        return True

    async def _in_worker(self, fn: Callable[[], T]) -> T:
        future = self._executor.submit(fn)
        self._in_flight = future
        return await asyncio.wait_for(asyncio.wrap_future(future), self._timeout)

    def _copy_reader_counters(self) -> None:
        # Only while no read runs: the worker thread owns the reader's counters.
        if self._in_flight is None or self._in_flight.done():
            self._reader_errors = Counter(self._reader.errors)
            self._reader_dropped = Counter(self._reader.dropped_series)

    def _snapshot(
        self,
        reading: NvmlReading | None,
        health: CollectorHealth,
        attributed: AttributionResult | None,
        cluster: ClusterView | None,
        ledger: StateLedger | None,
        work: tuple[PodWork, ...],
    ) -> NodeSnapshot:
        errors = {(NVML, kind): n for kind, n in (self._reader_errors + self._errors).items()}
        collectors = {NVML: health}
        dropped = Counter(self._reader_dropped)
        if self._attributed is not None:
            collectors[PODRESOURCES] = self._attributed.kubelet
            errors |= self._attributed.errors
            dropped.update(self._attributed.dropped_series)
        errors |= {(KUBERNETES, kind): n for kind, n in self._cluster_errors().items()}
        if self._engines is not None:
            if self._engines_health is not None:
                collectors[ENGINES] = self._engines_health
            errors |= {(ENGINES, kind): n for kind, n in self._engines.errors.items()}
            if self._engines.dropped_series:
                dropped["engine_series_cap"] += self._engines.dropped_series
        return NodeSnapshot(
            node=self._node,
            nvml_up=self._nvml_up,
            nvml=reading,
            collectors=collectors,
            errors_total=errors,
            dropped_series_total=dict(dropped),
            attribution=attributed.attribution if attributed else None,
            ledger=ledger,
            metadata_stale=cluster is not None and cluster.stale,
            work=work,
            device_hourly_cost=hourly_costs(reading, self._prices) if reading else {},
        )
