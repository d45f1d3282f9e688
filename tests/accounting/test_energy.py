"""Energy per device: the split of a MIG GPU's energy, its idle power, and the ledger
against the simulated node's true energy."""

from __future__ import annotations

import pytest

from exporter.accounting.energy import (
    MIN_LOAD_SPAN,
    EnergyLedger,
    IdlePower,
    Instance,
    split_energy,
)
from exporter.model import ActivitySource, DeviceEnergy, DeviceStats, GpuStats, MigMode, NvmlReading
from simulator.truth import device_energy
from tests.support.sim import Sim, make_sim

# -- the split, a pure function ------------------------------------------------------------


def test_idle_energy_goes_by_fraction_and_the_rest_by_activity_times_fraction() -> None:
    instances = [Instance("a", 3 / 7, 0.8), Instance("b", 2 / 7, 0.0), Instance("c", 1 / 7, 0.4)]
    # 10 s at 70 W idle: 700 J idle; 2,000 J beyond it
    shares = split_energy(2700.0, 10.0, 70.0, instances)
    assert shares is not None
    weights = {"a": 0.8 * 3 / 7, "b": 0.0, "c": 0.4 / 7}
    for i in instances:
        expected = 700 * i.fraction + 2000 * weights[i.device] / sum(weights.values())
        assert shares[i.device] == pytest.approx(expected)
    assert shares["b"] == pytest.approx(200.0)  # an idle instance pays its idle share only
    # the free slice's idle share (1/7 of 700 J) goes to no instance
    assert sum(shares.values()) == pytest.approx(2700.0 - 100.0)


def test_without_activity_the_rest_goes_by_fraction() -> None:
    shares = split_energy(
        1000.0, 10.0, 50.0, [Instance("a", 4 / 7, 0.0), Instance("b", 3 / 7, 0.0)]
    )
    assert shares == {"a": pytest.approx(1000 * 4 / 7), "b": pytest.approx(1000 * 3 / 7)}


def test_idle_energy_is_never_more_than_what_was_used() -> None:
    shares = split_energy(300.0, 10.0, 70.0, [Instance("a", 1.0, 0.5)])  # 30 W < 70 W idle
    assert shares == {"a": pytest.approx(300.0)}


def test_no_split_where_an_instance_activity_is_unknown() -> None:
    assert (
        split_energy(1000.0, 10.0, 50.0, [Instance("a", 0.5, 0.3), Instance("b", 0.5, None)])
        is None
    )


# -- idle power ------------------------------------------------------------------------------


def test_idle_power_is_the_intercept_of_power_against_load() -> None:
    idle = IdlePower()
    assert idle.watts() is None
    idle.add(0.40, 70 + 630 * 0.40)
    assert idle.watts() == pytest.approx(70 + 630 * 0.40)  # one point: the lowest power seen
    idle.add(0.41, 70 + 630 * 0.41)
    idle.add(0.40 + MIN_LOAD_SPAN / 2, 70 + 630 * (0.40 + MIN_LOAD_SPAN / 2))
    assert idle.watts() == pytest.approx(70 + 630 * 0.40)  # the load has not spanned enough
    idle.add(0.40 + 2 * MIN_LOAD_SPAN, 70 + 630 * (0.40 + 2 * MIN_LOAD_SPAN))
    assert idle.watts() == pytest.approx(70.0)  # a line: its intercept, though never idle


def test_idle_power_stays_between_zero_and_the_lowest_power_seen() -> None:
    steep = IdlePower()  # power rising faster than any line through 0 would: intercept < 0
    for load, watts in ((0.2, 10.0), (0.5, 200.0), (0.8, 390.0)):
        steep.add(load, watts)
    assert steep.watts() == 0.0
    flat = IdlePower()  # power falling with load: intercept above every power seen
    for load, watts in ((0.2, 300.0), (0.5, 250.0), (0.8, 200.0)):
        flat.add(load, watts)
    assert flat.watts() == 200.0


# -- the ledger ------------------------------------------------------------------------------


def run(sim: Sim, collections: int, every: float = 10.0) -> list[dict[str, DeviceEnergy]]:
    """The ledger's totals after each of `collections` readings, `every` seconds apart."""
    sim.reader.start()
    ledger, totals = EnergyLedger(), []
    for _ in range(collections):
        totals.append(ledger.update(sim.reader.read(), sim.clock()))
        sim.clock.advance(every)
    return totals


