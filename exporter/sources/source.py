"""The one shape every source has, as the collection loop sees it.

The loop reads each source through one wrapper (`exporter.collection`), as
node_exporter's `execute()` runs each collector: it times the read, records its
success, counts a failure by kind, and carries on with whatever the other sources
answered. A source never sees another's failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeVar

Ask = TypeVar("Ask", contravariant=True)
Answer = TypeVar("Answer", covariant=True)


class Source(Protocol[Ask, Answer]):
    """One place the exporter reads from.

    `read` answers one collection, or raises `SourceError` (its `kind` is counted) when
    the source as a whole cannot answer; anything else it raises is counted as
    `internal`. Failures of a part (one GPU, one engine, one line) do not fail the read:
    the source counts them itself in `errors`, and says in `complete` that the read
    answered only in part.
    """

    @property
    def name(self) -> str:
        """The `collector` label of its health and error series."""
        ...

    @property
    def keep_last(self) -> float:
        """Seconds the last answer stands in when a read fails (0: never)."""
        ...

    @property
    def complete(self) -> bool:
        """Whether the last read answered in full."""
        ...

    @property
    def errors(self) -> Mapping[str, int]:
        """Failures of a part, by kind, since start."""
        ...

    @property
    def dropped_series(self) -> Mapping[str, int]:
        """Series left out by a cap, by reason, since start."""
        ...

    async def read(self, ask: Ask, /) -> Answer: ...

    async def close(self) -> None: ...
