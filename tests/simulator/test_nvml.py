"""The simulated NVML speaks pynvml: same types, same error classes, same quirks."""

from __future__ import annotations

import pynvml
import pytest

from simulator.loads import Pipe
from simulator.nvml import SimulatedNvml
from tests.support.sim import make_sim, scenario_from


def initialized(name: str = "small") -> SimulatedNvml:
    sim = make_sim(name)
    sim.nvml.nvmlInit()
    return sim.nvml


def test_calls_before_init_answer_uninitialized() -> None:
    nvml = make_sim("small").nvml
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    assert nvml.nvmlDeviceGetCount() == 2
    nvml.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()


def test_returns_pynvml_structures() -> None:
    nvml = initialized()
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    assert isinstance(nvml.nvmlDeviceGetMemoryInfo(gpu), pynvml.c_nvmlMemory_t)
    assert isinstance(nvml.nvmlDeviceGetUtilizationRates(gpu), pynvml.c_nvmlUtilization_t)
    assert isinstance(nvml.nvmlDeviceGetPciInfo(gpu), pynvml.nvmlPciInfo_t)
    assert isinstance(nvml.nvmlGpmQueryDeviceSupport(gpu), pynvml.c_nvmlGpmSupport_t)
    (process,) = nvml.nvmlDeviceGetComputeRunningProcesses(gpu)
    assert isinstance(process, pynvml.nvmlFriendlyObject) and process.pid > 0
    assert process.gpuInstanceId == 0xFFFFFFFF  # no MIG
    fields = nvml.nvmlDeviceGetFieldValues(gpu, [pynvml.NVML_FI_DEV_MEMORY_TEMP])
    assert isinstance(fields[0], pynvml.c_nvmlFieldValue_t)


def test_mig_quirks() -> None:
    nvml = initialized()
    whole, parent = nvml.nvmlDeviceGetHandleByIndex(0), nvml.nvmlDeviceGetHandleByIndex(1)
    assert nvml.nvmlDeviceGetMigMode(parent) == [pynvml.NVML_DEVICE_MIG_ENABLE] * 2
    assert nvml.nvmlDeviceGetMaxMigDeviceCount(parent) == 7
    with pytest.raises(pynvml.NVMLError_InvalidArgument):  # MIG off
        nvml.nvmlDeviceGetMigDeviceHandleByIndex(whole, 0)
    with pytest.raises(pynvml.NVMLError_NotFound):  # an empty slot
        nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 2)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):  # past the last slot
        nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 7)
    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 1)
    assert nvml.nvmlDeviceGetUUID(mig).startswith("MIG-")
    assert nvml.nvmlDeviceGetName(mig) == "NVIDIA H100 80GB HBM3 MIG 2g.20gb"
    assert nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig) == parent
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetUtilizationRates(mig)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetUtilizationRates(parent)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetGpuInstanceId(whole)
    # The parent lists the processes of all its instances; an instance only its own.
    assert len(nvml.nvmlDeviceGetComputeRunningProcesses(parent)) == 2
    assert len(nvml.nvmlDeviceGetComputeRunningProcesses(mig)) == 1


def test_non_mig_boards_answer_not_supported() -> None:
    nvml = initialized("mixed")
    l4 = nvml.nvmlDeviceGetHandleByIndex(6)
    for call in (nvml.nvmlDeviceGetMigMode, nvml.nvmlDeviceGetMaxMigDeviceCount,
                 nvml.nvmlDeviceGetRemappedRows):  # fmt: skip
        with pytest.raises(pynvml.NVMLError_NotSupported):
            call(l4)
    sample = nvml.nvmlGpmSampleAlloc()
    with pytest.raises(pynvml.NVMLError_NotSupported):  # GPM is Hopper and newer
        nvml.nvmlGpmSampleGet(l4, sample)
    nvml.nvmlGpmSampleFree(sample)
    assert nvml.nvmlGpmQueryDeviceSupport(l4).isSupportedDevice == 0


