"""The engine source of one collection: scrape the GPU pods, keep their useful work.

Every pod that holds a device and has an IP is scraped; a pod whose answer is no known
engine (a batch job, a notebook) simply has no useful-work series, and the ledger
judges it by its SM activity instead.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from exporter.accounting.useful_work import WorkLedger
from exporter.model import Attribution, ClusterView, CollectorHealth, EngineReading, PodWork
from exporter.sources.engines.scraper import EngineScraper, targets_for

# What a pod that runs no engine answers: not an error until it has served as an engine.
NOT_AN_ENGINE = frozenset({"connection", "http_404", "unknown_engine"})


class EngineSource:
    """Scrapes the engines of the pods holding devices; event-loop only."""

    def __init__(
        self,
        scraper: EngineScraper,
        *,
        histograms: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._scraper = scraper
        self._work = WorkLedger(histograms=histograms)
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._last_success: float | None = None
        self._scrape_errors: Counter[str] = Counter()  # error kind -> count since start
        self._dropped = 0  # engine series a parser cap left out, since start

    async def collect(
        self, attribution: Attribution, cluster: ClusterView | None
    ) -> tuple[tuple[PodWork, ...], CollectorHealth]:
        started = self._monotonic()
        pods = cluster.pods if cluster is not None else {}
        tenants = {(a.namespace, a.pod): a.tenant for a in attribution.allocations}
        results = await self._scraper.scrape(targets_for(pods, tenants))
        readings: dict[tuple[str, str], EngineReading | None] = {}
        for result in results:
            key = (result.target.namespace, result.target.pod)
            readings[key] = result.reading
            known = self._work.knows(key)
            if result.error is not None and (known or result.error not in NOT_AN_ENGINE):
                self._scrape_errors[result.error] += 1
            if result.reading is not None:
                self._scrape_errors.update(result.reading.problem_counts)
                self._dropped += result.reading.dropped_series
        now = self._wall_clock()
        work = self._work.update(
            ((key, tenants[key], pods[key].start_time) for key in readings), readings, now
        )
        failed = any(not w.up for w in work)
        if not failed:
            self._last_success = now
        health = CollectorHealth(not failed, self._monotonic() - started, self._last_success)
        return work, health

    @property
    def errors(self) -> Counter[str]:
        """Error kind -> count since start: failed scrapes, lines not read, counter dips."""
        return self._scrape_errors + self._work.errors

    @property
    def dropped_series(self) -> int:
        """Engine series left out by a cap (parser or ledger), since start."""
        return self._dropped + self._work.dropped_series

    async def close(self) -> None:
        await self._scraper.close()
