"""Scenario files: built-ins load, and every mistake gets a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulator.hardware import GPU_MODELS
from simulator.scenario import BUILT_IN, ScenarioError, XidFault, load_scenario


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return str(path)


def test_built_ins_describe_the_promised_nodes() -> None:
    dense = load_scenario("dense-h100")
    assert dense.gpu_models == ["H100-SXM5-80GB"] * 8
    assert all(spec.mig == ["1g.10gb"] * 7 for spec in dense.gpu_specs)
    assert len(dense.pods) == 56 and len({p.tenant for p in dense.pods}) > 1
    assert {p.load for p in dense.pods} == {"busy", "idle", "bursty", "never-used"}
    mixed = load_scenario("mixed")
    assert {p.load for p in mixed.pods} == {"busy", "idle", "bursty", "never-used"}
    assert any(spec.replicas > 1 for spec in mixed.gpu_specs)
    assert any(spec.mig is None for spec in mixed.gpu_specs)
    assert len({spec.model for spec in mixed.gpu_specs}) >= 3
    assert len({p.tenant for p in mixed.pods}) == 5
    assert [(p.name, p.devices) for p in mixed.pods if p.dra] == [("batch-dra-0", ["5"])]
    assert {p.engine for p in mixed.pods} == {
        "vllm", "sglang", "tgi", "trtllm", "triton", "llamacpp", "inhouse", None
    }  # fmt: skip
    assert mixed.engine_catalog == "inhouse"  # the one engine only a user catalog describes
    assert [(f.pod, f.at) for f in mixed.faults if f.kind == "engine_restart"] == [
        ("chat/chat-llama-0", 600.0)
    ]
    assert [p.name for p in mixed.pods if p.metrics_port] == ["search-0"]
    assert set(BUILT_IN) == {"dense-h100", "mixed", "small"}


def test_a_path_works_in_place_of_a_name(tmp_path: Path) -> None:
    path = write(tmp_path, "name: mine\ngpus: [{model: L4}]\n")
    assert load_scenario(path).name == "mine"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("gpus: [{model: L4}]", "name: Field required"),
        ("name: x\ngpus: [{model: V100}]", "unknown GPU model 'V100'"),
        ("name: x\ngpus: [{model: L4, mig: [1g.5gb]}]", "L4 has no MIG"),
        ("name: x\ngpus: [{model: H100-SXM5-80GB, mig: [7g.80gb, 1g.10gb]}]", "more than 7"),
        ("name: x\ngpus: [{model: H100-SXM5-80GB, mig: [1g.5gb]}]", "no MIG profile '1g.5gb'"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['3']}]", "no GPU 3"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0/1']}]", "allocated as the whole GPU"),
        ("name: x\ngpus: [{model: H100-SXM5-80GB, mig: [3g.40gb, null]}]\npods: [{name: p, "
         "namespace: n, tenant: t, devices: ['0/1']}]", "no MIG instance in slot 1"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, devices: ['0']}, "
         "{name: q, namespace: n, tenant: u, devices: ['0']}]",
         "namespace n: pod p names tenant 't' and pod q tenant 'u'; a namespace has one tenant"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, devices: ['0']}, "
         "{name: q, namespace: m, tenant: t, devices: ['0']}]",
         "GPU 0 is held 2 times (p, q); a GPU without time-slicing goes to one pod"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0', '0']}]", "GPU 0 is held 2 times (p, p)"),
        ("name: x\ngpus: [{model: L4, replicas: 2}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0', '0']}, {name: q, namespace: n, tenant: t, devices: ['0']}]",
         "GPU 0 is held 3 times (p, p, q) but has 2 time-slicing replicas"),
        ("name: x\ngpus: [{model: H100-SXM5-80GB, mig: [3g.40gb]}]\npods: [{name: p, "
         "namespace: n, tenant: t, devices: ['0/0']}, {name: q, namespace: n, tenant: t, "
         "devices: ['0/0']}]",
         "MIG slot 0/0 is held 2 times (p, q); a MIG instance goes to one pod"),
        ("name: x\ngpus: [{model: H100-SXM5-80GB, mig: [3g.40gb]}]\npods: [{name: p, "
         "namespace: n, tenant: t, devices: ['0/0'], dra: true}]",
         "pod p: `dra: true` takes whole GPUs without time-slicing; '0/0' is a MIG slot"),
        ("name: x\ngpus: [{model: L4, replicas: 2}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0'], dra: true}]", "'0' is a time-sliced GPU"),
        ("name: x\ngpus: [{model: L4}]\nfaults: [{kind: meteor, at: 1}]", "faults.0"),
        ("name: x\ngpus: [{model: L4}]\nfaults: [{kind: driver_not_loaded, at: 5, until: 2}]",
         "`until` must come after `at`"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0']}]\nfaults: [{kind: engine_restart, at: 5, pod: p}]",
         "engine_restart fault: no pod 'p' (\"namespace/name\")"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0'], engine: null}]\nfaults: [{kind: engine_restart, at: 5, pod: n/p}]",
         "engine_restart fault: pod n/p has no engine"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0']}]\nfaults: [{kind: engine_restart, at: 5, pod: n/p, down_seconds: 10}, "
         "{kind: engine_restart, at: 12, pod: n/p}]",
         "pod n/p restarts at 12 s while still down from the restart at 5 s"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0']}]\nfaults: [{kind: engine_restart, at: 5, pod: n/p, down_seconds: 0}]",
         "down_seconds: Input should be greater than 0"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0']}]\nfaults: [{kind: engine_body, at: 5, seconds: 1, pod: p, "
         "body: nan_value}]", "engine_body fault: no pod 'p' (\"namespace/name\")"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0'], engine: null}]\nfaults: [{kind: engine_body, at: 5, seconds: 1, "
         "pod: n/p, body: nan_value}]", "engine_body fault: pod n/p has no engine"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0']}]\nfaults: [{kind: engine_body, at: 5, seconds: 0, pod: n/p, "
         "body: nan_value}]", "seconds: Input should be greater than 0"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0']}]\nfaults: [{kind: engine_body, at: 5, pod: n/p, body: nan_value}]",
         "seconds: Field required"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0']}]\nfaults: [{kind: engine_body, at: 5, seconds: 1, pod: n/p, "
         "body: gibberish}]", "body: Input should be 'truncated', 'invalid_utf8'"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0']}]\nfaults: [{kind: engine_body, at: 5, seconds: 10, pod: n/p, "
         "body: nan_value}, {kind: engine_body, at: 14, seconds: 1, pod: n/p, body: truncated}]",
         "engine_body fault: pod n/p gets a truncated body at 14 s while its nan_value body "
         "from 5 s lasts"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0'], cold_start_seconds: -1}]", "cold_start_seconds"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0'], engine: null, metrics_port: 9000}]", "`metrics_port` needs an engine"),
        ("name: x\ngpus: [{model: L4}]\nfaults: [{kind: xid, at: 1, gpu: 0, xid: 43, slot: 0}]",
         "xid fault: GPU 0 is not in MIG mode; `slot` needs MIG"),
        ("name: x\ngpus: [{model: H100-SXM5-80GB, mig: [3g.40gb, null]}]\nfaults: [{kind: xid, "
         "at: 1, gpu: 0, xid: 43, slot: 1}]",
         "xid fault: GPU 0 has no MIG instance in slot 1 at 1 s"),
        ("name: x\ngpus: [{model: H100-SXM5-80GB, mig: [3g.40gb, 3g.40gb]}]\nfaults: ["
         "{kind: mig_repartition, at: 5, gpu: 0, mig: [7g.80gb]}, "
         "{kind: xid, at: 6, gpu: 0, xid: 43, slot: 1}]",
         "xid fault: GPU 0 has no MIG instance in slot 1 at 6 s"),
        ("name: x\ngpus: [{model: H100-SXM5-80GB, mig: [3g.40gb]}]\nfaults: [{kind: xid, "
         "at: 1, gpu: 0, xid: 43, slot: -1}]", "slot: Input should be greater than or equal to 0"),
        ("name: x\ngpus: [{model: L4}]\nextra: 1", "extra: Extra inputs are not permitted"),
        ("name: x\ngpus: [{model: L4", "not valid YAML"),
    ],
)  # fmt: skip
def test_mistakes_are_named(tmp_path: Path, document: str, message: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert message in str(error.value) and str(error.value).startswith(path)
    assert "\n" not in str(error.value)


def test_an_xid_slot_is_checked_against_the_layout_at_its_time(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, (
        "name: x\ngpus: [{model: H100-SXM5-80GB, mig: [7g.80gb]}]\nfaults: ["
        "{kind: xid, at: 6, gpu: 0, xid: 43, slot: 1}, "
        "{kind: mig_repartition, at: 5, gpu: 0, mig: [3g.40gb, 3g.40gb]}, "
        "{kind: xid, at: 4, gpu: 0, xid: 31, slot: 0}, {kind: xid, at: 4, gpu: 0, xid: 79}]"
    )))  # fmt: skip
    assert [(f.at, f.slot) for f in scenario.faults if isinstance(f, XidFault)] == [
        (6.0, 1), (4.0, 0), (4.0, None),
    ]  # fmt: skip


def test_unknown_name_lists_the_built_ins() -> None:
    with pytest.raises(ScenarioError, match="dense-h100, mixed, small"):
        load_scenario("nope")


@pytest.mark.parametrize("model", list(GPU_MODELS))
def test_every_mig_profile_memory_rounds_back_to_its_name(model: str) -> None:
    from exporter.sources.nvml.library import mig_profile_name
    from simulator.hardware import profile_slices

    for profile, mib in GPU_MODELS[model].mig_profiles.items():
        assert mig_profile_name(profile_slices(profile), profile_slices(profile), mib) == profile


def test_repeated_gpus_expand_in_order() -> None:
    data: dict[str, Any] = {
        "name": "x",
        "gpus": [{"model": "L4", "count": 2}, {"model": "A100-SXM4-40GB"}],
    }
    from simulator.scenario import Scenario

    assert Scenario.model_validate(data).gpu_models == ["L4", "L4", "A100-SXM4-40GB"]


def test_engine_restarts_of_a_pod_may_follow_each_other() -> None:
    from simulator.scenario import EngineRestartFault, Scenario

    scenario = Scenario.model_validate({
        "name": "x",
        "gpus": [{"model": "L4"}],
        "pods": [{"name": "p", "namespace": "n", "tenant": "t", "devices": ["0"]}],
        "faults": [
            {"kind": "engine_restart", "at": 15, "pod": "n/p"},  # back at 20: may die again
            {"kind": "engine_restart", "at": 20, "pod": "n/p", "down_seconds": 1},
            {"kind": "engine_restart", "at": 10, "pod": "n/p"},  # in any order
        ],
    })  # fmt: skip
    restarts = [f for f in scenario.faults if isinstance(f, EngineRestartFault)]
    assert [f.down_seconds for f in restarts] == [5.0, 1.0, 5.0]
    assert scenario.pods[0].cold_start_seconds == 30.0


def test_engine_body_faults_of_a_pod_may_follow_each_other() -> None:
    from simulator.bodies.faults import BodyFault
    from simulator.scenario import EngineBodyFault, Scenario

    scenario = Scenario.model_validate({
        "name": "x",
        "gpus": [{"model": "L4", "replicas": 2}],
        "pods": [{"name": "p", "namespace": "n", "tenant": "t", "devices": ["0"]},
                 {"name": "q", "namespace": "n", "tenant": "t", "devices": ["0"], "engine": "tgi"}],
        "faults": [
            {"kind": "engine_body", "at": 15, "seconds": 5, "pod": "n/p", "body": "truncated"},
            {"kind": "engine_body", "at": 20, "seconds": 1, "pod": "n/p", "body": "html_200"},
            {"kind": "engine_body", "at": 16, "seconds": 9, "pod": "n/q", "body": "nan_value"},
            {"kind": "engine_restart", "at": 17, "pod": "n/p"},  # another kind: no conflict
        ],
    })  # fmt: skip
    bodies = [(f.pod, f.at, f.body) for f in scenario.faults if isinstance(f, EngineBodyFault)]
    assert bodies == [
        ("n/p", 15.0, BodyFault.TRUNCATED),
        ("n/p", 20.0, BodyFault.HTML_200),
        ("n/q", 16.0, BodyFault.NAN_VALUE),
    ]


def test_a_time_sliced_gpu_takes_as_many_references_as_replicas() -> None:
    from simulator.scenario import Scenario

    pods = [
        {"name": "p", "namespace": "n", "tenant": "t", "devices": ["0", "0"]},
        {"name": "q", "namespace": "m", "tenant": "t", "devices": ["0"], "dra": False},
        {"name": "r", "namespace": "m", "tenant": "t", "devices": ["1"], "dra": True},
    ]
    gpus = [{"model": "L4", "replicas": 3}, {"model": "L4"}]
    scenario = Scenario.model_validate({"name": "x", "gpus": gpus, "pods": pods})
    assert [p.dra for p in scenario.pods] == [False, False, True]


# -- a pod's age and the GPU prices -------------------------------------------------------------


def test_pods_have_run_before_the_node_unless_told_otherwise(tmp_path: Path) -> None:
    from simulator.scenario import DEFAULT_STARTED_BEFORE_SECONDS

    assert DEFAULT_STARTED_BEFORE_SECONDS > 60  # past every built-in cold start
    for name in BUILT_IN:
        pods = load_scenario(name).pods
        assert {p.started_before_seconds for p in pods} == {DEFAULT_STARTED_BEFORE_SECONDS}
        assert all(p.cold_start_seconds < p.started_before_seconds for p in pods)
    path = write(tmp_path, "name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, "
                           "tenant: t, devices: ['0'], started_before_seconds: 0}]")  # fmt: skip
    assert load_scenario(path).pods[0].started_before_seconds == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0'], started_before_seconds: -1}]",
         "started_before_seconds: Input should be greater than or equal to 0"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, "
         "devices: ['0'], started_before_seconds: 1e12}]",
         "started_before_seconds: Input should be less than or equal to 2592000"),
        ("name: x\ngpus: [{model: L4}]\ngpu_hourly_cost: {'*L4*': -1}",
         "gpu_hourly_cost: Value error, price of '*L4*' must be a finite number >= 0"),
        ("name: x\ngpus: [{model: L4}]\ngpu_hourly_cost: {'*L4*': .inf}",
         "price of '*L4*' must be a finite number >= 0"),
        ("name: x\ngpus: [{model: L4}]\ngpu_hourly_cost: {'L4=x': 1}",
         "price pattern 'L4=x' is empty or holds ',' or '='"),
        ("name: x\ngpus: [{model: L4}]\ngpu_hourly_cost: {'*L4*': cheap}",
         "gpu_hourly_cost.*L4*: Input should be a valid number"),
        ("name: x\ngpus: [{model: L4}]\ngpu_hourly_cost: [4.1]",
         "gpu_hourly_cost: Input should be a valid dictionary"),
    ],
)  # fmt: skip
def test_a_bad_age_or_price_is_named(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        load_scenario(write(tmp_path, text))
    assert problem in str(raised.value)


def test_built_ins_price_every_gpu_model_they_use(tmp_path: Path) -> None:
    from fnmatch import fnmatchcase

    for name in BUILT_IN:
        scenario = load_scenario(name)
        assert scenario.gpu_prices == tuple(scenario.gpu_hourly_cost.items())
        for model in set(scenario.gpu_models):
            nvml_name = GPU_MODELS[model].name
            prices = [p for pattern, p in scenario.gpu_prices if fnmatchcase(nvml_name, pattern)]
            assert prices, f"{name}: {nvml_name} has no price"
            assert 0.5 <= prices[0] <= 10  # dollars per GPU-hour: a plausible list price
    mixed = dict(load_scenario("mixed").gpu_prices)
    assert mixed["*H200*"] > mixed["*H100*"] > mixed["*A100*80GB*"] > mixed["*L4*"]
    assert next(iter(mixed)) == "*H200*"  # order kept: first match wins
    assert load_scenario(write(tmp_path, "name: x\ngpus: [{model: L4}]\n")).gpu_prices == ()


def test_exporter_restarts_come_in_order_and_need_a_time() -> None:
    from simulator.scenario import Scenario, exporter_restarts

    base: dict[str, Any] = {"name": "x", "gpus": [{"model": "L4"}], "pods": []}
    restarts = [{"kind": "exporter_restart", "at": 300}, {"kind": "exporter_restart", "at": 30}]
    assert exporter_restarts(Scenario.model_validate({**base, "faults": restarts})) == [30, 300]
    assert exporter_restarts(Scenario.model_validate(base)) == []
    with pytest.raises(ValueError, match="at"):
        Scenario.model_validate({**base, "faults": [{"kind": "exporter_restart", "at": -1}]})


def test_triton_and_llamacpp_are_engine_kinds_and_others_are_not() -> None:
    from pydantic import ValidationError

    from simulator.scenario import PodSpec

    pod = {"name": "p", "namespace": "n", "tenant": "t", "devices": ["0"]}
    assert PodSpec.model_validate({**pod, "engine": "triton"}).engine == "triton"
    assert PodSpec.model_validate({**pod, "engine": "llamacpp"}).engine == "llamacpp"
    with pytest.raises(ValidationError, match="llamacpp"):  # the message lists the kinds
        PodSpec.model_validate({**pod, "engine": "ollama"})
