"""The waste ledger: states judged over a window, GPU-seconds charged per holder."""

from __future__ import annotations

import pytest

from exporter.accounting.waste import WasteLedger
from exporter.model import (
    ActivitySource,
    Attribution,
    DeviceState,
    DeviceStats,
    GpuStats,
    Holding,
    MigMode,
    NvmlReading,
    StateLedger,
)

GPU = "GPU-00000000-0000-0000-0000-000000000001"
MIG = "MIG-00000000-0000-0000-0000-000000000002"
BUSY, IDLE, NO_PROCESS, FREE = (
    DeviceState.BUSY,
    DeviceState.ALLOCATED_IDLE,
    DeviceState.ALLOCATED_NO_PROCESS,
    DeviceState.UNALLOCATED,
)


def device(name: str, fraction: float = 1.0) -> DeviceStats:
    return DeviceStats(name, GPU, "", None, None, fraction, 0, 1, 0.0, ActivitySource.GPM, 0)


def reading(*devices: DeviceStats, lost: bool = False) -> NvmlReading:
    gpu = GpuStats(GPU, 0, "H100", "0", MigMode.DISABLED, lost=lost, devices=devices)
    return NvmlReading("570", (gpu,), 0)


def holds(*holdings: Holding) -> Attribution:
    return Attribution((), holdings, {}, True, 0)


def holding(
    pod: str,
    activity: float | None,
    *,
    share: float = 1.0,
    processes: int = 1,
    dev: str = GPU,
    tenant: str = "t",
) -> Holding:
    return Holding(dev, "ns", pod, tenant, share, processes, activity)


def ledger(window: float = 60.0) -> WasteLedger:
    return WasteLedger(window=window, busy_threshold=0.05, max_step=30.0)


def seconds(result: StateLedger, state: DeviceState, pod: str = "a", tenant: str = "t") -> float:
    namespace = "ns" if pod else ""
    return result.seconds[(GPU, state, tenant if pod else "", namespace, pod)]


def test_the_first_update_charges_nothing_and_starts_every_state_at_zero() -> None:
    result = ledger().update(reading(device(GPU)), holds(holding("a", 0.9)), now=100.0)

    assert result.device_states == {GPU: BUSY}
    assert {key[1]: value for key, value in result.seconds.items()} == {
        NO_PROCESS: 0.0, IDLE: 0.0, BUSY: 0.0, FREE: 0.0,
    }  # fmt: skip


def test_seconds_are_weighted_by_fraction_and_share_and_the_rest_is_unallocated() -> None:
    book = ledger()
    mig = device(MIG, fraction=3 / 7)
    a, b = holding("a", 0.9, share=0.25, dev=MIG), holding("b", 0.0, share=0.5, dev=MIG)
    book.update(reading(mig), holds(a, b), now=0.0)
    result = book.update(reading(mig), holds(a, b), now=10.0)

    assert result.seconds[(MIG, BUSY, "t", "ns", "a")] == pytest.approx(10 * 3 / 7 * 0.25)
    assert result.seconds[(MIG, IDLE, "t", "ns", "b")] == pytest.approx(10 * 3 / 7 * 0.5)
    assert result.seconds[(MIG, FREE, "", "", "")] == pytest.approx(10 * 3 / 7 * 0.25)
    assert result.device_states == {MIG: BUSY}  # the busiest holder


@pytest.mark.parametrize(
    ("activities", "expected"),
    [
        ([0.0, 0.9, 0.0, 0.0], BUSY),  # a busy interval still in the window
        ([0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], IDLE),  # ... and out of it (60 s window)
        ([0.9, 0.0], IDLE),  # the first sample has no interval behind it
        ([0.0, 0.0, 0.04], IDLE),
        ([0.0, 0.05, 0.1], BUSY),  # the threshold is inclusive: mean 0.05
    ],
)
def test_busy_and_idle_are_judged_over_the_window(
    activities: list[float], expected: DeviceState
) -> None:
    book = ledger(window=60.0)
    result = None
    for step, value in enumerate(activities):
        result = book.update(reading(device(GPU)), holds(holding("a", value)), now=10.0 * step)
    assert result is not None
    assert result.device_states[GPU] is expected


def test_no_process_and_no_signal() -> None:
    book = ledger()
    book.update(reading(device(GPU)), holds(holding("a", 0.9, processes=0)), now=0.0)
    result = book.update(reading(device(GPU)), holds(holding("a", 0.9, processes=0)), now=10.0)
    assert result.device_states[GPU] is NO_PROCESS
    assert seconds(result, NO_PROCESS) == 10.0

    result = book.update(reading(device(GPU)), holds(holding("a", None)), now=20.0)
    assert result.device_states[GPU] is BUSY  # a process, no way to tell it is idle
    assert seconds(result, BUSY) == 10.0


def test_a_device_nobody_holds_is_unallocated() -> None:
    book = ledger()
    book.update(reading(device(GPU)), holds(), now=0.0)
    result = book.update(reading(device(GPU)), holds(), now=10.0)

    assert result.device_states == {GPU: FREE}
    assert result.seconds == {(GPU, FREE, "", "", ""): 10.0}


def test_a_long_gap_is_capped_and_time_never_runs_backwards() -> None:
    book = ledger()
    book.update(reading(device(GPU)), holds(holding("a", 0.9)), now=0.0)
    result = book.update(reading(device(GPU)), holds(holding("a", 0.9)), now=1000.0)
    assert seconds(result, BUSY) == 30.0  # max_step

    result = book.update(reading(device(GPU)), holds(holding("a", 0.9)), now=990.0)
    assert seconds(result, BUSY) == 30.0


def test_gone_holders_and_devices_lose_their_series_at_the_next_update() -> None:
    book = ledger()
    book.update(reading(device(GPU)), holds(holding("a", 0.9)), now=0.0)
    result = book.update(reading(device(GPU)), holds(holding("b", 0.9)), now=10.0)
    assert {key[4] for key in result.seconds} == {"b", ""}

    # a new tenant for the same pod is a new holder: the old tenant's series go
    result = book.update(reading(device(GPU)), holds(holding("b", 0.9, tenant="u")), now=20.0)
    assert {key[2] for key in result.seconds} == {"u", ""}

    result = book.update(reading(device(GPU), lost=True), holds(), now=30.0)
    assert result.seconds == {}
    assert result.device_states == {}


def test_thousands_of_pods_passing_through_leave_nothing_behind() -> None:
    book = ledger()
    for step in range(3000):
        book.update(reading(device(GPU)), holds(holding(f"pod-{step}", 0.5)), now=10.0 * step)
    result = book.update(reading(device(GPU)), holds(), now=30000.0)

    assert result.seconds == {(GPU, FREE, "", "", ""): pytest.approx(10.0)}
    assert book._samples == {}  # the windows of gone pods are dropped too
