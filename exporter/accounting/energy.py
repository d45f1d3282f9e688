"""Energy per device since the exporter started: measured for whole GPUs, split for MIG.

A whole GPU's energy is NVML's own counter (`nvmlDeviceGetTotalEnergyConsumption`):
the ledger adds up how much it moved between collections, so the total is exact. The
counter starts again at 0 when the driver reloads; a fall is taken as that restart and
the new value (energy since the reload) is counted, never a negative step.

NVML has no energy counter per MIG instance, so a MIG GPU's energy over each interval
is split among its instances (`split_energy`):

- the idle share, the GPU's idle power x the interval, goes to each instance by its GPU
  fraction (slices / slots): idle power is drawn whatever runs, and a slice holds its
  part of it. Free slices' idle share goes to no instance;
- the rest goes by measured activity, SM activity x GPU fraction (as Kepler splits a
  GPU's power among processes by their utilization), or by fraction when no instance
  was active.

The GPU's idle power (`IdlePower`) is measured on the GPU itself, not configured: the
intercept of a least-squares line of its mean power in each interval against its load
then (its instances' SM activity weighted by fraction, from GPM), so it needs no idle
moment, only some variation of load. It is held between 0 and the lowest mean power
seen in any interval; until the load has varied enough to fit a line (5 % of the GPU
between the least and the most loaded interval), that lowest power stands in, which
over-states idle power on a GPU that has not idled since the exporter started.

The split cannot be made where an instance's activity is unknown (no GPM: A100; a GPM
sample missing; the first collection, or the first after a counter restart); that
interval's energy then goes to no instance, and a GPU without GPM has no instance
series at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.model import ActivitySource, DeviceEnergy, GpuStats, NvmlReading

# A line is fitted once the GPU's load (0-1) has spanned this much between its least and
# its most loaded interval: a span only grows, so once fitted the estimate stays a fit.
MIN_LOAD_SPAN = 0.05
MIN_FIT_POINTS = 3


@dataclass(frozen=True, slots=True)
class Instance:
    """What the split knows of one MIG instance over one interval."""

    device: str
    fraction: float  # of its GPU: slices / slots
    activity: float | None  # SM activity 0-1 over the interval; None: unknown


def split_energy(
    joules: float, seconds: float, idle_watts: float, instances: Sequence[Instance]
) -> dict[str, float] | None:
    """Each instance's part of its GPU's `joules` over `seconds`; None when an instance's
    activity is unknown (the split cannot be made).

    Idle part (at most `joules`) by GPU fraction; the rest by activity x fraction, or
    by fraction when no instance was active.
    """
    if any(i.activity is None for i in instances):
        return None
    idle = min(max(idle_watts, 0.0) * seconds, joules)
    rest = joules - idle
    weights = [(i.activity or 0.0) * i.fraction for i in instances]
    total = sum(weights)
    if total <= 0:  # energy beyond idle with no SM activity: by the slices held
        weights = [i.fraction for i in instances]
        total = sum(weights)
    return {
        i.device: idle * i.fraction + (rest * w / total if total > 0 else 0.0)
        for i, w in zip(instances, weights, strict=True)
    }


class IdlePower:
    """One GPU's idle power in watts: the intercept of its power against its load."""

    def __init__(self) -> None:
        self._n = 0
        self._sx = self._sy = self._sxx = self._sxy = 0.0
        self._floor = math.inf  # the lowest mean power of an interval
        self._loads = (math.inf, -math.inf)  # the least and the most load seen

    def add(self, load: float, watts: float) -> None:
        """One interval: its mean power and the GPU's load (0-1) over it."""
        self._n += 1
        self._sx += load
        self._sy += watts
        self._sxx += load * load
        self._sxy += load * watts
        self._floor = min(self._floor, watts)
        self._loads = (min(self._loads[0], load), max(self._loads[1], load))

    def watts(self) -> float | None:
        """The estimate; None before any interval."""
        if self._n == 0:
            return None
        n, sx = self._n, self._sx
        if n < MIN_FIT_POINTS or self._loads[1] - self._loads[0] < MIN_LOAD_SPAN:
            return self._floor
        intercept = (self._sy * self._sxx - sx * self._sxy) / (n * self._sxx - sx * sx)
        return min(max(intercept, 0.0), self._floor)


