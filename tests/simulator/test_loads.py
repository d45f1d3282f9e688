"""Load profiles: deterministic activity and exact means over any interval."""

from __future__ import annotations

import pytest

from simulator.loads import (
    BURST_ON_SEGMENTS,
    BURST_PERIOD_SEGMENTS,
    SEGMENT_SECONDS,
    LoadProfile,
    Pipe,
    activity,
    mean_activity,
    pipe_share,
    runs_process,
)


def numeric_mean(profile: LoadProfile, t0: float, t1: float, steps: int = 20_000) -> float:
    width = (t1 - t0) / steps
    return sum(activity(profile, "pod", 0, t0 + (i + 0.5) * width) for i in range(steps)) / steps


@pytest.mark.parametrize("profile", list(LoadProfile))
@pytest.mark.parametrize(("t0", "t1"), [(0, 10), (3.3, 47.9), (95, 400.5)])
def test_mean_is_the_exact_integral(profile: LoadProfile, t0: float, t1: float) -> None:
    assert mean_activity(profile, "pod", 0, t0, t1) == pytest.approx(
        numeric_mean(profile, t0, t1), abs=2e-3
    )


def test_busy_is_always_working_and_idle_never() -> None:
    times = [i * 1.7 for i in range(500)]
    assert all(0.55 <= activity(LoadProfile.BUSY, "p", 1, t) < 0.95 for t in times)
    assert all(activity(LoadProfile.IDLE, "p", 1, t) == 0 for t in times)
    assert all(0.96 <= activity(LoadProfile.SATURATED, "p", 1, t) < 1.0 for t in times)
    assert runs_process(LoadProfile.IDLE) and not runs_process(LoadProfile.NEVER_USED)


def test_bursty_works_a_quarter_of_the_time() -> None:
    period = BURST_PERIOD_SEGMENTS * SEGMENT_SECONDS
    on = [activity(LoadProfile.BURSTY, "p", 2, t + 0.5) > 0 for t in range(int(period * 10))]
    assert sum(on) / len(on) == pytest.approx(BURST_ON_SEGMENTS / BURST_PERIOD_SEGMENTS)


def test_empty_interval_gives_the_instant_value() -> None:
    assert mean_activity(LoadProfile.BUSY, "p", 0, 12.0, 12.0) == activity(
        LoadProfile.BUSY, "p", 0, 12.0
    )


def test_tensor_and_dram_shares_are_constant_per_pod_and_below_sm() -> None:
    pods = [f"ns/pod-{i}" for i in range(50)]
    assert all(pipe_share(Pipe.SM, pod, 3) == 1.0 for pod in pods)
    tensor = [pipe_share(Pipe.TENSOR, pod, 3) for pod in pods]
    dram = [pipe_share(Pipe.DRAM, pod, 3) for pod in pods]
    assert all(0.5 <= v < 0.9 for v in tensor) and all(0.3 <= v < 0.8 for v in dram)
    assert len(set(tensor)) == len(pods)  # each pod its own
    assert pipe_share(Pipe.TENSOR, "ns/pod-0", 3) == tensor[0]  # the same every time
