"""The simulated node's ground truth: shares, memory, power and energy."""

from __future__ import annotations

import errno
import ipaddress
import random
import socket
import time
from typing import Any

import pytest

from exporter.model import ContainerDevices
from simulator.loads import MODEL_MEMORY_FRACTION
from simulator.node import (
    DISCOVERED_PORTS,
    DRA_DRIVER,
    ENGINE_PORT,
    FIRST_POD_BLOCK,
    GPU_RESOURCE,
    LAST_POD_BLOCK,
    PATH_ANNOTATION,
    PORT_ANNOTATION,
    SHARED_RESOURCE,
    TENANT_LABEL,
    PodAddressError,
    SimulatedNode,
    engine_annotations,
    engine_endpoint,
    free_pod_block,
    pod_ip,
    pod_uid,
    probe_listen,
)
from simulator.scenario import DEFAULT_STARTED_BEFORE_SECONDS, PodSpec, Scenario, load_scenario


def node(name: str) -> SimulatedNode:
    return SimulatedNode(load_scenario(name), clock=lambda: 0.0)


def node_of(data: dict[str, Any]) -> SimulatedNode:
    return SimulatedNode(Scenario.model_validate({"name": "t", **data}), clock=lambda: 0.0)


def allocated_ids(sim: SimulatedNode, t: float) -> dict[str, dict[str, tuple[str, ...]]]:
    """pod name -> resource -> device ids, from the kubelet's answer at t."""
    held: dict[str, dict[str, tuple[str, ...]]] = {}
    for entry in sim.kubelet_devices(t).allocated:
        assert entry.resource not in held.get(entry.pod, {})  # one entry per resource
        held.setdefault(entry.pod, {})[entry.resource] = entry.device_ids
    return held


def test_identities_are_stable_and_distinct() -> None:
    first, second = node("dense-h100"), node("dense-h100")
    assert first.gpu_uuids == second.gpu_uuids and len(set(first.gpu_uuids)) == 8
    migs = [d.device for d in first.devices(1.0)]
    assert len(set(migs)) == 56 and all(m.startswith("MIG-") for m in migs)
    assert [d.device for d in second.devices(1.0)] == migs


def test_time_sliced_pods_share_time_and_memory() -> None:
    mixed = node("mixed")
    (shared,) = [d for d in mixed.devices(30.0) if len(d.pods) == 3]
    busy = mixed.device_activity(1, None, 30.0)
    assert 0 < busy <= 1 / 3  # one busy pod out of three gets a third of the time
    # Two of the three pods run a process; each holds a third of 90% of memory.
    assert shared.processes == 2
    assert shared.memory_used_bytes == 2 * int(
        shared.memory_total_bytes * MODEL_MEMORY_FRACTION / 3
    )


def test_free_devices_are_empty() -> None:
    free = [d for d in node("mixed").devices(30.0) if not d.pods]
    assert [d.mig_profile for d in free] == ["3g.40gb"]  # the spare one on GPU 2
    assert all(
        d.memory_used_bytes == 0 and d.processes == 0 and d.sm_active_ratio == 0 for d in free
    )


def test_energy_integrates_power() -> None:
    small = node("small")
    steps = [i * 0.5 for i in range(1, 241)]
    energy = 0.0
    for previous, t in zip([0.0, *steps], steps, strict=False):
        energy += small.power_watts(0, (previous + t) / 2) * (t - previous)
    assert small.energy_joules(0, 120.0) == pytest.approx(energy, rel=1e-9)
    assert small.energy_joules(0, 60.0) == small.energy_joules(0, 120.0)  # never goes back


def test_a_driver_reload_starts_the_energy_counter_again() -> None:
    reload = {"kind": "driver_not_loaded", "at": 30, "until": 40}
    reloaded = node_of({"gpus": [{"model": "L4"}], "faults": [reload]})
    steady = node_of({"gpus": [{"model": "L4"}]})
    before = reloaded.energy_joules(0, 20.0)
    assert before == pytest.approx(steady.energy_joules(0, 20.0)) and before > 0
    # NVML counts since the driver loaded: from 40 s, as if the GPU had started then
    assert reloaded.energy_joules(0, 50.0) == pytest.approx(16 * 10)  # L4 idle: 16 W
    assert reloaded.energy_joules(0, 50.0) < before


