"""The engines as a source: scrape the engines of the pods holding devices.

Every such pod that has an IP is scraped; a pod whose answer is no known engine (a
batch job, a notebook) simply has no reading, and the waste ledger judges it by its
SM activity instead. What the readings mean over time (counters mirrored, glitches
held) is the accounting's job: `exporter.accounting.useful_work`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from exporter.errors import ErrorKind, http_status_kind
from exporter.model import EngineReading
from exporter.sources.engines.scraper import EngineScraper, EngineTarget

PodKey = tuple[str, str]  # (namespace, pod)

# What a pod that runs no engine answers on the ports tried (nothing, a 404, another
# exporter's metrics, a web page): not an error until it has served as an engine.
NOT_AN_ENGINE = frozenset(
    {
        ErrorKind.CONNECTION,
        http_status_kind(404),
        ErrorKind.UNKNOWN_ENGINE,
        ErrorKind.NOT_METRICS,
    }
)
ENGINE_SERIES_CAP = "engine_series_cap"


class EngineSource:
    """Event-loop only. A read is complete when every engine that answered before
    answered again."""

    name = "engines"
    keep_last = 0.0  # the useful-work ledger keeps each series through a failed scrape

    def __init__(self, scraper: EngineScraper) -> None:
        self._scraper = scraper
        self._engines: set[PodKey] = set()  # pods that have answered as an engine
        self._errors: Counter[str] = Counter()  # kind -> count since start
        self._dropped: Counter[str] = Counter()  # series a parser cap left out
        self._complete = True

    @property
    def complete(self) -> bool:
        return self._complete

    @property
    def errors(self) -> Mapping[str, int]:
        """Failed scrapes and lines not read, by kind, since start."""
        return self._errors

    @property
    def dropped_series(self) -> Mapping[str, int]:
        return self._dropped

    async def read(self, targets: Sequence[EngineTarget], /) -> dict[PodKey, EngineReading | None]:
        """Each target's reading, None where its scrape failed."""
        results = await self._scraper.scrape(targets)
        self._engines &= {(t.namespace, t.pod) for t in targets}
        readings: dict[PodKey, EngineReading | None] = {}
        self._complete = True
        for result in results:
            key = (result.target.namespace, result.target.pod)
            readings[key] = result.reading
            if result.error is not None:
                known = key in self._engines
                self._complete &= not known
                if known or result.error not in NOT_AN_ENGINE:
                    self._errors[result.error] += 1
            if result.reading is not None:
                self._engines.add(key)
                self._errors.update(result.reading.problem_counts)
                if result.reading.dropped_series:
                    self._dropped[ENGINE_SERIES_CAP] += result.reading.dropped_series
        return readings

    async def close(self) -> None:
        await self._scraper.close()
