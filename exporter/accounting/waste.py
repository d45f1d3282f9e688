"""The waste ledger: every device's time, split by state and holder, in GPU-seconds.

After each collection, each holder of a device (a pod, with its share) is in one
state, judged over a trailing window so that a single quiet interval does not flip
a serving pod to idle:

- `allocated_no_process`: none of the pod's processes runs on the device now;
- an inference engine pod that could be scraped is `busy` when its engine served a
  token or ran a request in the window, else `allocated_idle`, whatever the SM
  counter says: tokens are the work, kernels are not;
- otherwise `busy`: its activity, averaged over the window (weighted by interval length), is at
  or above the busy threshold; a device with no activity signal (A100 MIG) counts a
  running process as busy, because idleness cannot be proven from it;
- `allocated_idle`: a process runs, below the threshold.

The interval since the previous collection is charged to the state judged now:
interval * the device's GPU fraction * the holder's share, so one increase() of the
counter is GPU-seconds. What no pod holds is charged to `unallocated` with empty
tenant, namespace and pod. An interval is capped at `max_step` so that a long NVML
outage is not charged to whatever state follows it.

Holders and devices that are gone lose their series at the next update; every state of
a live holder is kept from its first update on, at zero, so that `increase()` sees a
series start at 0 rather than missing its first increment. While NVML is down nothing is
charged, and the totals stand as they are (`held`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import TypeVar

from exporter.model import (
    Attribution,
    DeviceState,
    Holding,
    NvmlReading,
    StateLedger,
    StateSignal,
)

_HOLDER_STATES = (DeviceState.ALLOCATED_NO_PROCESS, DeviceState.ALLOCATED_IDLE, DeviceState.BUSY)
_RANK = {state: rank for rank, state in enumerate((DeviceState.UNALLOCATED, *_HOLDER_STATES))}
_MIN_WEIGHT = 1e-9  # the first sample has no interval behind it; it still counts alone

_Holder = tuple[str, str, str, str]  # (device, tenant, namespace, pod)
_Key = tuple[str, DeviceState, str, str, str]  # (device, state, tenant, namespace, pod)
_S = TypeVar("_S", tuple[float, float, float], tuple[float, bool])  # a window's sample


class WasteLedger:
    """Accumulates state seconds across collections. One caller, one thread."""

    def __init__(self, *, window: float, busy_threshold: float, max_step: float) -> None:
        self._window = window
        self._busy_threshold = busy_threshold
        self._max_step = max_step
        self._last: float | None = None
        self._samples: dict[_Holder, deque[tuple[float, float, float]]] = {}  # (t, weight, act)
        self._worked: dict[_Holder, deque[tuple[float, bool]]] = {}  # (t, engine worked)
        self._seconds: dict[_Key, float] = {}

    def update(
        self,
        reading: NvmlReading,
        attribution: Attribution,
        now: float,
        engine_work: Mapping[tuple[str, str], bool | None] | None = None,
    ) -> StateLedger:
        """Charges the interval since the previous update; returns states and totals.

        `engine_work`: per (namespace, pod), whether its engine served a token or ran a
        request since the last update; None or absent where no engine was scraped."""
        engine_work = engine_work or {}
        signals = dict(attribution.signals)
        step = 0.0 if self._last is None else min(max(now - self._last, 0.0), self._max_step)
        self._last = now
        fractions = {
            d.device: d.gpu_fraction for gpu in reading.gpus if not gpu.lost for d in gpu.devices
        }
        states = dict.fromkeys(fractions, DeviceState.UNALLOCATED)
        held = dict.fromkeys(fractions, 0.0)
        live: set[_Holder] = set()
        for holding in attribution.holdings:
            if holding.device not in fractions:
                continue
            holder = (holding.device, holding.tenant, holding.namespace, holding.pod)
            live.add(holder)
            worked = engine_work.get((holding.namespace, holding.pod))
            if worked is not None and holding.processes > 0:
                state = self._judge_engine(holder, worked, now)
                signals[holding.device] = StateSignal.ENGINE
            else:
                state = self._judge(holder, holding, now, step)
            if _RANK[state] > _RANK[states[holding.device]]:
                states[holding.device] = state
            held[holding.device] += holding.share
            for kept in _HOLDER_STATES:  # every state of a holder starts at 0
                self._charge(_key(holder, kept), 0.0)
            self._charge(_key(holder, state), step * fractions[holding.device] * holding.share)
        for device, fraction in fractions.items():
            free = max(1.0 - held[device], 0.0)
            nobody = (device, "", "", "")
            live.add(nobody)
            self._charge(_key(nobody, DeviceState.UNALLOCATED), step * fraction * free)
        self._forget(live)
        return StateLedger(device_states=states, signals=signals, seconds=dict(self._seconds))

    def held(self) -> StateLedger:
        """The totals so far, while no state can be judged (NVML is down): no device's
        state now, every counted second kept."""
        return StateLedger(device_states={}, signals={}, seconds=dict(self._seconds))

    def _judge(self, holder: _Holder, holding: Holding, now: float, step: float) -> DeviceState:
        if holding.processes == 0:
            return DeviceState.ALLOCATED_NO_PROCESS
        if holding.activity is None:
            return DeviceState.BUSY
        samples = self._recent(self._samples, holder, (now, max(step, _MIN_WEIGHT),
                                                       holding.activity))  # fmt: skip
        mean = _weighted_mean(samples)
        return DeviceState.BUSY if mean >= self._busy_threshold else DeviceState.ALLOCATED_IDLE

    def _judge_engine(self, holder: _Holder, worked: bool, now: float) -> DeviceState:
        window = self._recent(self._worked, holder, (now, worked))
        return DeviceState.BUSY if any(w for _, w in window) else DeviceState.ALLOCATED_IDLE

    def _recent(self, windows: dict[_Holder, deque[_S]], holder: _Holder, sample: _S) -> deque[_S]:
        """The holder's window with `sample` (taken now) added and what fell out dropped."""
        window = windows.setdefault(holder, deque())
        window.append(sample)
        while window[0][0] <= sample[0] - self._window:
            window.popleft()
        return window

    def _charge(self, key: _Key, seconds: float) -> None:
        self._seconds[key] = self._seconds.get(key, 0.0) + seconds

    def _forget(self, live: set[_Holder]) -> None:
        for key in [k for k in self._seconds if (k[0], *k[2:]) not in live]:
            del self._seconds[key]
        for windows in (self._samples, self._worked):
            for holder in [h for h in windows if h not in live]:
                del windows[holder]


def _key(holder: _Holder, state: DeviceState) -> _Key:
    device, tenant, namespace, pod = holder
    return device, state, tenant, namespace, pod


def _weighted_mean(samples: Iterable[tuple[float, float, float]]) -> float:
    total = weight = 0.0
    for _, w, value in samples:
        total += w * value
        weight += w
    return total / weight
