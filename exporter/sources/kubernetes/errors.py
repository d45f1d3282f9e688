"""The failures of one LIST or WATCH attempt that the watcher tells apart.

Each decides what the watcher does next: skip one object (`MalformedError`, also a
`ValueError`, as the conversions raise it), list again (`GoneError`), or back off and
list again, counting the kind (`AttemptError`). The watcher handles all three itself.
"""

from __future__ import annotations

from exporter.errors import GpuworkError


class MalformedError(GpuworkError, ValueError):
    """An object or event without the fields it must have."""


class GoneError(GpuworkError):
    """410: the resourceVersion we asked for is older than the server keeps."""


class AttemptError(GpuworkError):
    """An attempt failed; `kind` is the error kind counted in `ClusterWatcher.errors`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
