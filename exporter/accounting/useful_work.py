"""Useful work: each engine's counters, series by series, as Prometheus can count them.

The counter model is *mirroring*: every engine series (a rank, a finish reason) is
exported as its own series with the engine's own value. Prometheus's `increase()` and
`rate()` then see exactly what the engine counted, and handle its restarts as the
resets they are. Nothing depends on the exporter's memory, so a restarted exporter
exports the same values as the one before it; totals held in memory could not do that
(a new exporter would start them at the engine's value, and read as a reset, count
everything again). Sums across series are left to PromQL, after `increase()`, so one
rank's reset is never hidden in a sum.

What the mirror does not pass through:
- a series missing from one scrape keeps its last value (not a reset, not a gap);
- a counter that falls while the engine's process start time is unchanged is a glitch,
  not a restart: the exported value holds until the engine's passes it again, so a dip
  never reads as a reset (counted as `counter_dip`). A fall with a new start time is a
  restart, and so is any fall of an engine that serves no start time (SGLang, TGI,
  trtllm-serve, vLLM in multiprocess mode): their counters only fall when their
  process restarts, and a restart is what Prometheus must see.

A pod's series stay while the pod holds a device, even while its engine cannot be
scraped, and go at the next collection after it ends. Latency histograms are mirrored
the same way, each series as the engine last served it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exporter.errors import ErrorKind
from exporter.model import EngineReading, Histogram, ModelReading, ModelWork, PodWork, SeriesKey

_PodKey = tuple[str, str]  # (namespace, pod)
_TOKENS = ("prompt_tokens", "generation_tokens")
MAX_SERIES_PER_POD = 2_000  # counter and histogram series kept per pod
COUNTER_DIP = ErrorKind.COUNTER_DIP


@dataclass(slots=True)
class _Mirror:
    """One engine counter series: what is exported, and what the engine said last."""

    exported: float
    process_start: float | None  # of the process that served it last
    dipping: bool = False  # below `exported` without a restart: a glitch, held


@dataclass
class _PodState:
    engine: str = ""
    counters: dict[tuple[str, SeriesKey], _Mirror] = field(default_factory=dict)  # (model, key)
    histograms: dict[tuple[str, SeriesKey], Histogram] = field(default_factory=dict)
    last: EngineReading | None = None
    up: bool = False
    awaiting_first_token: bool = False
    cold_start: float | None = None

    def full(self) -> bool:
        """Whether the pod keeps as many series as it may (MAX_SERIES_PER_POD)."""
        return len(self.counters) + len(self.histograms) >= MAX_SERIES_PER_POD


class WorkLedger:
    """Keeps the mirrored series of every engine pod. One caller, one thread."""

    def __init__(self, *, histograms: bool = True) -> None:
        self._pods: dict[_PodKey, _PodState] = {}
        self._histograms = histograms  # off: latency histograms are not kept at all
        self.errors: Counter[str] = Counter()  # counter_dip -> count since start
        self.dropped_series = 0  # series not kept: MAX_SERIES_PER_POD reached

    def knows(self, key: _PodKey) -> bool:
        """Whether the pod's engine has ever answered."""
        state = self._pods.get(key)
        return state is not None and state.last is not None

    def update(
        self,
        pods: Iterable[tuple[_PodKey, str, float | None]],
        readings: Mapping[_PodKey, EngineReading | None],
        now: float,
    ) -> tuple[PodWork, ...]:
        """`pods`: (key, tenant, pod start time) of every engine pod holding a device now;
        `readings`: the scrape of each, None when it failed; `now`: unix seconds."""
        work = []
        live = set()
        for key, tenant, started in pods:
            live.add(key)
            state = self._pods.setdefault(key, _PodState())
            is_new = state.last is None and not state.awaiting_first_token
            reading = readings.get(key)
            worked = self._advance(state, reading) if reading is not None else None
            state.up = reading is not None
            served = any(
                mirror.exported > 0
                for (_, (name, _)), mirror in state.counters.items()
                if name == "generation_tokens"
            )
            if is_new and not served:
                state.awaiting_first_token = True
            elif state.awaiting_first_token and served:
                state.awaiting_first_token = False
                if started is not None:
                    state.cold_start = max(now - started, 0.0)
            if state.last is not None:
                work.append(self._pod_work(key, tenant, state, worked))
        for gone in [key for key in self._pods if key not in live]:
            del self._pods[gone]
        return tuple(work)

    def _advance(self, state: _PodState, reading: EngineReading) -> bool:
        """Mirror one reading; whether the engine did work since the last one."""
        start = reading.process_start_time
        worked = False
        for stats in reading.models:
            for key, raw in stats.counters.items():
                mirror = state.counters.get((stats.model, key))
                if mirror is None:
                    if state.full():
                        self.dropped_series += 1
                        continue
                    state.counters[(stats.model, key)] = _Mirror(raw, start)
                    continue
                before = mirror.exported
                reset = raw < before and _restarted(mirror.process_start, start)
                if raw >= before or reset:
                    mirror.exported, mirror.dipping = raw, False
                elif not mirror.dipping:  # held until the engine's value passes it again
                    mirror.dipping = True
                    self.errors[COUNTER_DIP] += 1
                mirror.process_start = start
                if key[0] in _TOKENS:
                    worked |= mirror.exported > before or (reset and raw > 0)
            worked |= (stats.requests_running or 0) > 0
            if self._histograms:
                self._keep_histograms(state, stats)
        state.engine, state.last = reading.engine, reading
        return worked

    def _keep_histograms(self, state: _PodState, stats: ModelReading) -> None:
        for key, histogram in stats.histograms.items():
            slot = (stats.model, key)
            if slot not in state.histograms and state.full():
                self.dropped_series += 1
                continue
            state.histograms[slot] = histogram

    def _pod_work(
        self, key: _PodKey, tenant: str, state: _PodState, worked: bool | None
    ) -> PodWork:
        assert state.last is not None
        gauges = {stats.model: stats for stats in state.last.models} if state.up else {}
        models = sorted(
            {model for model, _ in state.counters}
            | {model for model, _ in state.histograms}
            | set(gauges)
        )
        work = tuple(_model_work(model, state, gauges.get(model)) for model in models)
        return PodWork(key[0], key[1], tenant, state.engine, state.up, work, worked,
                       state.cold_start)  # fmt: skip


def _restarted(before: float | None, now: float | None) -> bool:
    """Whether a fall of a counter is a restart: a new process start time, or no start
    time to tell a restart from a glitch (then a restart, the only cause seen in practice)."""
    return before is None or now is None or before != now


def _model_work(model: str, state: _PodState, gauges: ModelReading | None) -> ModelWork:
    """Counters and histograms from the mirror; gauges only from a scrape that just
    succeeded."""
    return ModelWork(
        model=model,
        counters={key: m.exported for (name, key), m in state.counters.items() if name == model},
        histograms={key: h for (name, key), h in state.histograms.items() if name == model},
        requests_running=gauges.requests_running if gauges is not None else None,
        requests_waiting=gauges.requests_waiting if gauges is not None else None,
        kv_cache_usage_ratio=gauges.kv_cache_usage_ratio if gauges is not None else None,
    )