def test_device_energy_follows_the_power_model_and_adds_up_to_the_gpu() -> None:
    small = node("small")  # GPU 1: 3g.40gb idle, 2g.20gb bursty, a free slot, 1g.10gb free
    model = small.models[1]
    gpu = small.energy_joules(1, 120.0)
    instances = sum(small.device_energy_joules(1, slot, 0, 120.0) for slot in (0, 1, 3))
    free_idle = model.idle_watts * 1 / 7 * 120.0  # the free slice still idles
    assert gpu == pytest.approx(instances + free_idle, rel=1e-9)
    # one instance: its slices' idle power and its own activity's part of the rest
    busy = small.device_mean_activity(1, 1, 0, 120.0)
    assert busy > 0
    dynamic = (model.max_watts - model.idle_watts) * busy * 2 / 7
    assert small.device_energy_joules(1, 1, 0, 120.0) == pytest.approx(
        (model.idle_watts * 2 / 7 + dynamic) * 120.0
    )
    assert small.device_energy_joules(1, 0, 0, 120.0) == pytest.approx(
        model.idle_watts * 3 / 7 * 120.0  # an idle instance: its idle share alone
    )
    # a whole GPU's is its counter's
    assert small.device_energy_joules(0, None, 0, 120.0) == pytest.approx(
        small.energy_joules(0, 120.0)
    )


def test_gpu_activity_on_mig_weights_instances_by_slices() -> None:
    small = node("small")
    expected = sum(
        small.device_mean_activity(1, slot, 0, 40) * slices / 7
        for slot, slices in ((0, 3), (1, 2), (3, 1))
    )
    assert small.gpu_mean_activity(1, 0, 40) == pytest.approx(expected)


# -- the kubelet's pod-resources answer ----------------------------------------------------


def test_kubelet_names_whole_gpus_by_uuid() -> None:
    mixed = node("mixed")
    answer, held = mixed.kubelet_devices(30.0), allocated_ids(mixed, 30.0)
    uuids = mixed.gpu_uuids
    assert held["chat-llama-0"] == {GPU_RESOURCE: (uuids[0],)}
    assert held["search-l4-0"] == {GPU_RESOURCE: (uuids[6],)}
    # GPU 5 goes through DRA, GPU 1 is time-sliced: neither is a plain nvidia.com/gpu.
    assert answer.allocatable[GPU_RESOURCE] == (uuids[0], uuids[6])


def test_kubelet_hands_out_time_slicing_replicas_in_scenario_order() -> None:
    mixed = node("mixed")
    answer, held = mixed.kubelet_devices(30.0), allocated_ids(mixed, 30.0)
    sliced = mixed.gpu_uuids[1]
    assert held["ads-ranker-0"] == {SHARED_RESOURCE: (f"{sliced}::0",)}
    assert held["research-nb-0"] == {SHARED_RESOURCE: (f"{sliced}::1",)}
    assert held["ads-batch-0"] == {SHARED_RESOURCE: (f"{sliced}::2",)}
    assert answer.allocatable[SHARED_RESOURCE] == tuple(f"{sliced}::{r}" for r in range(4))


def test_a_pod_listing_a_sliced_gpu_twice_holds_two_replicas() -> None:
    sim = node_of({
        "gpus": [{"model": "H100-SXM5-80GB", "replicas": 4}],
        "pods": [
            {"name": "a", "namespace": "n", "tenant": "t", "devices": ["0"]},
            {"name": "b", "namespace": "n", "tenant": "t", "devices": ["0", "0"]},
        ],
    })  # fmt: skip
    gpu = sim.gpu_uuids[0]
    assert allocated_ids(sim, 1.0) == {
        "a": {SHARED_RESOURCE: (f"{gpu}::0",)},
        "b": {SHARED_RESOURCE: (f"{gpu}::1", f"{gpu}::2")},
    }
    # The kubelet's replica count is the share the ground truth gives each holder.
    for tenancy in sim.tenants_of(0, None):
        (ids,) = allocated_ids(sim, 1.0)[tenancy.pod.name].values()
        assert len(ids) / 4 == sim.holding_share(0, tenancy)