def test_stale_mig_handles_after_repartition() -> None:
    faults = [{"kind": "mig_repartition", "at": 5, "gpu": 0, "mig": ["7g.80gb"]}]
    gpus = [{"model": "H100-SXM5-80GB", "mig": ["3g.40gb", "3g.40gb"]}]
    sim = make_sim(scenario_from({"name": "t", "gpus": gpus, "faults": faults}))
    sim.nvml.nvmlInit()
    parent = sim.nvml.nvmlDeviceGetHandleByIndex(0)
    old = sim.nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 1)
    sim.clock.advance(10)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        sim.nvml.nvmlDeviceGetUUID(old)
    with pytest.raises(pynvml.NVMLError_NotFound):
        sim.nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 1)
    new = sim.nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 0)
    assert sim.nvml.nvmlDeviceGetGpuInstanceId(new) == 0


def test_lost_gpu_answers_gpu_is_lost_everywhere() -> None:
    faults = [{"kind": "gpu_lost", "at": 5, "gpu": 0}]
    sim = make_sim(scenario_from({"name": "t", "gpus": [{"model": "L4"}], "faults": faults}))
    sim.nvml.nvmlInit()
    handle = sim.nvml.nvmlDeviceGetHandleByIndex(0)
    sim.clock.advance(10)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        sim.nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        sim.nvml.nvmlDeviceGetPowerUsage(handle)
    assert sim.nvml.nvmlDeviceGetCount() == 1  # still counted, as on real drivers


def test_gpm_metrics_need_two_samples_of_one_target() -> None:
    nvml = initialized()
    whole, parent = nvml.nvmlDeviceGetHandleByIndex(0), nvml.nvmlDeviceGetHandleByIndex(1)
    a, b = nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()
    nvml.nvmlGpmSampleGet(whole, a)
    nvml.nvmlGpmMigSampleGet(parent, 1, b)
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = 2
    request.sample1, request.sample2 = a, b
    request.metrics[0].metricId = pynvml.NVML_GPM_METRIC_SM_UTIL
    request.metrics[1].metricId = pynvml.NVML_GPM_METRIC_FP64_UTIL
    with pytest.raises(pynvml.NVMLError_InvalidArgument):  # different targets
        nvml.nvmlGpmMetricsGet(request)
    nvml.nvmlGpmSampleGet(whole, b)
    nvml.nvmlGpmMetricsGet(request)
    assert request.metrics[0].nvmlReturn == pynvml.NVML_SUCCESS
    assert 0 < request.metrics[0].value <= 100
    assert request.metrics[1].nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED
    request.version = 99
    with pytest.raises(pynvml.NVMLError_ArgumentVersionMismatch):
        nvml.nvmlGpmMetricsGet(request)
    with pytest.raises(pynvml.NVMLError_NotFound):  # no instance with that id
        nvml.nvmlGpmMigSampleGet(parent, 12, a)
    nvml.nvmlGpmSampleFree(a)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):  # freed twice
        nvml.nvmlGpmSampleFree(a)
    nvml.nvmlGpmSampleFree(b)
    assert nvml.gpm_samples_outstanding == 0


def test_gpm_tensor_and_dram_activity_are_the_true_means_in_percent() -> None:
    sim = make_sim("small")
    nvml = sim.nvml
    nvml.nvmlInit()
    whole = nvml.nvmlDeviceGetHandleByIndex(0)
    a, b = nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()
    nvml.nvmlGpmSampleGet(whole, a)
    t0 = sim.clock()
    sim.clock.advance(25)
    nvml.nvmlGpmSampleGet(whole, b)
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = 3
    request.sample1, request.sample2 = a, b
    pipes = [(pynvml.NVML_GPM_METRIC_SM_UTIL, Pipe.SM),
             (pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL, Pipe.TENSOR),
             (pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL, Pipe.DRAM)]  # fmt: skip
    for i, (metric_id, _) in enumerate(pipes):
        request.metrics[i].metricId = metric_id
    nvml.nvmlGpmMetricsGet(request)
    for i, (_, pipe) in enumerate(pipes):
        truth = sim.node.device_mean_activity(0, None, t0, sim.clock(), pipe)
        assert request.metrics[i].nvmlReturn == pynvml.NVML_SUCCESS
        assert request.metrics[i].value == pytest.approx(truth * 100) and truth > 0
    nvml.nvmlGpmSampleFree(a)
    nvml.nvmlGpmSampleFree(b)


