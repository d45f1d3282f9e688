"""mixin/rightsizing.py and mixin/profiles.py: the right-sizing rules, with promtool on a
synthetic history, then with the real Prometheus against the exporter on a simulated node.

The synthetic history (promtool) holds every case at round numbers, each computed here by
hand: an oversized engine pod, an undersized one, one right as it is, a pod without an
engine (memory used), an A100 MIG instance without an activity signal, an L4 (no MIG
table), a young pod, pods sharing a time-sliced GPU and a pod gone before the end.

The end-to-end proof is in `test_the_real_prometheus_*` (slow); see `tests/mixin/conftest.py`
for the stack and why its window is short.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mixin import profiles, rightsizing
from mixin.config import CONFIG, Config
from simulator.hardware import GPU_MODELS
from tests.mixin.conftest import ActionsStack
from tests.support.paths import REPO
from tests.support.programs import promtool

MIB = 1024 * 1024
JOB = {"job": "gpuwork-exporter"}
# Ten minutes of window, found to the minute: a pod needs 9 minutes of history.
UNIT = dataclasses.replace(
    CONFIG,
    rightsizing_window="10m",
    rightsizing_resolution="1m",
    rightsizing_interval="1m",
)
STEPS = 21  # samples at 0, 1, ..., 20 minutes
EVAL = "20m"
H100, A100, L4 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L4"
PRICE = {H100: 4.0, A100: 2.0, L4: 1.0}  # per GPU-hour
MONTH = CONFIG.hours_per_month


def test_the_tables_name_their_source_and_agree_with_the_simulated_gpus() -> None:
    assert "docs.nvidia.com/datacenter/tesla/mig-user-guide" in (profiles.__doc__ or "")
    simulated = {
        "h100-80gb": "H100-SXM5-80GB",
        "h200-141gb": "H200-SXM5-141GB",
        "a100-80gb": "A100-SXM4-80GB",
        "a100-40gb": "A100-SXM4-40GB",
    }
    assert {t.key for t in profiles.TABLES} == set(simulated)
    for table in profiles.TABLES:
        gpu = GPU_MODELS[simulated[table.key]]
        assert {p.name: p.memory_mib for p in table.profiles} == dict(gpu.mig_profiles)
        assert table.memory_mib == gpu.memory_mib
        assert table.profiles[-1].slices == profiles.SLICES
        for p in table.profiles:  # the name's `Ng.Mgb` is its slices and its GiB, rounded up
            assert p.name == f"{p.slices}g.{-(-p.memory_mib // 1024)}gb", p
        keys = [p.size_key for p in table.candidates]
        assert keys == sorted(set(keys)) and max(keys) < profiles.WHOLE_SIZE_KEY


def test_the_docs_show_the_tables_as_generated() -> None:
    assert profiles.markdown() in (REPO / "docs" / "rightsizing.md").read_text()


def test_durations() -> None:
    assert rightsizing.seconds("7d") == 604800
    assert rightsizing.enough_history_seconds(CONFIG) == 604800 - 3600
    with pytest.raises(ValueError, match="one unit"):
        rightsizing.seconds("1h30m")


@pytest.mark.integration
def test_promtool_accepts_the_rules() -> None:
    path = REPO / rightsizing.PATH
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# -- the synthetic history ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pod:
    name: str
    device: str
    gpu: str
    model: str
    profile: str  # "" for a whole GPU
    fraction: float
    memory_mib: int
    activity: float | None  # None: no activity signal
    kv: float | None  # None: no engine
    since: int = 0
    until: int = STEPS
    share: float = 1.0


PODS = [
    Pod("over-0", "GPU-0", "GPU-0", H100, "", 1.0, 81559, 0.0, 0.0),
    Pod("right-0", "GPU-1", "GPU-1", H100, "", 1.0, 81559, 0.9, 0.9),
    Pod("under-0", "MIG-2a", "GPU-2", H100, "1g.10gb", 1 / 7, 9856, 0.97, 0.8),
    Pod("batch-0", "MIG-2b", "GPU-2", H100, "2g.20gb", 2 / 7, 19968, 0.0, None),
    Pod("a100-0", "MIG-3a", "GPU-3", A100, "3g.40gb", 3 / 7, 40192, None, 0.0),
    Pod("l4-0", "GPU-4", "GPU-4", L4, "", 1.0, 23034, 0.1, 0.1),
    Pod("young-0", "GPU-5", "GPU-5", H100, "", 1.0, 81559, 0.9, 0.9, since=15),
    Pod("shared-a", "GPU-6", "GPU-6", H100, "", 1.0, 81559, 0.5, 0.5, share=0.5),
    Pod("shared-b", "GPU-6", "GPU-6", H100, "", 1.0, 81559, 0.5, 0.5, share=0.5),
    Pod("gone-0", "GPU-7", "GPU-7", H100, "", 1.0, 81559, 0.9, 0.9, until=8),
]


def _values(value: float, since: int = 0, until: int = STEPS) -> str:
    return " ".join(repr(value) if since <= i < until else "_" for i in range(STEPS))


def _series(name: str, labels: Mapping[str, str]) -> str:
    return name + "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def synthetic() -> list[dict[str, str]]:
    inputs: dict[str, str] = {}

    def put(name: str, value: float, since: int = 0, until: int = STEPS, **labels: str) -> None:
        inputs[_series(name, {**labels, **JOB})] = _values(value, since, until)

    for pod in PODS:
        device = {"device": pod.device}
        put("gpuwork_gpu_info", 1, gpu_uuid=pod.gpu, model_name=pod.model, node="n1")
        put("gpuwork_device_info", 1, gpu_uuid=pod.gpu, mig_profile=pod.profile, node="n1",
            **device)  # fmt: skip
        put("gpuwork_device_gpu_fraction", pod.fraction, **device)
        put("gpuwork_device_hourly_cost", PRICE[pod.model] * pod.fraction, **device)
        put("gpuwork_device_memory_total_bytes", pod.memory_mib * MIB, **device)
        # what vLLM reserves (and the simulator's processes hold): 90% of the device
        put("gpuwork_device_memory_used_bytes", int(pod.memory_mib * MIB * 0.9), **device)
        if pod.activity is not None:
            put("gpuwork_device_sm_active_ratio", pod.activity, **device)
        ids = {"namespace": "ns", "pod": pod.name, "tenant": "t"}
        put("gpuwork_device_allocation", pod.share, pod.since, pod.until, container="main",
            **device, **ids)  # fmt: skip
        if pod.kv is not None:
            put("gpuwork_engine_kv_cache_usage_ratio", pod.kv, pod.since, pod.until,
                model="m", engine="vllm", **ids)  # fmt: skip
    return [{"series": s, "values": v} for s, v in inputs.items()]


def advice(
    pod: str,
    device: str,
    model: str,
    current: str,
    recommended: str,
    advice: str,
    confidence: str,
    memory: str = "engine_kv_cache",
    compute: str = "sm_activity",
    table: str = "h100-80gb",
) -> dict[str, str]:
    labels = {
        "namespace": "ns", "pod": pod, "tenant": "t", "device": device, "node": "n1",
        "model_name": model, "mig_table": table, "current_profile": current,
        "recommended_profile": recommended, "advice": advice, "confidence": confidence,
        "memory_basis": memory, "compute_basis": compute,
    }  # fmt: skip
    return {k: v for k, v in labels.items() if v}


# Worked by hand from PODS and the config's defaults (quantile of constant activity = it;
# compute headroom and memory headroom 1.2; KV-cache share 0.7):
# - over-0, whole H100: compute 0; memory 0.9 x 81559 MiB x (1 - 0.7 x (1 - 0)) x 1.2
#   = 26425 MiB: over 19968 (the 20gb profiles), within 40192 -> 3g.40gb;
# - right-0, whole H100: compute 0.9 x 1 x 1.2 = 1.08 GPUs: no profile holds it -> whole;
# - under-0, 1g.10gb: compute 0.97 x 1/7 x 1.2 = 0.166 > 1/7, <= 2/7 -> 2g.20gb (memory
#   0.9 x 9856 x (1 - 0.7 x 0.2) x 1.2 = 9155 MiB fits both);
# - batch-0, 2g.20gb, no engine: memory used 0.9 x 19968 x 1.2, capped at the device's
#   19968 MiB -> 1g.20gb holds it (same memory, one slice); compute 0;
# - a100-0, A100 3g.40gb without activity: compute kept at 3/7 -> 3g.40gb (memory
#   0.9 x 40192 x 0.3 x 1.2 = 13023 MiB); confidence low;
# - l4-0: no MIG table -> whole; young-0: 5 minutes of history < 9 -> not enough data;
#   shared-*: no advice (half a GPU each); gone-0: gone.
EXPECTED = [
    (advice("over-0", "GPU-0", H100, "whole", "3g.40gb", "downsize", "high"),
     PRICE[H100] * (1 - 3 / 7) * MONTH),
    (advice("right-0", "GPU-1", H100, "whole", "whole", "keep", "high"), 0.0),
    (advice("under-0", "MIG-2a", H100, "1g.10gb", "2g.20gb", "upsize", "high"),
     PRICE[H100] * (1 / 7 - 2 / 7) * MONTH),
    (advice("batch-0", "MIG-2b", H100, "2g.20gb", "1g.20gb", "downsize", "medium",
            memory="memory_used"), PRICE[H100] * (2 / 7 - 1 / 7) * MONTH),
    (advice("a100-0", "MIG-3a", A100, "3g.40gb", "3g.40gb", "keep", "low",
            compute="assumed_current", table="a100-80gb"), 0.0),
    (advice("l4-0", "GPU-4", L4, "whole", "whole", "keep", "high", table=""), 0.0),
]  # fmt: skip
YOUNG = advice("young-0", "GPU-5", H100, "whole", "", "not_enough_data", "none", memory="",
               compute="")  # fmt: skip


def _sample(labels: Mapping[str, str], value: float) -> dict[str, Any]:
    return {"labels": "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
            + "}", "value": value}  # fmt: skip


def unit_test(rules: Path) -> dict[str, Any]:
    recommended = [_sample({"__name__": rightsizing.RECOMMENDED, **labels}, 1)
                   for labels, _ in EXPECTED]  # fmt: skip
    recommended.append(_sample({"__name__": rightsizing.RECOMMENDED, **YOUNG}, 1))
    savings = [  # the saving carries all but the advice's own label
        _sample({"__name__": rightsizing.SAVING,
                 **{k: v for k, v in labels.items() if k != "advice"}}, value)
        for labels, value in EXPECTED
    ]  # fmt: skip
    history = [
        _sample({"__name__": rightsizing.HISTORY, "namespace": "ns", "pod": pod.name,
                 "tenant": "t", "device": pod.device}, 60.0 * min(20 - pod.since, 10))
        for pod in PODS if pod.until == STEPS and pod.share == 1
    ]  # fmt: skip
    return {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": synthetic(),
                "promql_expr_test": [
                    {"expr": rightsizing.RECOMMENDED, "eval_time": EVAL,
                     "exp_samples": recommended},
                    {"expr": rightsizing.SAVING, "eval_time": EVAL, "exp_samples": savings},
                    {"expr": rightsizing.HISTORY, "eval_time": EVAL, "exp_samples": history},
                ],
            }
        ],
    }  # fmt: skip


@pytest.mark.integration
def test_the_advice_on_a_synthetic_history_is_the_hand_computed_one(tmp_path: Path) -> None:
    rules = tmp_path / "rightsizing.rules.yml"
    rules.write_text(rightsizing.files(UNIT)[rightsizing.PATH])
    test = tmp_path / "rightsizing.test.yml"
    test.write_text(json.dumps(unit_test(rules)))
    result = subprocess.run([promtool(), "test", "rules", str(test)], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_a_pod_is_young_until_the_window_less_one_step() -> None:
    config: Config = UNIT
    assert rightsizing.enough_history_seconds(config) == 540
    text = rightsizing.files(config)[rightsizing.PATH]
    assert ">= 540)" in text and "[10m:1m]" in text


# -- the real Prometheus --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_the_real_prometheus_advises_the_expected_profile_for_each_pod(
    actions: ActionsStack,
) -> None:
    at, got = actions.advice()
    expected = actions.expected_advice(at)
    # every pod the scenario means to prove has one answer whatever the window holds
    assert {"right-0", "over-0", "under-0", "batch-0", "young-0"} <= set(expected), expected
    assert set(got) == {"right-0", "over-0", "under-0", "batch-0", "chat-0", "young-0"}
    assert {p: expected[p][:2] for p in ("right-0", "over-0", "under-0", "batch-0", "young-0")} == {
        "right-0": ("whole", "keep"),
        "over-0": ("3g.40gb", "downsize"),
        "under-0": ("2g.20gb", "upsize"),
        "batch-0": ("1g.20gb", "downsize"),
        "young-0": ("", "not_enough_data"),
    }
    assert got["batch-0"][0]["memory_basis"] == "memory_used"  # no engine: it says so
    assert got["batch-0"][0]["confidence"] == "medium"
    assert got["over-0"][0]["memory_basis"] == "engine_kv_cache"
    for pod, (profile, kind, saving) in expected.items():
        labels, value = got[pod]
        assert (labels.get("recommended_profile", ""), labels["advice"]) == (profile, kind), (
            pod,
            labels,
        )
        if saving is None:
            assert value is None, (pod, value)
        else:
            assert value == pytest.approx(saving, rel=1e-9), (pod, value, saving)
