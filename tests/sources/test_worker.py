"""exporter/sources/worker.py: a blocking call per thread, never piled up behind a hung one."""

from __future__ import annotations

import asyncio
import threading

import pytest

from exporter.errors import ErrorKind, SourceError
from exporter.sources.worker import Worker


async def test_a_call_runs_in_the_named_thread() -> None:
    worker = Worker("nvml", timeout=5.0)
    assert (await worker.run(lambda: threading.current_thread().name)).startswith("nvml")
    await worker.close()


async def test_a_hung_call_times_out_and_the_next_is_refused_until_it_returns() -> None:
    worker, release = Worker("kubelet", timeout=0.05), threading.Event()
    with pytest.raises(SourceError) as timed_out:
        await worker.run(lambda: release.wait(10))
    assert timed_out.value.kind == ErrorKind.TIMEOUT and worker.busy
    with pytest.raises(SourceError) as refused:
        await worker.run(lambda: 1)
    assert refused.value.kind == ErrorKind.STILL_RUNNING
    release.set()
    for _ in range(200):  # the hung call returns on its own
        if not worker.busy:
            break
        await asyncio.sleep(0.01)
    assert await worker.run(lambda: 2) == 2
    await worker.close()


async def test_close_skips_the_clean_up_while_a_call_hangs() -> None:
    worker, release, cleaned = Worker("proc", timeout=0.05), threading.Event(), []
    with pytest.raises(SourceError):
        await worker.run(lambda: release.wait(10))
    await worker.close(lambda: cleaned.append(1))
    assert cleaned == []  # it would have queued behind the hung call
    release.set()


async def test_a_failing_clean_up_changes_nothing() -> None:
    worker = Worker("nvml", timeout=1.0)

    def broken() -> None:
        raise SourceError("already gone", kind=None)

    await worker.close(broken)
