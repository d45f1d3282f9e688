"""NVML as a source: the reader on a thread of its own, started again when NVML goes away.

When NVML itself is down, `nvmlInit` is retried with exponential backoff (1 s doubling
to 60 s); each collection in between fails at once, without a call, and is not counted
again.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping

import structlog

from exporter.errors import ErrorKind, SourceError
from exporter.model import NvmlReading
from exporter.sources.nvml.library import NvmlDownError
from exporter.sources.nvml.reader import NvmlReader
from exporter.sources.worker import Worker

log = structlog.get_logger(component="exporter.nvml")

INITIAL_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0


class NvmlSource:
    name = "nvml"
    # The devices NVML listed last stand in for the join while it is down: the kubelet's
    # allocations still map onto them. Nothing NVML measured is ever reused.
    keep_last = math.inf
    complete = True  # a GPU that fails is counted in `errors`, the rest is read

    def __init__(
        self,
        reader: NvmlReader,
        *,
        timeout: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._worker = Worker("nvml", timeout)
        self._monotonic = monotonic
        self._up = False
        self._next_start = 0.0
        self._backoff = INITIAL_BACKOFF_SECONDS
        self._errors: Counter[str] = Counter()  # copied from the reader between reads
        self._dropped: Counter[str] = Counter()

    @property
    def up(self) -> bool:
        """NVML is initialized and answered its last read."""
        return self._up

    @property
    def errors(self) -> Mapping[str, int]:
        return self._errors

    @property
    def dropped_series(self) -> Mapping[str, int]:
        return self._dropped

    async def read(self, _: None = None, /) -> NvmlReading:
        if self._worker.busy:  # a timed-out call still holds the thread
            log.warning("previous NVML collection still running; skipping this one")
            raise SourceError("previous NVML collection still running; skipping this one",
                              kind=ErrorKind.STILL_RUNNING)  # fmt: skip
        if not self._up:
            await self._start()
        try:
            return await self._worker.run(self._reader.read)
        except NvmlDownError as error:
            log.error("NVML went away; will initialize again", error=str(error))
            self._up = False
            await self._worker.close_call(self._reader.stop)
            self._next_start = self._monotonic()  # first retry at the next collection
            raise
        finally:
            self._copy_counters()

    async def close(self) -> None:
        await self._worker.close(self._reader.stop)

    async def _start(self) -> None:
        now = self._monotonic()
        if now < self._next_start:
            raise SourceError("NVML is down; waiting to initialize it again", kind=None)
        try:
            await self._worker.run(self._reader.start)
        except SourceError as error:  # NvmlDownError, or the call timed out
            self._next_start = now + self._backoff
            log.error("cannot initialize NVML", error=str(error), retry_in_seconds=self._backoff)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)
            raise SourceError(f"cannot initialize NVML: {error}",
                              kind=ErrorKind.NVML_INIT) from error  # fmt: skip
        self._up = True
        self._backoff = INITIAL_BACKOFF_SECONDS

    def _copy_counters(self) -> None:
        # Only while no call runs: the worker thread owns the reader's counters.
        if not self._worker.busy:
            self._errors = Counter(self._reader.errors)
            self._dropped = Counter(self._reader.dropped_series)