def test_kubelet_mig_ids_are_the_instances_nvml_reports() -> None:
    mixed = node("mixed")
    answer = mixed.kubelet_devices(30.0)
    truth = {d.device: d for d in mixed.devices(30.0) if d.mig_profile}
    for entry in answer.allocated:
        if entry.resource.startswith("nvidia.com/mig-"):
            (device,) = entry.device_ids
            assert truth[device].pods == (f"{entry.namespace}/{entry.pod}",)
            assert entry.resource == f"nvidia.com/mig-{truth[device].mig_profile}"
    mig = {r: ids for r, ids in answer.allocatable.items() if r.startswith("nvidia.com/mig-")}
    assert {r: len(ids) for r, ids in mig.items()} == {
        "nvidia.com/mig-3g.40gb": 3,  # two on GPU 2 (one free), one on the A100
        "nvidia.com/mig-2g.20gb": 3,
        "nvidia.com/mig-1g.10gb": 1,
        "nvidia.com/mig-4g.40gb": 1,
        "nvidia.com/mig-7g.141gb": 1,
    }
    assert sorted(d for ids in mig.values() for d in ids) == sorted(truth)


def test_dra_pod_is_a_dynamic_claim_and_its_gpu_leaves_the_device_plugin() -> None:
    mixed = node("mixed")
    answer = mixed.kubelet_devices(30.0)
    (dra,) = [entry for entry in answer.allocated if entry.dynamic]
    assert dra == ContainerDevices("batch", "batch-dra-0", "main", DRA_DRIVER, ("gpu-5",), True)
    assert DRA_DRIVER not in answer.allocatable  # DRA devices are in ResourceSlices
    plugin_ids = {i for r, ids in answer.allocatable.items() if r != DRA_DRIVER for i in ids}
    assert not any(i.startswith(mixed.gpu_uuids[5]) for i in plugin_ids)


def test_every_allocated_plugin_id_is_allocatable_and_containers_are_named() -> None:
    for name in ("mixed", "small", "dense-h100"):
        sim = node(name)
        answer = sim.kubelet_devices(30.0)
        for entry in answer.allocated:
            if not entry.dynamic:  # DRA devices are not in GetAllocatableResources
                assert set(entry.device_ids) <= set(answer.allocatable[entry.resource])
        assert len({(e.namespace, e.pod) for e in answer.allocated}) == len(sim.scenario.pods)
    sim = node_of({
        "gpus": [{"model": "L4"}],
        "pods": [{"name": "p", "namespace": "n", "tenant": "t", "devices": ["0"],
                  "container": "engine"}],
    })  # fmt: skip
    assert [e.container for e in sim.kubelet_devices(1.0).allocated] == ["engine"]


def test_after_a_repartition_pods_follow_their_slot_or_get_nothing() -> None:
    sim = node_of({
        "gpus": [{"model": "H100-SXM5-80GB", "mig": ["3g.40gb", "3g.40gb"]}],
        "pods": [
            {"name": "p0", "namespace": "n", "tenant": "t", "devices": ["0/0"]},
            {"name": "p1", "namespace": "n", "tenant": "t", "devices": ["0/1"]},
        ],
        "faults": [{"kind": "mig_repartition", "at": 5, "gpu": 0, "mig": ["7g.80gb"]}],
    })  # fmt: skip
    before = allocated_ids(sim, 1.0)
    assert set(before) == {"p0", "p1"}
    assert {d.device for d in sim.devices(1.0)} == {
        i for ids in before.values() for i in ids["nvidia.com/mig-3g.40gb"]
    }
    (whole,) = sim.devices(10.0)
    assert allocated_ids(sim, 10.0) == {"p0": {"nvidia.com/mig-7g.80gb": (whole.device,)}}
    assert dict(sim.kubelet_devices(10.0).allocatable) == {
        "nvidia.com/mig-7g.80gb": (whole.device,)
    }


def test_a_lost_gpu_stays_allocated_as_the_kubelet_does_not_know() -> None:
    data = load_scenario("small").model_dump(mode="json")
    data["faults"] = [{"kind": "gpu_lost", "at": 5, "gpu": 0}]
    sim = SimulatedNode(Scenario.model_validate(data), clock=lambda: 0.0)
    assert sim.kubelet_devices(10.0) == sim.kubelet_devices(1.0)
    assert allocated_ids(sim, 10.0)["chat-0"] == {GPU_RESOURCE: (sim.gpu_uuids[0],)}
    assert sim.gpu_uuids[0] not in {d.gpu_uuid for d in sim.devices(10.0)}


def test_kubelet_answers_are_cached_deterministic_and_immutable() -> None:
    dense = node("dense-h100")
    first = dense.kubelet_devices(1.0)
    assert dense.kubelet_devices(500.0) is first  # no re-partition: the same answer
    assert node("dense-h100").kubelet_devices(1.0) == first
    assert len(first.allocated) == 56 and len(first.allocatable["nvidia.com/mig-1g.10gb"]) == 56
    with pytest.raises(TypeError):
        first.allocatable["nvidia.com/gpu"] = ()  # type: ignore[index]


