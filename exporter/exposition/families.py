"""Turns a `NodeSnapshot` into Prometheus metric families: a pure function.

Families are built once per collection, off the scrape path; `SnapshotCollector`
hands the latest set to prometheus_client, so a scrape only serializes. Metric
names and labels are the public interface: `docs/metrics.md` lists them all.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator, Sequence

import pynvml
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.model import DeviceState, DeviceStats, GpuStats, NodeSnapshot, StateSignal

# NVML clock event reason bits, by the label value we publish for each.
CLOCK_EVENT_REASONS: dict[str, int] = {
    "gpu_idle": pynvml.nvmlClocksEventReasonGpuIdle,
    "applications_clocks_setting": pynvml.nvmlClocksEventReasonApplicationsClocksSetting,
    "sw_power_cap": pynvml.nvmlClocksEventReasonSwPowerCap,
    "hw_slowdown": pynvml.nvmlClocksEventReasonHwSlowdown,
    "sync_boost": pynvml.nvmlClocksEventReasonSyncBoost,
    "sw_thermal_slowdown": pynvml.nvmlClocksEventReasonSwThermalSlowdown,
    "hw_thermal_slowdown": pynvml.nvmlClocksEventReasonHwThermalSlowdown,
    "hw_power_brake_slowdown": pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown,
    "display_clock_setting": pynvml.nvmlClocksEventReasonDisplayClockSetting,
}


def _gauge(name: str, doc: str, labels: Sequence[str] = ("gpu_uuid",)) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _counter(name: str, doc: str, labels: Sequence[str] = ("gpu_uuid",)) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


def _id(value: int | None) -> str:
    return "" if value is None else str(value)


def _fraction(value: float) -> str:
    return f"{value:.4g}"


def build_families(snapshot: NodeSnapshot) -> list[Metric]:
    """Every family for one snapshot. Families with no samples are still listed, empty."""
    return [
        *_exporter_families(snapshot),
        *_gpu_families(snapshot),
        *_device_families(snapshot),
        *_attribution_families(snapshot),
        *_work_families(snapshot),
        *_energy_families(snapshot),
    ]


def _exporter_families(snapshot: NodeSnapshot) -> Iterator[Metric]:
    build = _gauge(
        "gpuwork_exporter_build_info",
        "Build of the gpuwork exporter; value 1.",
        ("version", "python_version", "node"),
    )
    build.add_metric([__version__, platform.python_version(), snapshot.node], 1)
    yield build

    up = GaugeMetricFamily("gpuwork_nvml_up", "1 when NVML is initialized and answering.")
    up.add_metric([], 1 if snapshot.nvml_up else 0)
    yield up

    absent = _gauge(
        "gpuwork_nvml_samples_absent",
        "Samples NVML did not give in the last collection, by sample and NVML's reason.",
        ("sample", "reason"),
    )
    for (what, reason), count in sorted((snapshot.nvml.absent if snapshot.nvml else {}).items()):
        absent.add_metric([what, reason], count)
    yield absent

    success = _gauge(
        "gpuwork_collector_success",
        "1 when the source's last collection succeeded.",
        ("collector",),
    )
    duration = _gauge(
        "gpuwork_collector_duration_seconds",
        "Wall time of the source's last collection.",
        ("collector",),
    )
    last = _gauge(
        "gpuwork_collector_last_success_timestamp_seconds",
        "Unix time of the source's last successful collection.",
        ("collector",),
    )
    for name, health in sorted(snapshot.collectors.items()):
        success.add_metric([name], 1 if health.success else 0)
        duration.add_metric([name], health.duration_seconds)
        if health.last_success_timestamp is not None:
            last.add_metric([name], health.last_success_timestamp)
    yield from (success, duration, last)

    errors = _counter(
        "gpuwork_exporter_errors",
        "Errors met while collecting, by source and kind.",
        ("collector", "kind"),
    )
    for (collector, kind), count in sorted(snapshot.errors_total.items()):
        errors.add_metric([collector, kind], count)
    yield errors

    dropped = _counter(
        "gpuwork_exporter_dropped_series",
        "Series not exported because a cardinality cap was reached, by reason.",
        ("reason",),
    )
    for reason, count in sorted(snapshot.dropped_series_total.items()):
        dropped.add_metric([reason], count)
    yield dropped


def _gpu_families(snapshot: NodeSnapshot) -> Iterator[Metric]:
    gpus: Sequence[GpuStats] = snapshot.nvml.gpus if snapshot.nvml else ()
    driver = snapshot.nvml.driver_version if snapshot.nvml else ""
    info = _gauge(
        "gpuwork_gpu_info",
        "Identity of a physical GPU; value 1.",
        ("gpu_uuid", "gpu_index", "model_name", "driver_version", "mig_mode", "pci_bus_id", "node"),
    )
    lost = _gauge(
        "gpuwork_gpu_lost", "1 when the GPU answers GPU_IS_LOST (off the bus, needs reset)."
    )
    for gpu in gpus:
        info.add_metric(
            [gpu.uuid, str(gpu.index), gpu.model_name, driver, gpu.mig_mode, gpu.pci_bus_id,
             snapshot.node],
            1,
        )  # fmt: skip
        lost.add_metric([gpu.uuid], 1 if gpu.lost else 0)
    yield from (info, lost)

    live = [gpu for gpu in gpus if not gpu.lost]
    yield from _scalar_gpu_families(live)

    temperature = _gauge(
        "gpuwork_gpu_temperature_celsius", "GPU temperature by sensor.", ("gpu_uuid", "sensor")
    )
    throttle = _gauge(
        "gpuwork_gpu_clock_throttle_active",
        "1 while NVML reports this reason for holding clocks down.",
        ("gpu_uuid", "reason"),
    )
    ecc = _counter(
        "gpuwork_gpu_ecc_errors",
        "ECC memory errors since the driver loaded (volatile counters).",
        ("gpu_uuid", "type"),
    )
    remapped = _gauge(
        "gpuwork_gpu_remapped_rows",
        "Memory rows remapped over the GPU's life, by the error that caused it.",
        ("gpu_uuid", "type"),
    )
    xid = _counter(
        "gpuwork_gpu_xid_errors",
        "XID critical errors seen since the exporter started, by XID code and by the device "
        "they hit: the MIG device whose GPU instance the event names, else the whole GPU.",
        ("gpu_uuid", "device", "xid"),
    )
    for gpu in live:
        for sensor, value in (("gpu", gpu.gpu_temperature_celsius),
                              ("memory", gpu.memory_temperature_celsius)):  # fmt: skip
            if value is not None:
                temperature.add_metric([gpu.uuid, sensor], value)
        if gpu.clock_event_reasons is not None:
            for reason, bit in CLOCK_EVENT_REASONS.items():
                throttle.add_metric([gpu.uuid, reason], 1 if gpu.clock_event_reasons & bit else 0)
        for kind, count in (("corrected", gpu.ecc_corrected_errors),
                            ("uncorrected", gpu.ecc_uncorrected_errors)):  # fmt: skip
            if count is not None:
                ecc.add_metric([gpu.uuid, kind], count)
        for kind, rows in (("correctable", gpu.remapped_rows_correctable),
                           ("uncorrectable", gpu.remapped_rows_uncorrectable)):  # fmt: skip
            if rows is not None:
                remapped.add_metric([gpu.uuid, kind], rows)
    for gpu in gpus:  # XIDs stay visible on a lost GPU: they say why it was lost
        for (device, code), count in sorted(gpu.xid_errors.items()):
            xid.add_metric([gpu.uuid, device, str(code)], count)
    yield from (temperature, throttle, ecc, remapped, xid)


def _scalar_gpu_families(gpus: Sequence[GpuStats]) -> Iterator[Metric]:
    """Families with one optional number per GPU."""
    specs: Iterable[tuple[str, str, str, bool]] = (
        ("gpuwork_gpu_power_watts", "power_watts", "Power draw of the board.", False),
        ("gpuwork_gpu_energy_joules", "energy_joules",
         "Energy used since the driver loaded.", True),
        ("gpuwork_gpu_sm_clock_hertz", "sm_clock_hertz", "Current SM clock.", False),
        ("gpuwork_gpu_memory_clock_hertz", "memory_clock_hertz", "Current memory clock.", False),
        ("gpuwork_gpu_pcie_replays", "pcie_replays",
         "PCIe replays since the driver loaded.", True),
        ("gpuwork_gpu_row_remap_pending", "row_remap_pending",
         "1 when a remapped row waits for a GPU reset to take effect.", False),
        ("gpuwork_gpu_row_remap_failed", "row_remap_failed",
         "1 when a row remapping failed: the GPU needs service.", False),
    )  # fmt: skip
    for name, attribute, doc, is_counter in specs:
        family = _counter(name, doc) if is_counter else _gauge(name, doc)
        for gpu in gpus:
            value = getattr(gpu, attribute)
            if value is not None:
                family.add_metric([gpu.uuid], float(value))
        yield family


def _device_families(snapshot: NodeSnapshot) -> Iterator[Metric]:
    devices: list[DeviceStats] = [
        d for gpu in (snapshot.nvml.gpus if snapshot.nvml else ()) for d in gpu.devices
    ]
    info = _gauge(
        "gpuwork_device_info",
        "Identity of a device (a whole GPU or one MIG instance); value 1.",
        ("device", "gpu_uuid", "mig_profile", "gpu_instance_id", "compute_instance_id",
         "gpu_fraction", "activity_source", "node"),
    )  # fmt: skip
    for d in devices:
        info.add_metric(
            [d.device, d.gpu_uuid, d.mig_profile, _id(d.gpu_instance_id),
             _id(d.compute_instance_id), _fraction(d.gpu_fraction), d.activity_source,
             snapshot.node],
            1,
        )  # fmt: skip
    yield info

    specs = (
        ("gpuwork_device_gpu_fraction", "gpu_fraction",
         "Share of its physical GPU this device is (MIG slices / 7; 1 for a whole GPU)."),
        ("gpuwork_device_memory_used_bytes", "memory_used_bytes", "Device memory in use."),
        ("gpuwork_device_memory_total_bytes", "memory_total_bytes", "Device memory in all."),
        ("gpuwork_device_sm_active_ratio", "sm_active_ratio",
         "SM activity in 0-1 over the last collection interval; absent where the "
         "hardware cannot tell."),
        ("gpuwork_device_tensor_active_ratio", "tensor_active_ratio",
         "Share of the last collection interval the SMs ran tensor-core work, 0-1 (GPM); "
         "absent where the hardware cannot tell."),
        ("gpuwork_device_dram_bandwidth_ratio", "dram_bandwidth_ratio",
         "DRAM bandwidth used over the last collection interval over its peak, 0-1 (GPM); "
         "absent where the hardware cannot tell."),
        ("gpuwork_device_processes", "processes", "Compute processes running on the device."),
    )  # fmt: skip
    for name, attribute, doc in specs:
        family = _gauge(name, doc, ("device",))
        for d in devices:
            value = getattr(d, attribute)
            if value is not None:
                family.add_metric([d.device], float(value))
        yield family


def _attribution_families(snapshot: NodeSnapshot) -> Iterator[Metric]:
    attribution, ledger = snapshot.attribution, snapshot.ledger
    allocation = _gauge(
        "gpuwork_device_allocation",
        "Share of the device a container holds: 1 dedicated, 1/N per time-slicing replica.",
        ("device", "namespace", "pod", "container", "tenant"),
    )
    signal = _gauge(
        "gpuwork_device_state_signal",
        "1 for what the device's state is judged from (see docs/metrics.md), else 0.",
        ("device", "signal"),
    )
    host_pids = GaugeMetricFamily(
        "gpuwork_attribution_host_pids",
        "1 when GPU processes' PIDs map to pods through /proc; absent with no GPU process.",
    )
    unmapped = GaugeMetricFamily(
        "gpuwork_attribution_unmapped_device_ids",
        "Device ids the kubelet allocated that match no device NVML reports.",
    )
    if attribution is not None:
        for a in attribution.allocations:
            allocation.add_metric([a.device, a.namespace, a.pod, a.container, a.tenant], a.share)
        judged = snapshot.ledger.signals if snapshot.ledger else attribution.signals
        for device, used in sorted(judged.items()):
            for option in StateSignal:
                signal.add_metric([device, option], 1 if option is used else 0)
        if attribution.host_pids is not None:
            host_pids.add_metric([], 1 if attribution.host_pids else 0)
        unmapped.add_metric([], attribution.unmapped_device_ids)
    yield from (allocation, signal, host_pids, unmapped)

    state = _gauge(
        "gpuwork_device_state",
        "1 for the device's state now (the busiest of its holders), else 0.",
        ("device", "state"),
    )
    seconds = _counter(
        "gpuwork_device_state_seconds",
        "GPU-seconds in each state: seconds * GPU fraction * share, per holder.",
        ("device", "state", "tenant", "namespace", "pod"),
    )
    if ledger is not None:
        for device, now in sorted(ledger.device_states.items()):
            for kind in DeviceState:
                state.add_metric([device, kind], 1 if kind is now else 0)
        for (device, kind, tenant, namespace, pod), value in sorted(ledger.seconds.items()):
            seconds.add_metric([device, kind, tenant, namespace, pod], value)
    yield from (state, seconds)

    stale = GaugeMetricFamily(
        "gpuwork_kubernetes_metadata_stale",
        "1 while the API server cannot be reached and pod metadata is the last known.",
    )
    stale.add_metric([], 1 if snapshot.metadata_stale else 0)
    yield stale


_POD = ("namespace", "pod", "tenant", "engine")
_MODEL = ("namespace", "pod", "tenant", "model", "engine")
_SERIES = (*_MODEL, "series")  # `series`: the engine's own labels of that series (a rank)
_TOKEN_TYPES = {"prompt_tokens": "prompt", "generation_tokens": "generation"}


def _work_families(snapshot: NodeSnapshot) -> Iterator[Metric]:
    tokens = _counter(
        "gpuwork_tokens",
        "Tokens the pod's engine processed: each engine series mirrored as the engine counts.",
        (*_SERIES, "type"),
    )
    up = _gauge("gpuwork_engine_up", "1 when the engine's last scrape succeeded.", _POD)
    cold = _gauge(
        "gpuwork_engine_cold_start_seconds",
        "Seconds from the pod's start to its engine's first served token.",
        _POD,
    )
    gauges = {
        "requests_running": _gauge(
            "gpuwork_engine_requests_running", "Requests the engine is running.", _MODEL
        ),
        "requests_waiting": _gauge(
            "gpuwork_engine_requests_waiting", "Requests waiting in the engine's queue.", _MODEL
        ),
        "kv_cache_usage_ratio": _gauge(
            "gpuwork_engine_kv_cache_usage_ratio", "Share of the KV cache in use, 0-1.", _MODEL
        ),
    }
    counters = {
        "requests_finished": _counter(
            "gpuwork_engine_requests_finished", "Requests the engine finished.", _SERIES
        ),
        "preemptions": _counter(
            "gpuwork_engine_preemptions", "Requests the engine preempted.", _SERIES
        ),
    }
    histograms = {
        "time_to_first_token_seconds": HistogramMetricFamily(
            "gpuwork_engine_time_to_first_token_seconds",
            "Time to first token, as the engine measures it (its own buckets).",
            labels=_SERIES,
        ),
        "inter_token_latency_seconds": HistogramMetricFamily(
            "gpuwork_engine_inter_token_latency_seconds",
            "Time between output tokens, as the engine measures it (its own buckets).",
            labels=_SERIES,
        ),
    }
    for pod in snapshot.work:
        ids = [pod.namespace, pod.pod, pod.tenant, pod.engine]
        up.add_metric(ids, 1 if pod.up else 0)
        if pod.cold_start_seconds is not None:
            cold.add_metric(ids, pod.cold_start_seconds)
        for m in pod.models:
            labels = [pod.namespace, pod.pod, pod.tenant, m.model, pod.engine]
            for attribute, gauge in gauges.items():
                if (value := getattr(m, attribute)) is not None:
                    gauge.add_metric(labels, value)
            for (name, series), value in sorted(m.counters.items()):
                if name in _TOKEN_TYPES:
                    tokens.add_metric([*labels, series, _TOKEN_TYPES[name]], value)
                elif name in counters:
                    counters[name].add_metric([*labels, series], value)
            for (name, series), h in sorted(m.histograms.items()):
                if name in histograms:
                    buckets = [(_bound(le), count) for le, count in h.buckets]
                    histograms[name].add_metric([*labels, series], buckets, h.sum)
    yield from (tokens, up, cold, *gauges.values(), *counters.values(), *histograms.values())

    cost = _gauge(
        "gpuwork_device_hourly_cost",
        "Price of the device per hour: its GPU model's price * its GPU fraction.",
        ("device",),
    )
    for device, price in sorted(snapshot.device_hourly_cost.items()):
        cost.add_metric([device], price)
    yield cost


def _energy_families(snapshot: NodeSnapshot) -> Iterator[Metric]:
    measured = _counter(
        "gpuwork_device_energy_joules",
        "Energy the device (a whole GPU) used since the exporter started, from NVML's "
        "energy counter.",
        ("device",),
    )
    estimated = _counter(
        "gpuwork_device_energy_estimated_joules",
        "Energy a MIG instance used since the exporter started: an estimate, its share of "
        "its GPU's energy (idle power by GPU fraction, the rest by SM activity x fraction).",
        ("device",),
    )
    for device, energy in sorted(snapshot.device_energy.items()):
        (estimated if energy.estimated else measured).add_metric([device], energy.joules)
    yield from (measured, estimated)


def _bound(le: float) -> str:
    return "+Inf" if le == float("inf") else repr(float(le))


class SnapshotCollector(Collector):
    """Serves the families of the latest snapshot; `update` swaps them in whole."""

    def __init__(self) -> None:
        self._families: list[Metric] = []

    def update(self, snapshot: NodeSnapshot) -> None:
        self._families = build_families(snapshot)  # one reference swap: scrapes never block

    def collect(self) -> Iterable[Metric]:
        return self._families

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not touch the hardware or wait for a collection