class EnergyLedger:
    """Joules per device since the exporter started. One caller, one thread."""

    def __init__(self) -> None:
        self._counters: dict[str, tuple[float, float]] = {}  # GPU -> (NVML's joules, at)
        self._idle: dict[str, IdlePower] = {}  # MIG GPU -> its idle power
        self._joules: dict[str, DeviceEnergy] = {}  # device -> total

    def update(self, reading: NvmlReading, now: float) -> dict[str, DeviceEnergy]:
        """Counts each GPU's energy since the last update; returns the totals."""
        live: set[str] = set()
        for gpu in reading.gpus:
            if gpu.lost:
                continue
            live.update(d.device for d in gpu.devices)
            step = self._step(gpu, now)
            if any(d.gpu_instance_id is not None for d in gpu.devices):
                self._split(gpu, step)
            elif gpu.energy_joules is not None:
                for device in gpu.devices:  # a whole GPU: one device, the GPU itself
                    # a series starts at 0, so that increase() misses no first step
                    seen = step is not None and device.device in self._joules
                    self._add(device.device, step[0] if seen and step else 0.0, estimated=False)
        for gone in [d for d in self._joules if d not in live]:
            del self._joules[gone]
        for gpu_uuid in [g for g in self._counters if g not in {x.uuid for x in reading.gpus}]:
            self._counters.pop(gpu_uuid, None)
            self._idle.pop(gpu_uuid, None)
        return dict(self._joules)

    def held(self) -> dict[str, DeviceEnergy]:
        """The totals so far, while NVML is down."""
        return dict(self._joules)

    def _step(self, gpu: GpuStats, now: float) -> tuple[float, float | None] | None:
        """(joules, seconds) the GPU used since its last reading; seconds None after a
        counter restart (the energy is since the restart, at a moment not known)."""
        if gpu.energy_joules is None:
            return None
        last = self._counters.get(gpu.uuid)
        self._counters[gpu.uuid] = (gpu.energy_joules, now)
        if last is None or now <= last[1]:
            return None
        counted, at = last
        if gpu.energy_joules < counted:  # the driver reloaded: NVML counts again from 0
            return gpu.energy_joules, None
        return gpu.energy_joules - counted, now - at

    def _split(self, gpu: GpuStats, step: tuple[float, float | None] | None) -> None:
        measured = [d for d in gpu.devices if d.activity_source is not ActivitySource.NONE]
        if not measured or len(measured) < len(gpu.devices) or gpu.energy_joules is None:
            return  # no activity to split by: no instance series (absent, not invented)
        for d in measured:
            self._add(d.device, 0.0, estimated=True)
        if step is None or step[1] is None:
            return
        joules, seconds = step[0], step[1]
        instances = [Instance(d.device, d.gpu_fraction, d.sm_active_ratio) for d in measured]
        idle = self._idle.setdefault(gpu.uuid, IdlePower())
        if all(i.activity is not None for i in instances):
            load = sum((i.activity or 0.0) * i.fraction for i in instances)
            idle.add(load, joules / seconds)
        idle_watts = idle.watts()
        if idle_watts is None:
            return  # nothing measured yet: an instance's activity is unknown
        for name, part in (split_energy(joules, seconds, idle_watts, instances) or {}).items():
            self._add(name, part, estimated=True)

    def _add(self, device: str, joules: float, *, estimated: bool) -> None:
        known = self._joules.get(device)
        total = (known.joules if known else 0.0) + joules
        self._joules[device] = DeviceEnergy(total, estimated)