# -- the Kubernetes API's pods and namespaces --------------------------------------------------


def test_cluster_view_has_every_pod_and_namespace() -> None:
    mixed = node("mixed")
    view = mixed.cluster_view()
    assert view.synced and not view.stale
    assert list(view.pods) == [(p.namespace, p.name) for p in mixed.scenario.pods]
    for index, spec in enumerate(mixed.scenario.pods):
        pod = view.pods[(spec.namespace, spec.name)]
        assert (pod.uid, pod.pod_ip, pod.phase) == (pod_uid(spec), mixed.pod_ip(index), "Running")
        assert pod.start_time == mixed.wall_start - spec.started_before_seconds
        assert dict(pod.labels) == spec.labels
        if spec.engine in DISCOVERED_PORTS:
            named, declared = DISCOVERED_PORTS[spec.engine]
            assert (pod.container_ports, pod.declared_ports) == (named, declared)
        else:
            assert dict(pod.container_ports) == ({"http": 8000} if spec.engine else {})
    assert view.pods[("batch", "batch-dra-0")].container_ports == {}  # engine: null
    assert view.pods[("ads-batch", "ads-batch-0")].labels == {"team": "ads"}
    # prometheus.io/* only where the defaults (port `http`, /metrics) would miss the engine
    annotated = {key: dict(pod.annotations) for key, pod in view.pods.items() if pod.annotations}
    assert annotated == {
        ("ads", "ads-a100-0"): {PATH_ANNOTATION: "/prometheus/metrics"},  # trtllm-serve
        ("search", "search-0"): {PORT_ANNOTATION: "9000"},  # TGI's --prometheus-port
    }
    assert {name: dict(ns.labels) for name, ns in view.namespaces.items()} == {
        "chat": {TENANT_LABEL: "chat"},
        "ads": {TENANT_LABEL: "ads"},
        "ads-batch": {TENANT_LABEL: "ads"},
        "research": {TENANT_LABEL: "research"},
        "search": {TENANT_LABEL: "search"},
        "batch": {TENANT_LABEL: "batch"},
    }
    assert mixed.cluster_view() is view


def test_pods_started_their_age_before_the_node_did() -> None:
    scenario = load_scenario("small")
    sim = SimulatedNode(scenario, clock=lambda: 0.0, wall_start=1_764_000_000.0)
    assert sim.wall_start == 1_764_000_000.0
    assert {pod.start_time for pod in sim.cluster_view().pods.values()} == {
        1_764_000_000.0 - DEFAULT_STARTED_BEFORE_SECONDS
    }
    pods = [{"name": "new", "namespace": "a", "tenant": "a", "devices": ["0"],
             "started_before_seconds": 0},
            {"name": "old", "namespace": "a", "tenant": "a", "devices": ["1"],
             "started_before_seconds": 7200}]  # fmt: skip
    aged = SimulatedNode(
        Scenario.model_validate({"name": "t", "gpus": [{"model": "L4", "count": 2}], "pods": pods}),
        clock=lambda: 0.0,
        wall_start=1_764_000_000.0,
    )
    starts = {key[1]: pod.start_time for key, pod in aged.cluster_view().pods.items()}
    assert starts == {"new": 1_764_000_000.0, "old": 1_764_000_000.0 - 7200}
    before = time.time()
    now = SimulatedNode(scenario)  # started now; its clock counts from then
    assert before <= now.wall_start <= time.time()
    assert 0 <= now.clock() < 1
    earlier = SimulatedNode(scenario, wall_start=time.time() - 100)  # t follows the wall start
    assert 100 <= earlier.clock() < 101


def test_cluster_view_is_immutable() -> None:
    view = node("small").cluster_view()
    pod = view.pods[("chat", "chat-0")]
    with pytest.raises(TypeError):
        view.pods[("x", "y")] = pod  # type: ignore[index]
    with pytest.raises(TypeError):
        pod.labels["k"] = "v"  # type: ignore[index]
    with pytest.raises(TypeError):
        view.namespaces["chat"].labels[TENANT_LABEL] = "other"  # type: ignore[index]


