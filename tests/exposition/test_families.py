"""Tests of exporter/exposition/families.py: the metric families built from snapshots.

The golden exposition `tests/golden/small.prom` is the public interface in one
file. After an intended change to metric names, labels or values, regenerate it
and review the diff:

    GPUWORK_UPDATE_GOLDEN=1 .venv/bin/pytest tests/exposition/test_families.py -k golden
"""

from __future__ import annotations

import os
import platform
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import exporter.exposition.families
from exporter.cli import build_registry
from exporter.exposition.families import SnapshotCollector, build_families
from exporter.sources.nvml.reader import NvmlReader
from simulator.scenario import load_scenario
from tests.support.paths import GOLDEN as GOLDEN_DIR
from tests.support.programs import promtool
from tests.support.sim import make_sim, scenario_from
from tests.support.snapshots import attributed, registry_of, snapshot_of, two_readings

GOLDEN = GOLDEN_DIR / "small.prom"


def samples(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    return [s.labels for family in registry.collect() for s in family.samples if s.name == name]


# -- (a) golden exposition ---------------------------------------------------------------------


def test_golden_exposition_of_the_small_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tests/golden/small.prom`; regenerate with GPUWORK_UPDATE_GOLDEN=1 (see the module doc)."""
    monkeypatch.setattr(exporter.exposition.families, "__version__", "0.0.0-golden")
    monkeypatch.setattr(platform, "python_version", lambda: "3.0.0-golden")
    sim = make_sim("small")
    first, reading = two_readings(sim)
    snapshot = snapshot_of(reading, sim, node="golden-node", **attributed(sim, first, reading))

    text = generate_latest(registry_of(snapshot)).decode()

    assert 'version="0.0.0-golden"' in text and 'python_version="3.0.0-golden"' in text
    if os.environ.get("GPUWORK_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.is_file(), f"{GOLDEN} is missing: run with GPUWORK_UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(), (
        f"the exposition differs from {GOLDEN}; if the change is intended, regenerate it "
        "with GPUWORK_UPDATE_GOLDEN=1 and review the diff"
    )


def test_the_golden_file_covers_every_family() -> None:
    """A family added to build_families without a golden update fails here too."""
    sim = make_sim("small")
    first, reading = two_readings(sim)
    snapshot = snapshot_of(reading, sim, **attributed(sim, first, reading))
    names = {family.name for family in build_families(snapshot)}
    golden = GOLDEN.read_text()

    for name in names:
        assert f"# TYPE {name}" in golden, name


# -- (b) promtool ------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("scenario", ["mixed", "dense-h100", "small"])
def test_promtool_accepts_the_full_registry(scenario: str) -> None:
    tool = promtool()
    sim = make_sim(scenario)
    sim.reader.start()
    sim.reader.read()
    sim.clock.advance(200)  # past the mixed scenario's ECC and XID faults
    reading = sim.reader.read()
    collector = SnapshotCollector()
    collector.update(snapshot_of(reading, sim, node=f"sim-{scenario}"))
    exposition = generate_latest(build_registry(collector))
    assert b"gpuwork_device_info{" in exposition

    result = subprocess.run(
        [tool, "check", "metrics"], input=exposition, capture_output=True, timeout=60
    )

    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_the_mixed_exposition_holds_its_faults() -> None:
    """The promtool run above checks the faults' series too, not only a quiet node."""
    sim = make_sim("mixed")
    sim.reader.start()
    sim.reader.read()
    sim.clock.advance(200)
    registry = registry_of(snapshot_of(sim.reader.read(), sim))

    assert samples(registry, "gpuwork_gpu_xid_errors_total")
    assert samples(registry, "gpuwork_gpu_ecc_errors_total")


# -- (c) a lost GPU ----------------------------------------------------------------------------


def test_a_lost_gpu_keeps_its_identity_and_nothing_else() -> None:
    data = load_scenario("small").model_dump(mode="json")
    data["faults"] = [{"kind": "gpu_lost", "at": 5, "gpu": 0}]
    sim = make_sim(scenario_from(data))
    before, after = two_readings(sim)
    lost_uuid = before.gpus[0].uuid
    live_uuid = before.gpus[1].uuid
    registry = registry_of(snapshot_of(after, sim))

    info = {s["gpu_uuid"]: s for s in samples(registry, "gpuwork_gpu_info")}
    assert set(info) == {lost_uuid, live_uuid}
    assert info[lost_uuid]["model_name"] == before.gpus[0].model_name  # still named
    assert info[lost_uuid]["mig_mode"] == "unknown"
    assert registry.get_sample_value("gpuwork_gpu_lost", {"gpu_uuid": lost_uuid}) == 1
    assert registry.get_sample_value("gpuwork_gpu_lost", {"gpu_uuid": live_uuid}) == 0

    per_gpu = {
        s.name
        for family in registry.collect()
        for s in family.samples
        if s.labels.get("gpu_uuid") == lost_uuid or s.labels.get("device") == lost_uuid
    }
    assert per_gpu == {"gpuwork_gpu_info", "gpuwork_gpu_lost"}
    devices = samples(registry, "gpuwork_device_info")
    assert devices and all(d["gpu_uuid"] == live_uuid for d in devices)
    # the live GPU still has its telemetry
    assert registry.get_sample_value("gpuwork_gpu_power_watts", {"gpu_uuid": live_uuid})


def test_a_snapshot_without_nvml_has_no_gpu_series() -> None:
    registry = registry_of(snapshot_of(None))

    assert registry.get_sample_value("gpuwork_nvml_up") == 0
    assert registry.get_sample_value("gpuwork_collector_success", {"collector": "nvml"}) == 0
    assert samples(registry, "gpuwork_gpu_info") == []
    assert samples(registry, "gpuwork_device_info") == []


def test_samples_nvml_did_not_give_are_served_by_sample_and_reason() -> None:
    sim = make_sim("mixed")
    sim.reader.start()
    registry = registry_of(snapshot_of(sim.reader.read(), sim))

    name = "gpuwork_nvml_samples_absent"
    assert registry.get_sample_value(name, {"sample": "mig_mode", "reason": "not_supported"}) == 1
    assert {(s["sample"], s["reason"]) for s in samples(registry, name)} == {
        ("mig_mode", "not_supported"),
        ("mig_max", "not_supported"),
        ("remapped_rows", "not_supported"),
        ("memory_temperature", "not_supported"),
    }
    assert samples(registry_of(snapshot_of(None)), name) == []


# -- (d) absent, not zero ----------------------------------------------------------------------


def test_mig_without_gpm_has_no_activity_sample_not_a_zero() -> None:
    sim = make_sim("mixed")
    _, reading = two_readings(sim)
    registry = registry_of(snapshot_of(reading, sim))
    a100 = reading.gpus[4]
    assert a100.model_name.startswith("NVIDIA A100")

    info = {d["device"]: d for d in samples(registry, "gpuwork_device_info")}
    blind = [d for d in info.values() if d["gpu_uuid"] == a100.uuid]
    assert len(blind) == 2
    for device in blind:
        assert device["activity_source"] == "none"
        assert device["mig_profile"] in {"4g.40gb", "3g.40gb"}
        labels = {"device": device["device"]}
        for ratio in GPM_RATIOS:
            assert registry.get_sample_value(ratio, labels) is None, ratio
        assert registry.get_sample_value("gpuwork_device_memory_total_bytes", labels)

    # Hopper MIG instances on the same node do have it (GPM), idle ones as a real 0.
    gpm = [d for d in info.values() if d["activity_source"] == "gpm" and d["mig_profile"]]
    assert gpm
    for device in gpm:
        for ratio in GPM_RATIOS:
            value = registry.get_sample_value(ratio, {"device": device["device"]})
            assert value is not None and 0 <= value <= 1, ratio
    # GPM's tensor and DRAM figures exist only with GPM: not beside utilization (A100, L4)
    utilization = [d for d in info.values() if d["activity_source"] == "utilization"]
    assert utilization
    for device in utilization:
        labels = {"device": device["device"]}
        assert registry.get_sample_value("gpuwork_device_sm_active_ratio", labels) is not None
        for ratio in GPM_RATIOS[1:]:
            assert registry.get_sample_value(ratio, labels) is None


GPM_RATIOS = (
    "gpuwork_device_sm_active_ratio",
    "gpuwork_device_tensor_active_ratio",
    "gpuwork_device_dram_bandwidth_ratio",
)


def test_remapped_rows_of_a_mig_gpu_with_instances_are_absent_not_zero() -> None:
    sim = make_sim("small")  # GPU 0 whole, GPU 1 in MIG mode with three instances
    _, reading = two_readings(sim)
    registry = registry_of(snapshot_of(reading, sim))
    whole, mig = (g.uuid for g in reading.gpus)

    rows = {(s["gpu_uuid"], s["type"]) for s in samples(registry, "gpuwork_gpu_remapped_rows")}
    assert rows == {(whole, "correctable"), (whole, "uncorrectable")}
    for name in ("gpuwork_gpu_row_remap_pending", "gpuwork_gpu_row_remap_failed"):
        assert registry.get_sample_value(name, {"gpu_uuid": whole}) == 0
        assert registry.get_sample_value(name, {"gpu_uuid": mig}) is None
    # the MIG GPU's other telemetry is there: only the rows are unknown
    assert registry.get_sample_value("gpuwork_gpu_power_watts", {"gpu_uuid": mig})


# -- (e) XIDs by device ------------------------------------------------------------------------


def test_xids_are_counted_against_the_mig_device_they_name_else_the_gpu() -> None:
    data = load_scenario("small").model_dump(mode="json")
    data["faults"] = [
        {"kind": "xid", "at": 2, "gpu": 1, "slot": 1, "xid": 43, "count": 2},
        {"kind": "xid", "at": 3, "gpu": 1, "xid": 79},  # names no instance
        {"kind": "xid", "at": 4, "gpu": 0, "xid": 13},  # a GPU without MIG
    ]
    sim = make_sim(scenario_from(data))
    _, reading = two_readings(sim)
    registry = registry_of(snapshot_of(reading, sim))
    whole, mig = (g.uuid for g in reading.gpus)
    slot1 = (sim.node.layout(1, sim.clock()) or ())[1]
    assert slot1 is not None

    xids = {
        (s["gpu_uuid"], s["device"], s["xid"]): registry.get_sample_value(
            "gpuwork_gpu_xid_errors_total", s
        )
        for s in samples(registry, "gpuwork_gpu_xid_errors_total")
    }
    assert xids == {
        (mig, slot1.uuid, "43"): 2,
        (mig, mig, "79"): 1,
        (whole, whole, "13"): 1,
    }
    # the device is the one gpuwork_device_info names, so alerts join on it
    info = {d["device"]: d["gpu_uuid"] for d in samples(registry, "gpuwork_device_info")}
    assert info[slot1.uuid] == mig


def test_the_xid_cap_counts_device_and_code_pairs_as_dropped_series() -> None:
    data = load_scenario("small").model_dump(mode="json")
    data["faults"] = [
        {"kind": "xid", "at": 2 + slot / 10, "gpu": 1, "slot": slot, "xid": 43}
        for slot in (0, 1, 3)
    ]
    sim = make_sim(scenario_from(data))
    sim.reader = NvmlReader(sim.nvml, max_xids_per_gpu=2)
    _, reading = two_readings(sim)
    registry = registry_of(snapshot_of(reading, sim))

    assert len(samples(registry, "gpuwork_gpu_xid_errors_total")) == 2
    dropped = {"reason": "xid_cap"}
    assert registry.get_sample_value("gpuwork_exporter_dropped_series_total", dropped) == 1


# -- (f) SnapshotCollector ---------------------------------------------------------------------


def test_describe_returns_nothing_and_collect_is_empty_before_the_first_update() -> None:
    collector = SnapshotCollector()

    assert list(collector.describe()) == []
    assert list(collector.collect()) == []


def test_registering_does_not_collect() -> None:
    class Untouchable(SnapshotCollector):
        def collect(self) -> list[object]:  # type: ignore[override]
            raise AssertionError("collect() called at registration")

    registry = CollectorRegistry(auto_describe=True)
    registry.register(Untouchable())  # would raise if the registry fell back to collect()


def test_collect_returns_the_latest_families() -> None:
    sim = make_sim("small")
    first, second = two_readings(sim)
    collector = SnapshotCollector()

    collector.update(snapshot_of(first, sim))
    families = list(collector.collect())
    assert [f.name for f in families] == [f.name for f in build_families(snapshot_of(first, sim))]
    assert list(collector.collect()) == families  # a scrape does not rebuild

    collector.update(snapshot_of(second, sim))
    assert list(collector.collect()) != families


def test_an_update_replaces_the_series_of_a_repartitioned_mig_gpu() -> None:
    scenario = scenario_from(
        {
            "name": "repartition",
            "node": "sim-repartition",
            "gpus": [{"model": "H100-SXM5-80GB", "mig": ["3g.40gb", "2g.20gb", None, "1g.10gb"]}],
            "faults": [{"kind": "mig_repartition", "at": 5, "gpu": 0, "mig": ["7g.80gb"]}],
        }
    )
    sim = make_sim(scenario)
    before, after = two_readings(sim)
    old = {d.device for d in before.gpus[0].devices}
    new = {d.device for d in after.gpus[0].devices}
    assert len(old) == 3 and len(new) == 1 and not old & new
    collector = SnapshotCollector()
    registry = CollectorRegistry()
    registry.register(collector)

    collector.update(snapshot_of(before, sim))
    assert {d["device"] for d in samples(registry, "gpuwork_device_info")} == old
    collector.update(snapshot_of(after, sim))

    info = samples(registry, "gpuwork_device_info")
    assert [(d["device"], d["mig_profile"]) for d in info] == [(next(iter(new)), "7g.80gb")]
    devices_anywhere = {
        s.labels["device"]
        for family in registry.collect()
        for s in family.samples
        if "device" in s.labels
    }
    assert devices_anywhere == new
    assert len(samples(registry, "gpuwork_gpu_info")) == 1  # one family each, not two
    names = [family.name for family in registry.collect()]
    assert len(names) == len(set(names))
