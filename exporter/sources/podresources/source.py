"""The kubelet's pod-resources API as a source: the client on a thread of its own.

When the kubelet fails, the collection loop keeps using the last allocations it gave
for `keep_last` seconds: a kubelet restart takes seconds, and pods do not lose their
devices meanwhile. Past that, the snapshot has no attribution and device metrics flow
on without it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from exporter.model import KubeletDevices
from exporter.sources.podresources.client import PodResourcesClient
from exporter.sources.worker import Worker

KEEP_LAST_SECONDS = 300.0


class PodResourcesSource:
    name = "podresources"
    complete = True

    def __init__(
        self, client: PodResourcesClient, *, timeout: float, keep_last: float = KEEP_LAST_SECONDS
    ) -> None:
        self._client = client
        self._worker = Worker("podresources", timeout)
        self.keep_last = keep_last
        self._dropped: Counter[str] = Counter()
        self.errors: Mapping[str, int] = {}  # the client raises each failure: the loop counts

    @property
    def dropped_series(self) -> Mapping[str, int]:
        return self._dropped

    async def read(self, _: None = None, /) -> KubeletDevices:
        return await self._worker.run(self._read)

    async def close(self) -> None:
        await self._worker.close(self._client.close)

    def _read(self) -> KubeletDevices:
        try:
            return self._client.read()
        finally:  # copied here, in the thread that owns the client's counters
            self._dropped = Counter(self._client.dropped)
