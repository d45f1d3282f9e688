"""The Kubernetes API as a source: the pods and namespaces a watch keeps in memory.

The watch runs on its own (`ClusterWatcher.run`); a read only takes its current view,
so it never waits on the API server. While the API server cannot be reached the view
is the last known one, marked stale, and the read is not complete.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from exporter.errors import SourceError
from exporter.model import ClusterView


class ClusterSource:
    name = "kubernetes"
    keep_last = math.inf  # a read that fails (a bug) leaves the last view standing
    dropped_series: Mapping[str, int] = {}

    def __init__(
        self,
        view: Callable[[], ClusterView | None],
        errors: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self._view = view
        self._errors = errors
        self._complete = True

    @property
    def complete(self) -> bool:
        return self._complete

    @property
    def errors(self) -> Mapping[str, int]:
        return self._errors()

    async def read(self, _: None = None, /) -> ClusterView:
        view = self._view()
        if view is None:
            raise SourceError("no pod metadata yet", kind=None)
        self._complete = view.synced and not view.stale
        return view

    async def close(self) -> None:
        """The watch is a task of its own, ended by whoever started it."""
