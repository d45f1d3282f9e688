"""The alerts' data and the pieces every group of them shares: an alert (`Alert`) with
its promtool test case (`Case`), the PromQL selectors and aggregations that keep the
config's job selector and cluster label, and Prometheus durations."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mixin import xids
from mixin.config import Config

Labels = dict[str, str]


@dataclass(frozen=True)
class Case:
    """A promtool test of one alert: `series` (promtool's notation, one sample a minute)
    make its expression non-empty from minute `onset` on; one `for` later it fires with
    `alerts` (labels from the expression, description expanded). `extra`: further
    (minute, alerts) checks."""

    series: Mapping[str, str]
    onset: int
    alerts: Sequence[tuple[Labels, str]]
    extra: Sequence[tuple[int, Sequence[tuple[Labels, str]]]] = ()


@dataclass(frozen=True)
class Alert:
    name: str
    group: str
    expr: str
    for_: str
    severity: str
    fault_domain: xids.FaultDomain
    summary: str
    description: str
    case: Case
    extra_labels: Mapping[str, str] = field(default_factory=dict)


# -- PromQL pieces -------------------------------------------------------------------------


def by(c: Config, *labels: str) -> str:
    """An aggregation's labels: always the cluster's first."""
    return ", ".join([c.cluster_label, *labels] if c.cluster_label else labels)


def sel(c: Config, metric: str, *matchers: str) -> str:
    return f"{metric}{{{', '.join([c.job_selector, *matchers])}}}"


def events(c: Config, metric: str, matchers: Sequence[str], window: str) -> str:
    """New counts of a counter that appears at its first count (XIDs, dropped series):
    an increase in the window, or a series the window did not have yet."""
    s = sel(c, metric, *matchers)
    return f"(increase({s}[{window}]) > 0 or ({s} unless {s} offset {window}))"


def num(value: float) -> str:
    return f"{round(value, 6):g}"


def seconds(duration: str) -> int:
    """A Prometheus duration ("90s", "15m", "1h30m", "1d"), in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if not re.fullmatch(r"(\d+[smhdw])+", duration):
        raise ValueError(f"{duration!r}: not a duration")
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhdw])", duration))


def minutes(duration: str) -> int:
    """A duration in whole minutes (the tests' step), rounded down."""
    return seconds(duration) // 60
