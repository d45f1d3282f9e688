"""The NVML reader against the simulated NVML: values, quirks and every fault."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

from exporter.model import ActivitySource, DeviceStats, GpuStats, MigMode, NvmlReading
from exporter.sources.nvml.library import NvmlDownError, mig_profile_name
from exporter.sources.nvml.reader import NvmlReader, _device_of_event
from simulator.loads import Pipe
from simulator.node import DeviceTruth
from tests.support.sim import Sim, make_sim, scenario_from

H100 = "H100-SXM5-80GB"
NO_ID = 0xFFFFFFFF  # NVML's instance id of an event that names no instance


def one_gpu(faults: list[dict[str, Any]], **gpu: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "gpus": [{"model": H100, **gpu}, {"model": H100}],
        "pods": [{"name": "p", "namespace": "n", "tenant": "n", "devices": ["1"]}],
        "faults": faults,
    }


def started(scenario: Any, start: float = 1.0) -> Sim:
    sim = make_sim(scenario_from(scenario) if isinstance(scenario, dict) else scenario, start)
    sim.reader.start()
    return sim


def two_reads(sim: Sim, interval: float = 10.0) -> NvmlReading:
    sim.reader.read()
    sim.clock.advance(interval)
    return sim.reader.read()


def by_device(reading: NvmlReading) -> dict[str, Any]:
    return {d.device: d for gpu in reading.gpus for d in gpu.devices}


def gpu(reading: NvmlReading, index: int) -> GpuStats:
    return next(g for g in reading.gpus if g.index == index)


@pytest.mark.parametrize("scenario", ["small", "mixed", "dense-h100"])
def test_devices_match_ground_truth(scenario: str) -> None:
    sim = started(scenario)
    t0 = sim.clock()
    reading = two_reads(sim, 10.0)
    truths: list[DeviceTruth] = sim.node.devices(sim.clock())
    seen = by_device(reading)
    assert sorted(seen) == sorted(t.device for t in truths)
    for truth in truths:
        device = seen[truth.device]
        assert device.gpu_uuid == truth.gpu_uuid
        assert device.mig_profile == truth.mig_profile
        assert device.gpu_instance_id == truth.gpu_instance_id
        assert device.gpu_fraction == pytest.approx(truth.gpu_fraction)
        assert device.memory_used_bytes == truth.memory_used_bytes
        assert device.memory_total_bytes == truth.memory_total_bytes
        assert device.processes == truth.processes
        if device.activity_source is ActivitySource.GPM:  # exact mean over the interval
            index = sim.node.gpu_uuids.index(truth.gpu_uuid)
            slot = next(
                (
                    m.slot
                    for m in sim.node.layout(index, sim.clock()) or ()
                    if m and m.uuid == truth.device
                ),
                None,
            )
            for pipe, value in (
                (Pipe.SM, device.sm_active_ratio),
                (Pipe.TENSOR, device.tensor_active_ratio),
                (Pipe.DRAM, device.dram_bandwidth_ratio),
            ):
                expected = sim.node.device_mean_activity(index, slot, t0, sim.clock(), pipe)
                assert value == pytest.approx(min(expected, 1.0), abs=1e-9), pipe
        else:  # no GPM: no tensor or DRAM figure, whatever the SM figure comes from
            assert device.tensor_active_ratio is device.dram_bandwidth_ratio is None
    assert sim.reader.errors == {}


def test_whole_gpu_identity_and_telemetry() -> None:
    sim = started("small")
    reading = two_reads(sim)
    assert reading.driver_version == "570.133.20"
    whole = gpu(reading, 0)
    assert whole.uuid == sim.node.gpu_uuids[0]
    assert whole.model_name == "NVIDIA H100 80GB HBM3"
    assert whole.pci_bus_id == "00000000:18:00.0"
    assert whole.mig_mode is MigMode.DISABLED
    assert whole.power_watts == pytest.approx(sim.node.power_watts(0, sim.clock()), abs=1e-3)
    assert whole.energy_joules is not None and whole.energy_joules > 0
    assert whole.sm_clock_hertz == 1980e6 and whole.memory_clock_hertz == 2619e6
    assert whole.gpu_temperature_celsius is not None and whole.memory_temperature_celsius
    assert whole.ecc_corrected_errors == 0 and whole.pcie_replays == 0
    assert whole.row_remap_pending is False
    (device,) = whole.devices
    assert device.device == whole.uuid and device.mig_profile == ""
    assert device.activity_source is ActivitySource.GPM


def test_energy_counter_only_grows() -> None:
    sim = started("small")
    energies = []
    for _ in range(5):
        energies.append(gpu(sim.reader.read(), 0).energy_joules)
        sim.clock.advance(7)
    assert energies == sorted(energies) and energies[0] < energies[-1]


def test_gpm_activity_is_absent_on_the_first_collection() -> None:
    sim = started("small")
    first = sim.reader.read()
    devices = [d for g in first.gpus for d in g.devices]
    assert devices and all(d.sm_active_ratio is None for d in devices)
    assert all(d.tensor_active_ratio is d.dram_bandwidth_ratio is None for d in devices)


def test_tensor_and_dram_activity_come_with_sm_activity_in_one_gpm_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = started("small")
    asked: list[list[int]] = []
    metrics_get = sim.nvml.nvmlGpmMetricsGet

    def recorded(request: Any) -> Any:
        asked.append([request.metrics[i].metricId for i in range(request.numMetrics)])
        return metrics_get(request)

    monkeypatch.setattr(sim.nvml, "nvmlGpmMetricsGet", recorded)
    devices = list(by_device(two_reads(sim)).values())
    assert len(asked) == len(devices) == 4  # a whole GPU and three MIG instances
    assert all(
        ids == [pynvml.NVML_GPM_METRIC_SM_UTIL, pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL,
                pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL]
        for ids in asked
    )  # fmt: skip
    busy = [d for d in devices if d.sm_active_ratio]
    assert busy  # so the next lines check something
    for d in busy:  # the load model keeps tensor and DRAM activity under SM activity
        assert 0 < d.tensor_active_ratio < d.sm_active_ratio  # type: ignore[operator]
        assert 0 < d.dram_bandwidth_ratio < d.sm_active_ratio  # type: ignore[operator]


def test_a_gpm_metric_answered_with_an_error_is_absent_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = started("small")
    metrics_get = sim.nvml.nvmlGpmMetricsGet

    def no_tensor(request: Any) -> Any:  # a driver that does not know the tensor metric
        metrics_get(request)
        for i in range(request.numMetrics):
            if request.metrics[i].metricId == pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL:
                request.metrics[i].value = 0.0
                request.metrics[i].nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return request

    monkeypatch.setattr(sim.nvml, "nvmlGpmMetricsGet", no_tensor)
    reading = two_reads(sim)
    devices = list(by_device(reading).values())
    assert all(d.tensor_active_ratio is None for d in devices)
    assert all(d.sm_active_ratio is not None and d.dram_bandwidth_ratio is not None
               for d in devices)  # fmt: skip
    assert reading.absent == {("gpm_tensor_active", "not_supported"): 4}
    assert sim.reader.errors == {}


def test_mig_quirks_empty_slots_and_no_utilization() -> None:
    sim = started("small")
    reading = two_reads(sim)
    mig_gpu = gpu(reading, 1)
    assert mig_gpu.mig_mode is MigMode.ENABLED
    # Slot 2 is empty (NVML answers NOT_FOUND): three instances, and no error counted.
    assert [d.mig_profile for d in mig_gpu.devices] == ["3g.40gb", "2g.20gb", "1g.10gb"]
    assert [d.gpu_instance_id for d in mig_gpu.devices] == [1, 3, 7]
    assert all(d.device.startswith("MIG-") for d in mig_gpu.devices)
    assert sim.reader.errors == {}
    with pytest.raises(pynvml.NVMLError_NotSupported):
        handle = sim.nvml.nvmlDeviceGetMigDeviceHandleByIndex(
            sim.nvml.nvmlDeviceGetHandleByIndex(1), 0
        )
        sim.nvml.nvmlDeviceGetUtilizationRates(handle)


def test_no_gpm_means_absent_activity_on_mig_and_utilization_on_whole_gpus() -> None:
    sim = started("mixed")
    reading = two_reads(sim)
    a100_mig = gpu(reading, 4)
    assert a100_mig.devices and all(d.sm_active_ratio is None for d in a100_mig.devices)
    assert {d.activity_source for d in a100_mig.devices} == {ActivitySource.NONE}
    l4 = gpu(reading, 6)
    assert l4.mig_mode is MigMode.UNSUPPORTED
    (device,) = l4.devices
    assert device.activity_source is ActivitySource.UTILIZATION
    expected = round(min(sim.node.device_activity(6, None, sim.clock()), 1) * 100) / 100
    assert device.sm_active_ratio == pytest.approx(expected)
    assert l4.remapped_rows_uncorrectable is None and l4.memory_temperature_celsius is None
    assert sim.reader.errors == {}


def test_absent_samples_are_counted_by_sample_and_reason_in_every_collection() -> None:
    sim = started("mixed")  # one L4: no MIG, no row remapping, no memory temperature sensor
    first = sim.reader.read()
    sim.clock.advance(10)
    second = sim.reader.read()
    expected = {
        ("mig_mode", "not_supported"): 1,
        ("mig_max", "not_supported"): 1,  # identity, read once, still counted each time
        ("remapped_rows", "not_supported"): 1,
        ("memory_temperature", "not_supported"): 1,
    }
    assert first.absent == expected
    assert second.absent == expected
    assert started("small").reader.read().absent == {}
    assert sim.reader.errors == {}


def test_mig_samples_without_permission_are_counted_as_no_permission(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = started("small")  # no CAP_SYS_ADMIN / NVIDIA_MIG_MONITOR_DEVICES=all

    def denied(handle: Any) -> list[int]:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)

    monkeypatch.setattr(sim.nvml, "nvmlDeviceGetMigMode", denied)
    for _ in range(2):  # every collection, not only the first one logged
        reading = sim.reader.read()
        assert reading.absent[("mig_mode", "no_permission")] == 2
        assert {g.mig_mode for g in reading.gpus} == {MigMode.UNSUPPORTED}
        sim.clock.advance(10)
    assert sim.reader.errors == {}


def test_gpu_lost_keeps_identity_and_drops_the_rest() -> None:
    sim = started(one_gpu([{"kind": "gpu_lost", "at": 5, "gpu": 0}], mig=["3g.40gb", "3g.40gb"]))
    before = sim.reader.read()
    sim.clock.advance(10)
    after = sim.reader.read()
    lost = gpu(after, 0)
    assert lost.lost and lost.uuid == gpu(before, 0).uuid
    assert lost.model_name == "NVIDIA H100 80GB HBM3"
    assert lost.devices == () and lost.power_watts is None
    assert not gpu(after, 1).lost and len(gpu(after, 1).devices) == 1
    assert sim.reader.errors["gpu_lost"] == 1
    # Its GPM samples are released with its devices.
    assert sim.nvml.gpm_samples_outstanding == 1


def test_gpu_lost_before_first_sight_gets_a_placeholder_identity() -> None:
    sim = started(one_gpu([{"kind": "gpu_lost", "at": 0.5, "gpu": 0}]))
    lost = gpu(sim.reader.read(), 0)
    assert lost.lost and lost.uuid == "unknown-gpu-0" and lost.mig_mode is MigMode.UNKNOWN


def test_xid_events_are_counted_by_code_and_survive_gpu_loss() -> None:
    faults = [
        {"kind": "xid", "at": 3, "gpu": 0, "xid": 13, "count": 2},
        {"kind": "xid", "at": 4, "gpu": 0, "xid": 79},
        {"kind": "xid", "at": 25, "gpu": 1, "xid": 31},
        {"kind": "gpu_lost", "at": 4, "gpu": 0},
    ]
    sim = started(one_gpu(faults))
    lost, live = sim.node.gpu_uuids[:2]
    first = sim.reader.read()
    assert gpu(first, 0).xid_errors == {}
    sim.clock.advance(9)
    second = sim.reader.read()
    assert gpu(second, 0).lost and gpu(second, 0).xid_errors == {(lost, 13): 2, (lost, 79): 1}
    sim.clock.advance(20)
    third = sim.reader.read()
    assert gpu(third, 0).xid_errors == {(lost, 13): 2, (lost, 79): 1}
    assert gpu(third, 1).xid_errors == {(live, 31): 1}


def test_xid_codes_per_gpu_are_capped() -> None:
    faults = [{"kind": "xid", "at": 2 + i / 10, "gpu": 0, "xid": 10 + i} for i in range(5)]
    sim = make_sim(scenario_from(one_gpu(faults)))
    sim.reader = NvmlReader(sim.nvml, max_xids_per_gpu=3)
    sim.reader.start()
    sim.clock.advance(5)
    reading = sim.reader.read()
    uuid = sim.node.gpu_uuids[0]
    assert gpu(reading, 0).xid_errors == {(uuid, 10): 1, (uuid, 11): 1, (uuid, 12): 1}
    assert sim.reader.dropped_series["xid_cap"] == 2


def mig_uuids(sim: Sim, index: int = 0) -> list[str | None]:
    """The MIG device UUID in each slot of GPU `index` now; None for an empty slot."""
    return [m.uuid if m else None for m in sim.node.layout(index, sim.clock()) or ()]


def test_an_xid_on_a_mig_instance_counts_against_that_device() -> None:
    faults = [
        {"kind": "xid", "at": 2, "gpu": 0, "slot": 2, "xid": 43},
        {"kind": "xid", "at": 3, "gpu": 0, "slot": 0, "xid": 31, "count": 2},
        {"kind": "xid", "at": 3, "gpu": 0, "slot": 2, "xid": 31},
        {"kind": "xid", "at": 4, "gpu": 0, "xid": 79},  # names no instance: the GPU's
        {"kind": "xid", "at": 4, "gpu": 1, "xid": 13},  # a GPU without MIG
    ]
    sim = started(one_gpu(faults, mig=["3g.40gb", None, "1g.10gb"]))
    sim.reader.read()
    sim.clock.advance(5)
    reading = sim.reader.read()
    slot0, _, slot2 = mig_uuids(sim)
    parent, whole = sim.node.gpu_uuids[:2]
    assert slot0 and slot2 and {slot0, slot2} == {d.device for d in gpu(reading, 0).devices}
    assert gpu(reading, 0).xid_errors == {
        (slot2, 43): 1,
        (slot0, 31): 2,
        (slot2, 31): 1,
        (parent, 79): 1,
    }
    assert gpu(reading, 1).xid_errors == {(whole, 13): 1}
    assert sim.reader.errors == {}


def test_an_xid_naming_an_instance_the_reader_does_not_know_counts_against_the_gpu() -> None:
    # GPU instance 2 (slot 1) is destroyed by the re-partition before the reader reads
    # the event: its id names no instance of the GPU any more.
    faults = [
        {"kind": "xid", "at": 3, "gpu": 0, "slot": 1, "xid": 43},
        {"kind": "mig_repartition", "at": 4, "gpu": 0, "mig": ["7g.80gb"]},
        {"kind": "xid", "at": 6, "gpu": 0, "slot": 0, "xid": 45},
    ]
    sim = started(one_gpu(faults, mig=["3g.40gb", "3g.40gb"]))
    sim.clock.advance(4)
    reading = sim.reader.read()
    (instance,) = gpu(reading, 0).devices
    assert instance.gpu_instance_id == 0
    assert gpu(reading, 0).xid_errors == {(sim.node.gpu_uuids[0], 43): 1}
    sim.clock.advance(5)
    assert gpu(sim.reader.read(), 0).xid_errors == {
        (sim.node.gpu_uuids[0], 43): 1,
        (instance.device, 45): 1,
    }


def test_the_xid_cap_counts_device_and_code_pairs() -> None:
    faults = [
        {"kind": "xid", "at": 2.0, "gpu": 0, "xid": 13},
        {"kind": "xid", "at": 2.1, "gpu": 0, "slot": 0, "xid": 13},
        {"kind": "xid", "at": 2.2, "gpu": 0, "slot": 1, "xid": 13},
        {"kind": "xid", "at": 2.3, "gpu": 0, "slot": 2, "xid": 13},  # a fourth pair: dropped
        {"kind": "xid", "at": 2.4, "gpu": 0, "slot": 0, "xid": 13},  # a known pair: counted
        {"kind": "xid", "at": 2.5, "gpu": 1, "xid": 13},  # another GPU has a cap of its own
    ]
    sim = make_sim(scenario_from(one_gpu(faults, mig=["1g.10gb"] * 3)))
    sim.reader = NvmlReader(sim.nvml, max_xids_per_gpu=3)
    sim.reader.start()
    sim.clock.advance(5)
    reading = sim.reader.read()
    slot0, slot1, _ = mig_uuids(sim)
    parent, whole = sim.node.gpu_uuids[:2]
    assert gpu(reading, 0).xid_errors == {(parent, 13): 1, (slot0, 13): 2, (slot1, 13): 1}
    assert gpu(reading, 1).xid_errors == {(whole, 13): 1}
    assert sim.reader.dropped_series["xid_cap"] == 1


def test_an_event_naming_one_of_several_compute_instances_is_that_device() -> None:
    # The simulated node makes one compute instance per GPU instance; NVML allows more.
    def instance(device: str, ci: int) -> DeviceStats:
        return DeviceStats(device, "GPU-a", "1c.3g.40gb", 1, ci, 1 / 7, None, None, None,
                           ActivitySource.NONE, None)  # fmt: skip

    instances = {("GPU-a", 1): [instance("MIG-ci0", 0), instance("MIG-ci1", 1)]}

    def event(gi: int, ci: int) -> Any:
        return SimpleNamespace(gpuInstanceId=gi, computeInstanceId=ci)

    assert _device_of_event("GPU-a", event(1, 1), instances) == "MIG-ci1"
    assert _device_of_event("GPU-a", event(1, NO_ID), instances) == "GPU-a"  # which one?
    assert _device_of_event("GPU-a", event(2, 0), instances) == "GPU-a"
    assert _device_of_event("GPU-b", event(1, 1), instances) == "GPU-b"
    only = {("GPU-a", 1): [instance("MIG-one", 0)]}
    assert _device_of_event("GPU-a", event(1, NO_ID), only) == "MIG-one"
    assert _device_of_event("GPU-a", event(NO_ID, NO_ID), only) == "GPU-a"


def test_ecc_errors_and_row_remapping() -> None:
    faults = [
        {"kind": "ecc", "at": 3, "gpu": 0, "corrected": 5},
        {"kind": "ecc", "at": 4, "gpu": 0, "uncorrected": 1},
        {"kind": "pcie_replays", "at": 4, "gpu": 0, "count": 7},
    ]
    sim = started(one_gpu(faults))
    sim.clock.advance(5)
    stats = gpu(sim.reader.read(), 0)
    assert (stats.ecc_corrected_errors, stats.ecc_uncorrected_errors) == (5, 1)
    assert stats.pcie_replays == 7
    assert stats.remapped_rows_uncorrectable == 1 and stats.row_remap_pending is True
    assert stats.row_remap_failed is False


def test_remapped_rows_of_a_mig_gpu_with_instances_are_unknown_not_zero() -> None:
    faults = [{"kind": "ecc", "at": 2, "gpu": 0, "uncorrected": 1}]
    sim = started(one_gpu(faults, mig=["3g.40gb"]))
    sim.clock.advance(5)
    reading = sim.reader.read()
    mig = gpu(reading, 0)
    assert mig.mig_mode is MigMode.ENABLED and mig.devices
    assert mig.ecc_uncorrected_errors == 1  # the GPU still counts its ECC errors
    assert (mig.remapped_rows_correctable, mig.remapped_rows_uncorrectable,
            mig.row_remap_pending, mig.row_remap_failed) == (None, None, None, None)  # fmt: skip
    whole = gpu(reading, 1)
    assert (whole.remapped_rows_uncorrectable, whole.row_remap_pending) == (0, False)
    assert sim.reader.errors == {}


def test_remapped_rows_of_a_mig_gpu_without_instances_are_read() -> None:
    sim = started(one_gpu([{"kind": "ecc", "at": 2, "gpu": 0, "uncorrected": 1}], mig=[None]))
    sim.clock.advance(5)
    empty = gpu(sim.reader.read(), 0)
    assert empty.mig_mode is MigMode.ENABLED and empty.devices == ()
    assert (empty.remapped_rows_uncorrectable, empty.row_remap_pending) == (1, True)


def test_mig_repartition_is_picked_up_with_no_stale_instances() -> None:
    faults = [{"kind": "mig_repartition", "at": 15, "gpu": 0, "mig": ["1g.10gb"] * 7}]
    sim = started(one_gpu(faults, mig=["3g.40gb", "3g.40gb"]))
    before = two_reads(sim)
    old = {d.device for d in gpu(before, 0).devices}
    assert len(old) == 2
    sim.clock.advance(10)
    after = sim.reader.read()
    new = gpu(after, 0).devices
    assert len(new) == 7 and not old & {d.device for d in new}
    assert [d.gpu_instance_id for d in new] == list(range(7, 14))
    assert {d.mig_profile for d in new} == {"1g.10gb"}
    assert sum(d.gpu_fraction for d in new) == pytest.approx(1.0)
    # The old instances' GPM samples are freed; new ones have one each, plus GPU 1.
    assert sim.nvml.gpm_samples_outstanding == 7 + 1
    assert sim.reader.errors == {}


def test_driver_not_loaded_at_start_raises_nvml_down() -> None:
    sim = make_sim(scenario_from(one_gpu([{"kind": "driver_not_loaded", "at": 0, "until": 20}])))
    with pytest.raises(NvmlDownError, match="Driver Not Loaded"):
        sim.reader.start()
    with pytest.raises(NvmlDownError):
        sim.reader.read()
    sim.clock.advance(25)
    sim.reader.start()
    assert len(sim.reader.read().gpus) == 2


def test_driver_unloaded_while_running_needs_a_new_init() -> None:
    sim = started(one_gpu([{"kind": "driver_not_loaded", "at": 10, "until": 20}]))
    sim.reader.read()
    sim.clock.advance(10)
    with pytest.raises(NvmlDownError):
        sim.reader.read()
    sim.reader.stop()
    sim.clock.advance(15)  # the driver is back, but the old session is gone
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        sim.nvml.nvmlDeviceGetCount()
    sim.reader.start()
    assert len(sim.reader.read().gpus) == 2


def test_an_unexpected_error_costs_only_its_own_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = started("small")

    def broken(handle: Any) -> int:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    monkeypatch.setattr(sim.nvml, "nvmlDeviceGetPowerUsage", broken)
    reading = two_reads(sim)
    assert all(g.power_watts is None for g in reading.gpus)
    assert all(g.energy_joules is not None for g in reading.gpus)
    assert len(by_device(reading)) == 4
    assert sim.reader.errors == {"unknown": 4}


def test_a_mig_instance_that_fails_skips_only_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = started("small")
    bad = sim.nvml.nvmlDeviceGetMigDeviceHandleByIndex(sim.nvml.nvmlDeviceGetHandleByIndex(1), 1)
    real_uuid = sim.nvml.nvmlDeviceGetUUID

    def uuid(handle: Any) -> str:
        if handle == bad:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_IRQ_ISSUE)
        return real_uuid(handle)

    monkeypatch.setattr(sim.nvml, "nvmlDeviceGetUUID", uuid)
    reading = sim.reader.read()
    assert [d.mig_profile for d in gpu(reading, 1).devices] == ["3g.40gb", "1g.10gb"]
    assert sim.reader.errors == {"irq_issue": 1}


def test_gpm_samples_do_not_leak_and_stop_frees_everything() -> None:
    sim = started("dense-h100")
    for _ in range(20):
        sim.reader.read()
        sim.clock.advance(5)
    assert sim.nvml.gpm_samples_outstanding == 56
    sim.reader.stop()
    assert sim.nvml.gpm_samples_outstanding == 0


def test_identity_is_cached_so_later_collections_make_fewer_calls() -> None:
    sim = started("dense-h100")
    first = sim.reader.read()
    sim.clock.advance(10)
    second = sim.reader.read()
    assert second.nvml_calls < first.nvml_calls
    # Per GPU: handle, MIG mode, 10 telemetry calls (remapped rows are not asked on a
    # MIG GPU with instances); per instance: handle, UUID, memory, processes, GPM alloc
    # + sample + metrics + free; one event poll.
    assert second.nvml_calls == 8 * (2 + 10) + 56 * 8 + 1


@pytest.mark.parametrize(
    ("gi", "ci", "mib", "name"),
    [(1, 1, 9856, "1g.10gb"), (3, 3, 40192, "3g.40gb"), (7, 7, 144128, "7g.141gb"),
     (1, 1, 4864, "1g.5gb"), (2, 1, 19968, "1c.2g.20gb")],
)  # fmt: skip
def test_mig_profile_name(gi: int, ci: int, mib: int, name: str) -> None:
    assert mig_profile_name(gi, ci, mib) == name


def test_state_stays_bounded_through_many_repartitions() -> None:
    layouts = [["1g.10gb"] * 7, ["3g.40gb", "3g.40gb"], ["7g.80gb"], ["2g.20gb"] * 3]
    faults = [
        {"kind": "mig_repartition", "at": 10 + 10 * i, "gpu": 0, "mig": layouts[i % 4]}
        for i in range(60)
    ]
    sim = started(one_gpu(faults, mig=["7g.80gb"]))
    for _ in range(62):
        sim.reader.read()
        sim.clock.advance(10)
    reading = sim.reader.read()
    live = len(by_device(reading))
    assert len(sim.reader._migs) == live - 1  # MIG identities: only live instances
    assert len(sim.reader._gpm_samples) == live == sim.nvml.gpm_samples_outstanding
    assert len(sim.reader._logged) <= 4 and sim.reader.errors == {}