def test_events_are_delivered_once_to_registered_sets() -> None:
    faults = [{"kind": "xid", "at": 5, "gpu": 0, "xid": 48}]
    sim = make_sim(scenario_from({"name": "t", "gpus": [{"model": "L4"}], "faults": faults}))
    sim.nvml.nvmlInit()
    unregistered, registered = sim.nvml.nvmlEventSetCreate(), sim.nvml.nvmlEventSetCreate()
    handle = sim.nvml.nvmlDeviceGetHandleByIndex(0)
    sim.nvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, registered)
    sim.clock.advance(10)
    event = sim.nvml.nvmlEventSetWait_v2(registered, 0)
    assert (event.eventType, event.eventData, event.device) == (
        pynvml.nvmlEventTypeXidCriticalError, 48, handle,
    )  # fmt: skip
    assert (event.gpuInstanceId, event.computeInstanceId) == (0xFFFFFFFF, 0xFFFFFFFF)
    for event_set in (registered, unregistered):
        with pytest.raises(pynvml.NVMLError_Timeout):
            sim.nvml.nvmlEventSetWait_v2(event_set, 0)


def test_an_xid_on_a_mig_slot_names_its_instance_as_it_was_then() -> None:
    faults = [
        {"kind": "xid", "at": 2, "gpu": 0, "slot": 1, "xid": 43},
        {"kind": "xid", "at": 3, "gpu": 0, "xid": 48},
        {"kind": "mig_repartition", "at": 4, "gpu": 0, "mig": ["7g.80gb"]},
        {"kind": "xid", "at": 5, "gpu": 0, "slot": 0, "xid": 31},
    ]
    gpus = [{"model": "H100-SXM5-80GB", "mig": ["3g.40gb", "2g.20gb"]}]
    sim = make_sim(scenario_from({"name": "t", "gpus": gpus, "faults": faults}))
    sim.nvml.nvmlInit()
    events = sim.nvml.nvmlEventSetCreate()
    parent = sim.nvml.nvmlDeviceGetHandleByIndex(0)
    sim.nvml.nvmlDeviceRegisterEvents(parent, pynvml.nvmlEventTypeXidCriticalError, events)
    before = sim.node.layout(0, 1.0) or ()
    assert [m.gpu_instance_id for m in before if m] == [1, 3]
    sim.clock.advance(10)
    seen = [sim.nvml.nvmlEventSetWait_v2(events, 0) for _ in range(3)]
    assert [(e.eventData, e.gpuInstanceId, e.computeInstanceId) for e in seen] == [
        (43, 3, 0),  # slot 1's 2g.20gb, destroyed since: the id it had then
        (48, 0xFFFFFFFF, 0xFFFFFFFF),  # no instance named
        (31, 0, 0),  # slot 0's 7g.80gb after the re-partition
    ]
    assert all(e.device == parent for e in seen)


def test_remapped_rows_are_not_supported_on_a_mig_gpu_with_instances() -> None:
    gpus = [
        {"model": "H100-SXM5-80GB", "mig": ["3g.40gb"]},
        {"model": "H100-SXM5-80GB", "mig": [None]},  # MIG mode, no instance yet
        {"model": "H100-SXM5-80GB"},
    ]
    sim = make_sim(scenario_from({"name": "t", "gpus": gpus}))
    sim.nvml.nvmlInit()
    mig, empty, whole = (sim.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(3))
    with pytest.raises(pynvml.NVMLError_NotSupported):
        sim.nvml.nvmlDeviceGetRemappedRows(mig)
    assert sim.nvml.nvmlDeviceGetRemappedRows(empty) == (0, 0, 0, 0)
    assert sim.nvml.nvmlDeviceGetRemappedRows(whole) == (0, 0, 0, 0)


def test_driver_outage() -> None:
    faults = [{"kind": "driver_not_loaded", "at": 5, "until": 8}]
    sim = make_sim(scenario_from({"name": "t", "gpus": [{"model": "L4"}], "faults": faults}))
    sim.nvml.nvmlInit()
    sim.clock.now = 6
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        sim.nvml.nvmlInit()
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        sim.nvml.nvmlDeviceGetCount()
    sim.clock.now = 9
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        sim.nvml.nvmlDeviceGetCount()
    sim.nvml.nvmlInit()
    assert sim.nvml.nvmlDeviceGetCount() == 1
