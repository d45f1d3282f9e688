"""Load profiles: what a pod does to its device over time, exactly.

Activity is piecewise constant over fixed segments, so the true mean over any
interval is known exactly: that is the ground truth tests and benchmarks compare
the exporter against.

Besides SM activity, GPM reports tensor-core activity and DRAM bandwidth use. A pod's
tensor and DRAM activity are its SM activity times a constant share of its own
(`pipe_share`): tensor pipes only run on busy SMs, and a pod that does nothing moves no
memory, so both are never above its SM activity and their means are as exact.
"""

from __future__ import annotations

import math
import zlib
from enum import StrEnum

SEGMENT_SECONDS = 10.0
BURST_PERIOD_SEGMENTS = 12  # bursty pods work 3 segments out of every 12 (30 s of 2 min)
BURST_ON_SEGMENTS = 3
MODEL_MEMORY_FRACTION = 0.9  # vLLM's default gpu_memory_utilization


class Pipe(StrEnum):
    """What a GPM metric measures: SMs busy, tensor cores busy, DRAM bandwidth in use."""

    SM = "sm"
    TENSOR = "tensor"
    DRAM = "dram"


class LoadProfile(StrEnum):
    BUSY = "busy"
    IDLE = "idle"  # model loaded, no requests
    NEVER_USED = "never-used"  # holds the device, never started a process on it
    BURSTY = "bursty"
    SATURATED = "saturated"  # pinned: more work than the device can take, a queue builds


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from its inputs."""
    return zlib.crc32(":".join(map(str, parts)).encode()) / 2**32


def pipe_share(pipe: Pipe, key: str, seed: int) -> float:
    """The pod's activity on `pipe` per unit of SM activity: constant over its life.

    LLM serving keeps tensor cores busy most of the time SMs are (0.5-0.9), and decoding
    streams weights and KV cache from DRAM (0.3-0.8)."""
    if pipe is Pipe.TENSOR:
        return 0.5 + 0.4 * _unit(seed, key, "tensor")
    if pipe is Pipe.DRAM:
        return 0.3 + 0.5 * _unit(seed, key, "dram")
    return 1.0


def runs_process(profile: LoadProfile) -> bool:
    return profile is not LoadProfile.NEVER_USED


def segment_activity(profile: LoadProfile, key: str, seed: int, segment: int) -> float:
    """SM activity in 0-1 during one segment."""
    if profile is LoadProfile.BUSY:
        return 0.55 + 0.4 * _unit(seed, key, segment)
    if profile is LoadProfile.SATURATED:
        return 0.96 + 0.04 * _unit(seed, key, segment)
    if profile is LoadProfile.BURSTY:
        phase = int(_unit(seed, key, "phase") * BURST_PERIOD_SEGMENTS)
        if (segment + phase) % BURST_PERIOD_SEGMENTS < BURST_ON_SEGMENTS:
            return 0.55 + 0.4 * _unit(seed, key, segment)
    return 0.0


def activity(profile: LoadProfile, key: str, seed: int, t: float) -> float:
    return segment_activity(profile, key, seed, math.floor(t / SEGMENT_SECONDS))


def mean_activity(profile: LoadProfile, key: str, seed: int, t0: float, t1: float) -> float:
    """The exact mean activity over [t0, t1]; the activity at t0 when the interval is empty."""
    if t1 <= t0:
        return activity(profile, key, seed, t0)
    if profile in (LoadProfile.IDLE, LoadProfile.NEVER_USED):
        return 0.0
    total = 0.0
    first, last = math.floor(t0 / SEGMENT_SECONDS), math.floor(t1 / SEGMENT_SECONDS)
    for segment in range(first, last + 1):
        start = max(t0, segment * SEGMENT_SECONDS)
        end = min(t1, (segment + 1) * SEGMENT_SECONDS)
        if end > start:
            total += segment_activity(profile, key, seed, segment) * (end - start)
    return total / (t1 - t0)