def test_pod_ips_are_distinct_loopback_addresses() -> None:
    assert [pod_ip(i, 0x0105) for i in (0, 1, 253, 254, 255)] == [
        "127.1.5.1", "127.1.5.2", "127.1.5.254", "127.1.6.1", "127.1.6.2",
    ]  # fmt: skip
    assert pod_ip(0, 0xFFFF) == "127.255.255.1"
    ips = [pod_ip(i, FIRST_POD_BLOCK) for i in range(0, 254 * 300, 7)]
    assert len(set(ips)) == len(ips)
    for ip in ips:
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8")
        assert ip.rsplit(".", 1)[1] not in {"0", "255"}
        assert not ip.startswith("127.0.")
    with pytest.raises(ValueError, match="no loopback address"):
        pod_ip(-1, FIRST_POD_BLOCK)
    with pytest.raises(ValueError, match="no loopback address"):
        pod_ip(254, 0xFFFF)  # past 127.255.255.254
    with pytest.raises(ValueError, match="no loopback address"):
        pod_ip(0, 0x00FF)  # 127.0.255.1: 127.0.0.0/16 is left alone


def test_each_node_draws_its_own_block_and_keeps_it() -> None:
    scenario = load_scenario("dense-h100")
    nodes = [SimulatedNode(scenario, clock=lambda: 0.0) for _ in range(8)]
    blocks = {sim.pod_block for sim in nodes}
    assert len(blocks) > 1  # 8 draws out of ~65,000 blocks
    for sim in nodes:
        assert FIRST_POD_BLOCK <= sim.pod_block <= LAST_POD_BLOCK
        ips = [sim.pod_ip(i) for i in range(len(scenario.pods))]
        assert ips == [pod_ip(i, sim.pod_block) for i in range(len(scenario.pods))]
        assert [p.pod_ip for p in sim.cluster_view().pods.values()] == ips  # metadata agrees
        assert [sim.pod_ip(i) for i in range(len(scenario.pods))] == ips  # fixed once drawn
    given = SimulatedNode(scenario, clock=lambda: 0.0, pod_block=0x2A00)
    assert given.pod_ip(0) == "127.42.0.1"
    with pytest.raises(ValueError, match="pod block 255 out of range"):
        SimulatedNode(scenario, clock=lambda: 0.0, pod_block=0xFF)


def test_nodes_with_the_same_wall_start_and_a_real_clock_agree_on_addresses() -> None:
    """The engines in a process of their own and the exporter's node, given one wall_start."""
    scenario = load_scenario("mixed")
    wall_start = 1_764_000_000.0
    a, b = (
        SimulatedNode(scenario, wall_start=wall_start),
        SimulatedNode(scenario, wall_start=wall_start),
    )
    assert a.pod_block == b.pod_block
    assert a.cluster_view().pods == b.cluster_view().pods
    assert SimulatedNode(scenario, wall_start=wall_start + 1).pod_block != a.pod_block


def test_a_taken_block_is_skipped() -> None:
    """A block where another simulation's engine listens is not drawn again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind((pod_ip(1, 0x3000), 9000))
        taken.listen()
        draws = iter([0x3000, 0x3000, 0x4000])
        rng = random.Random()
        rng.randint = lambda a, b: next(draws)  # type: ignore[method-assign]
        assert free_pod_block([(0, 8000), (1, 9000)], 1, rng) == 0x4000


def test_listening_on_a_taken_address_names_it() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.5.3.7", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PodAddressError) as raised:
            probe_listen("127.5.3.7", port)
    assert str(raised.value) == f"cannot listen on 127.5.3.7:{port}: Address already in use"
    assert raised.value.errno == errno.EADDRINUSE


def test_triton_and_llamacpp_serve_metrics_on_their_own_ports() -> None:
    base = {"namespace": "n", "tenant": "t", "devices": ["0"]}
    pods = [
        PodSpec.model_validate({**base, "name": "a", "engine": "triton"}),
        PodSpec.model_validate({**base, "name": "b", "engine": "llamacpp"}),
        PodSpec.model_validate({**base, "name": "c", "engine": "triton", "metrics_port": 9102}),
        PodSpec.model_validate({**base, "name": "d", "engine": "vllm"}),
    ]
    assert [engine_endpoint(p) for p in pods] == [
        (8002, "/metrics"), (8080, "/metrics"), (9102, "/metrics"), (ENGINE_PORT, "/metrics"),
    ]  # fmt: skip
    assert DISCOVERED_PORTS["triton"][1] == (8000, 8001, 8002)  # HTTP, gRPC, metrics
    # no annotation: the exporter finds the port among the declared ones
    assert [engine_annotations(p) for p in pods] == [{}, {}, {PORT_ANNOTATION: "9102"}, {}]
