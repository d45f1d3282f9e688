"""One named thread for a source whose calls block (NVML, the kubelet's gRPC, /proc).

A call that hangs past its timeout is left to finish on its own; until it does, the
next calls are refused with `still_running` instead of piling up threads. Each such
source has a worker of its own, so a wedged driver call cannot hold up the kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import structlog

from exporter.errors import ErrorKind, SourceError

log = structlog.get_logger(component="exporter.sources")

T = TypeVar("T")


class Worker:
    def __init__(self, name: str, timeout: float) -> None:
        self._name = name
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._in_flight: Future[Any] | None = None

    @property
    def busy(self) -> bool:
        """A call is still running (one that timed out, most likely)."""
        return self._in_flight is not None and not self._in_flight.done()

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` in the thread; `SourceError` if the last call still runs or this one
        runs past the timeout."""
        if self.busy:
            log.warning("previous call still running; skipping this one", source=self._name)
            raise SourceError(f"the previous {self._name} call is still running",
                              kind=ErrorKind.STILL_RUNNING)  # fmt: skip
        future = self._executor.submit(fn)
        self._in_flight = future
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._timeout)
        except TimeoutError:
            log.error("call timed out", source=self._name, timeout_seconds=self._timeout)
            raise SourceError(f"{self._name} call timed out after {self._timeout}s",
                              kind=ErrorKind.TIMEOUT) from None  # fmt: skip

    async def close_call(self, fn: Callable[[], object]) -> None:
        """A clean-up call: run unless a hung call still holds the thread; its failure
        changes nothing."""
        if not self.busy:
            with contextlib.suppress(SourceError):
                await self.run(fn)

    async def close(self, last: Callable[[], object] | None = None) -> None:
        """Runs the clean-up `last`, then lets the thread go."""
        if last is not None:
            await self.close_call(last)
        self._executor.shutdown(wait=False, cancel_futures=True)
