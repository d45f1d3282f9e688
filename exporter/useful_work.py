"""Useful work: each engine's counters made continuous, with tenant identity, per pod.

Engine counters restart at 0 with their process. The exporter's own counters must
not: a counter that drops (or an engine whose process start time changed) is taken
as a restart, and everything it counted since is added to the exporter's total.
Tokens served between the last scrape before a restart and the restart itself are
gone with the process; nothing can count them. The first time a pod is seen, the
exporter's totals start at the engine's own values, so the two agree until the
engine first restarts.

A pod's series stay while the pod holds a device, even while its engine cannot be
scraped (the totals then stand still), and go at the next collection after it ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exporter.model import EngineReading, ModelStats, ModelWork, PodWork

_PodKey = tuple[str, str]  # (namespace, pod)
_COUNTERS = ("prompt_tokens", "generation_tokens", "requests_finished", "preemptions")


@dataclass
class _Counter:
    raw: float
    total: float

    def advance(self, raw: float, restarted: bool) -> None:
        self.total += raw if restarted or raw < self.raw else raw - self.raw
        self.raw = raw


@dataclass
class _PodState:
    engine: str = ""
    process_start: float | None = None
    counters: dict[tuple[str, str], _Counter] = field(default_factory=dict)  # (model, name)
    last: EngineReading | None = None
    up: bool = False
    awaiting_first_token: bool = False
    cold_start: float | None = None


class WorkLedger:
    """Keeps the continuous counters of every engine pod. One caller, one thread."""

    def __init__(self, *, histograms: bool = True) -> None:
        self._pods: dict[_PodKey, _PodState] = {}
        self._histograms = histograms  # off: latency histograms are not kept at all

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
            served = any(c.total > 0 for (_, name), c in state.counters.items() if
                         name == "generation_tokens")  # fmt: skip
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
        restarted = (
            state.process_start is not None
            and reading.process_start_time is not None
            and reading.process_start_time != state.process_start
        )
        worked = False
        seen = set()
        for stats in reading.models:
            for name in _COUNTERS:
                raw = getattr(stats, name)
                if raw is None:
                    continue
                seen.add((stats.model, name))
                counter = state.counters.get((stats.model, name))
                if counter is None:
                    state.counters[(stats.model, name)] = _Counter(raw, raw)
                    continue
                before = counter.total
                counter.advance(raw, restarted)
                worked |= name.endswith("_tokens") and counter.total > before
            worked |= (stats.requests_running or 0) > 0
        for stale in [k for k in state.counters if k not in seen]:  # a model no longer served
            del state.counters[stale]
        state.engine, state.process_start, state.last = (
            reading.engine,
            reading.process_start_time,
            reading,
        )
        return worked

    def _pod_work(
        self, key: _PodKey, tenant: str, state: _PodState, worked: bool | None
    ) -> PodWork:
        assert state.last is not None
        models = tuple(
            _model_work(stats, state.counters, state.up, self._histograms)
            for stats in state.last.models
        )
        return PodWork(key[0], key[1], tenant, state.engine, state.up, models, worked,
                       state.cold_start)  # fmt: skip


def _model_work(
    stats: ModelStats, counters: Mapping[tuple[str, str], _Counter], up: bool, histograms: bool
) -> ModelWork:
    """Counters from the ledger; gauges only from a scrape that just succeeded."""

    def total(name: str) -> float | None:
        counter = counters.get((stats.model, name))
        return counter.total if counter is not None else None

    return ModelWork(
        model=stats.model,
        prompt_tokens_total=total("prompt_tokens") or 0.0,
        generation_tokens_total=total("generation_tokens") or 0.0,
        requests_finished_total=total("requests_finished"),
        preemptions_total=total("preemptions"),
        requests_running=stats.requests_running if up else None,
        requests_waiting=stats.requests_waiting if up else None,
        kv_cache_usage_ratio=stats.kv_cache_usage_ratio if up else None,
        time_to_first_token_seconds=stats.time_to_first_token_seconds if histograms else None,
        inter_token_latency_seconds=stats.inter_token_latency_seconds if histograms else None,
    )