def test_whole_gpus_count_exactly_what_nvml_counted_since_the_exporter_started() -> None:
    sim = make_sim("mixed")
    counters_at_start = [sim.node.energy_joules(i, sim.clock()) for i in range(8)]
    totals = run(sim, 19)
    whole = {sim.node.gpu_uuids[i]: i for i in (0, 1, 5, 6)}  # not in MIG mode
    assert {d for d, e in totals[0].items() if not e.estimated} == set(whole)
    assert all(totals[0][d].joules == 0 for d in whole)  # every series starts at 0
    end = sim.clock() - 10
    for device, index in whole.items():
        used = sim.node.energy_joules(index, end) - counters_at_start[index]
        assert totals[-1][device].joules == pytest.approx(used, rel=1e-6)
        assert not totals[-1][device].estimated


def test_mig_instances_are_split_within_the_truth_after_the_idle_fit() -> None:
    sim = make_sim("dense-h100")  # every GPU busy from the start: no idle moment to see
    t0 = sim.clock()
    totals = run(sim, 181)
    warm = 12  # two minutes: the load has spanned enough to fit every GPU's idle power
    truth = device_energy(sim.node, t0 + warm * 10, sim.clock() - 10)
    assert len(truth) == 56 and all(totals[-1][d].estimated for d in truth)
    for device, joules in truth.items():
        counted = totals[-1][device].joules - totals[warm][device].joules
        assert counted == pytest.approx(joules, rel=1e-4), device
    # from the start, warm-up included: the lowest power seen over-states idle power on
    # these never-idle GPUs for the first intervals, so idle instances get more then
    truth = device_energy(sim.node, t0, sim.clock() - 10)
    errors = [abs(totals[-1][d].joules / joules - 1) for d, joules in truth.items()]
    assert max(errors) < 0.2 and sorted(errors)[len(errors) // 2] < 0.02


def test_no_instance_series_without_activity_to_split_by() -> None:
    sim = make_sim("mixed")  # GPU 4: an A100 in MIG mode, no GPM
    totals = run(sim, 3)
    a100 = [m.uuid for m in sim.node.layout(4, sim.clock()) or () if m is not None]
    assert a100 and not set(a100) & set(totals[-1])
    hopper = [m.uuid for m in sim.node.layout(2, sim.clock()) or () if m is not None]
    assert hopper and all(totals[-1][d].estimated and totals[-1][d].joules > 0 for d in hopper)


def gpu(energy: float | None, *devices: DeviceStats, lost: bool = False) -> NvmlReading:
    stats = GpuStats("GPU-0", 0, "H100", "", MigMode.DISABLED, lost=lost,
                     energy_joules=energy, devices=devices)  # fmt: skip
    return NvmlReading("570", (stats,), 0)


WHOLE = DeviceStats("GPU-0", "GPU-0", "", None, None, 1.0, None, None, 0.5,
                    ActivitySource.GPM, 1)  # fmt: skip


def test_a_counter_restart_counts_the_new_value_never_a_negative_step() -> None:
    ledger = EnergyLedger()
    seen = [
        ledger.update(gpu(joules, WHOLE), t)["GPU-0"].joules
        for t, joules in ((0, 1000.0), (10, 3000.0), (20, 500.0), (30, 1500.0))
    ]
    # the driver reloaded between 10 and 20 s: 500 J since then
    assert seen == [0.0, 2000.0, 2500.0, 3500.0]


def test_series_hold_while_a_sample_is_missing_and_go_with_their_gpu() -> None:
    ledger = EnergyLedger()
    ledger.update(gpu(1000.0, WHOLE), 0)
    assert ledger.update(gpu(None, WHOLE), 10)["GPU-0"].joules == 0  # energy not read: held
    assert ledger.update(gpu(1600.0, WHOLE), 20)["GPU-0"].joules == 600  # both intervals
    assert ledger.held() == {"GPU-0": DeviceEnergy(600.0, estimated=False)}
    assert ledger.update(gpu(None, lost=True), 30) == {}  # lost: its devices go
    back = ledger.update(gpu(2000.0, WHOLE), 40)  # back: a new series, from 0
    assert back == {"GPU-0": DeviceEnergy(0.0, estimated=False)}
    assert ledger.update(gpu(2100.0, WHOLE), 50)["GPU-0"].joules == 100
