"""The watcher's account of itself: errors counted by kind, and the log lines that say
when the API server starts failing, fails for another reason, and answers again.

A failure is retried for as long as it lasts, so each change is logged once, not once
per retry; a malformed object is logged for the first ten and then every thousandth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from exporter.errors import ErrorKind

FORBIDDEN_HINT: Final = (
    "the exporter's ClusterRole needs get/list/watch on pods and namespaces (deploy/rbac.yaml)"
)


class Health:
    """`errors` (kind -> count) is for the exporter's own metrics."""

    def __init__(self, log: Any, wall_clock: Callable[[], float], token_file: str | None) -> None:
        self.errors: Counter[str] = Counter()
        self._log = log
        self._wall_clock = wall_clock
        self._token_file = token_file
        self._stale_since: float | None = None

    def count(self, kind: str) -> None:
        self.errors[kind] += 1

    def decode_error(self, resource: str, exc: Exception) -> None:
        self.count(ErrorKind.DECODE)
        if self.errors[ErrorKind.DECODE] <= 10 or self.errors[ErrorKind.DECODE] % 1000 == 0:
            self._log.warning(
                "skipped a malformed Kubernetes object",
                resource=resource,
                error=str(exc)[:200],
                decode_errors=self.errors[ErrorKind.DECODE],
            )

    def failed(
        self,
        resource: str,
        kind: str,
        message: str,
        *,
        previous: str | None,
        went_stale: bool,
        pods: int,
    ) -> None:
        """An attempt on `resource` failed with `kind`; `previous` is its last failure's
        kind, and `went_stale` says that this failure made the view stale."""
        self.count(kind)
        if kind != previous:
            if kind == ErrorKind.FORBIDDEN:
                self._log.error(
                    f"cannot watch {resource}: forbidden; {FORBIDDEN_HINT}",
                    resource=resource,
                    error=message,
                )
            elif kind == ErrorKind.UNAUTHORIZED:
                self._log.error(
                    "Kubernetes API rejected the exporter's credentials (401 Unauthorized); "
                    "check the service-account token",
                    resource=resource,
                    token_file=self._token_file,
                    error=message,
                )
            elif previous is not None:
                self._log.debug(
                    "Kubernetes API still failing",
                    resource=resource,
                    reason=kind,
                    error=message,
                )
        if went_stale:
            self._stale_since = self._wall_clock()
            self._log.warning(
                "Kubernetes API unreachable; keeping the last known pods"
                if kind == ErrorKind.UNREACHABLE
                else "Kubernetes API failing; keeping the last known pods",
                resource=resource,
                reason=kind,
                error=message,
                pods=pods,
            )

    def recovered(self, *, pods: int, namespaces: int) -> None:
        """Every resource works again: the view is fresh."""
        down = None
        if self._stale_since is not None:
            down = round(self._wall_clock() - self._stale_since, 3)
        self._stale_since = None
        self._log.info(
            "Kubernetes API reachable again; pods re-listed",
            pods=pods,
            namespaces=namespaces,
            stale_seconds=down,
        )
