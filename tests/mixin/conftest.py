"""The stack that proves the right-sizing advice and the autoscaling signals end to end
(tests/mixin/test_rightsizing.py, tests/mixin/test_autoscaling.py share it).

Two simulated nodes, each the exporter as a real process (`--simulate`), scraped by one
real Prometheus that loads the generated right-sizing and autoscaling rules. The main node
holds pods deliberately oversized (an idle vLLM on a whole H100), undersized (a saturated
vLLM on a `1g.10gb`), right (a busy vLLM on a whole H100), a pod without an engine (idle on
a `2g.20gb`) and the `chat` deployment the autoscaling examples scale (a bursty vLLM: its
demand crosses the threshold both ways in every two minutes). The second node starts
`YOUNG_AFTER` seconds later with one pod: the young pod.

A 7-day window cannot be waited for, so the rules are generated with the window cut to
`WINDOW` (and the subquery step and the advice group's interval to the scrape interval):
the expressions are the ones users get, only the durations differ. A young pod is then
one with less than `WINDOW` (less one step) of history in Prometheus, as a pod younger
than a week is with the defaults. Backfilling a week of samples instead would need the
exporter's outputs written at past timestamps, which would test the backfill more than the
rules.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.kube_apiserver import free_port
from harness.monitoring import ProgramMissingError, PromQL, prometheus
from mixin import autoscaling, profiles, rightsizing
from mixin.config import CONFIG, Config
from mixin.generate import generated
from simulator.hardware import GPU_MODELS, MIB
from simulator.loads import MODEL_MEMORY_FRACTION, SEGMENT_SECONDS, segment_activity
from simulator.node import SimulatedNode, pod_key
from simulator.scenario import PodSpec, Scenario, parse_device_ref
from simulator.work import KV_CACHE_AT_FULL_ACTIVITY
from tests.support.exporter_process import exporter

INTERVAL = 2.0  # collections, scrapes and rule evaluations
WINDOW = 60  # seconds of history advice reads (the default is 7 days)
YOUNG_AFTER = 100.0  # the second node starts this long after the first
RUN_SECONDS = 135.0  # past one whole bursty period (2 min) of the chat deployment
PRICE = 4.0  # an H100 GPU-hour

MAIN = yaml.safe_load("""
name: actions
node: sim-actions
gpu_hourly_cost: {"*H100*": 4.0}
gpus:
  - model: H100-SXM5-80GB                    # 0: right-0, busy: needs the whole GPU
  - model: H100-SXM5-80GB                    # 1: over-0, idle: a 3g.40gb holds it
  - model: H100-SXM5-80GB                    # 2: under-0 (saturated 1g.10gb), batch-0
    mig: [1g.10gb, 2g.20gb]
  - model: H100-SXM5-80GB                    # 3: chat-0, bursty: the autoscaled one
pods:
  - {name: right-0, namespace: search, tenant: search, devices: ["0"], load: busy}
  - {name: over-0, namespace: research, tenant: research, devices: ["1"], load: idle}
  - {name: under-0, namespace: ads, tenant: ads, devices: ["2/0"], load: saturated}
  - {name: batch-0, namespace: batch, tenant: batch, devices: ["2/1"], load: idle,
     engine: null}
  - {name: chat-0, namespace: chat, tenant: chat, devices: ["3"], load: bursty}
""")
YOUNG = yaml.safe_load("""
name: actions-young
node: sim-young
gpu_hourly_cost: {"*H100*": 4.0}
gpus:
  - model: H100-SXM5-80GB
pods:
  - {name: young-0, namespace: search, tenant: search, devices: ["0"], load: busy}
""")
TABLE = profiles.table("h100-80gb")


def short(config: Config) -> Config:
    step = f"{INTERVAL:g}s"
    return dataclasses.replace(
        config,
        rightsizing_window=f"{WINDOW}s",
        rightsizing_resolution=step,
        rightsizing_interval=step,
    )


@dataclass
class ActionsStack:
    prometheus: PromQL
    main: SimulatedNode
    young: SimulatedNode
    main_instance: str
    config: Config
    files: dict[str, str]
    # When the run was complete. The stack is shared by the session and keeps running
    # while other tests do, so the proofs read Prometheus as it was then: the young pod
    # is young at this moment, not ten minutes later.
    ready_at: float

    def advice(self) -> tuple[float, dict[str, tuple[dict[str, str], float | None]]]:
        """When the advice was last recorded, and per pod: the labels of its
        recommended_profile series and its monthly saving (None where it has none)."""
        (latest,) = self.prometheus.query(
            f"timestamp(max({rightsizing.HISTORY}))", time=f"{self.ready_at:.3f}"
        )
        at = f"{float(latest['value'][1]):.3f}"
        infos = self.prometheus.query(rightsizing.RECOMMENDED, time=at)
        savings = {s["metric"]["pod"]: float(s["value"][1])
                   for s in self.prometheus.query(rightsizing.SAVING, time=at)}  # fmt: skip
        advice = {s["metric"]["pod"]: (s["metric"], savings.get(s["metric"]["pod"]))
                  for s in infos}  # fmt: skip
        return float(at), advice

    def expected_advice(self, at: float) -> dict[str, tuple[str, str, float | None]]:
        """pod -> (profile, advice, monthly saving) worked out from the scenarios alone: the
        activity of every 10-second segment in the window bounds the rules' quantile, and
        the profile must be the same at both bounds (the scenario is built so that it is
        for every pod it means to prove; chat-0's bursts make it depend on the moment)."""
        out: dict[str, tuple[str, str, float | None]] = {}
        for node in (self.main, self.young):
            for pod in node.scenario.pods:
                if at - node.wall_start < WINDOW - INTERVAL:
                    out[pod.name] = ("", "not_enough_data", None)
                    continue
                t1 = at - node.wall_start
                low, high = (_advice(node, pod, bound) for bound in _activity(node, pod, t1))
                if low == high:
                    out[pod.name] = low
        return out

    def stamps(self, since: float) -> list[tuple[float, float]]:
        """(scrape time, collection time on the main node's clock) of every scrape since."""
        selector = ('gpuwork_collector_last_success_timestamp_seconds'
                    f'{{collector="engines", instance="{self.main_instance}"}}')  # fmt: skip
        window = f"{int(self.ready_at - since) + 1}s"
        (series,) = self.prometheus.query(f"{selector}[{window}]", time=f"{self.ready_at:.3f}")
        return [(float(ts), float(v) - self.main.wall_start) for ts, v in series["values"]]


def _activity(node: SimulatedNode, pod: PodSpec, t1: float) -> tuple[float, float]:
    """The lowest and highest activity of the pod's load in the window before t1 (a
    collection's GPM sample reaches one interval further back)."""
    first = int((t1 - WINDOW - 2 * INTERVAL) // SEGMENT_SECONDS)
    last = int(t1 // SEGMENT_SECONDS)
    values = [segment_activity(pod.load, pod_key(pod), node.scenario.seed, k)
              for k in range(first, last + 1)]  # fmt: skip
    return min(values), max(values)


def _advice(node: SimulatedNode, pod: PodSpec, activity: float) -> tuple[str, str, float]:
    """The smallest H100 profile that holds the pod's need at this activity, by hand."""
    gpu, slot = parse_device_ref(pod.devices[0])
    spec = node.scenario.gpu_specs[gpu]
    model = GPU_MODELS[spec.model]
    profile = spec.mig[slot] if spec.mig is not None and slot is not None else None
    memory = (model.mig_profiles[profile] if profile else model.memory_mib) * MIB
    fraction = profiles.profile("h100-80gb", profile).fraction if profile else 1.0
    used = int(memory * MODEL_MEMORY_FRACTION)
    config = CONFIG
    if pod.engine is not None:
        kv = KV_CACHE_AT_FULL_ACTIVITY * activity
        need_memory = used * (1 - config.rightsizing_kv_cache_share * (1 - kv))
    else:
        need_memory = used
    need_memory = min(need_memory * (1 + config.rightsizing_memory_headroom), memory)
    need_compute = activity * fraction * (1 + config.rightsizing_compute_headroom)
    fits = [p for p in TABLE.candidates
            if need_memory <= p.memory_bytes and need_compute <= p.fraction]  # fmt: skip
    advised = fits[0].fraction if fits else 1.0
    name = fits[0].name if fits else profiles.WHOLE
    slices_now, slices_then = round(fraction * 7), round(advised * 7)
    kind = (
        "downsize" if slices_then < slices_now else "upsize" if slices_then > slices_now else "keep"
    )
    return name, kind, (fraction - advised) * PRICE * CONFIG.hours_per_month


def job_of(config: Config) -> str:
    match = re.fullmatch(r'job="([^"]+)"', config.job_selector)
    assert match, config.job_selector
    return match[1]


@pytest.fixture(scope="session")
def actions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActionsStack]:
    scratch = tmp_path_factory.mktemp("actions")
    config = short(CONFIG)
    files = generated(config)
    rule_files = []
    for path in (rightsizing.PATH, autoscaling.PATH):
        rule_files.append(scratch / Path(path).name)
        rule_files[-1].write_text(files[path])
    ports = free_port(), free_port()
    paths = []
    for name, scenario in (("main", MAIN), ("young", YOUNG)):
        (scratch / name).mkdir()
        paths.append(scratch / name / "scenario.yaml")
        paths[-1].write_text(yaml.safe_dump(scenario))
    targets = [f"127.0.0.1:{port}" for port in ports]
    try:
        with (
            exporter(paths[0], ports[0], scratch / "main", interval=INTERVAL) as main_start,
            prometheus(
                scratch,
                targets=targets,
                rule_files=rule_files,
                interval=f"{INTERVAL:g}s",
                job=job_of(config),
            ) as prom,  # fmt: skip
        ):
            time.sleep(max(YOUNG_AFTER - (time.time() - main_start), 0))
            with exporter(paths[1], ports[1], scratch / "young", interval=INTERVAL) as young_start:
                # the young pod needs a few scrapes of its own to be advised anything
                time.sleep(max(RUN_SECONDS - (time.time() - main_start),
                               young_start + 5 * INTERVAL - time.time(), 0))  # fmt: skip
                yield ActionsStack(
                    prometheus=prom,
                    main=SimulatedNode(Scenario.model_validate(MAIN), wall_start=main_start),
                    young=SimulatedNode(Scenario.model_validate(YOUNG), wall_start=young_start),
                    main_instance=targets[0],
                    config=config,
                    files=files,
                    ready_at=time.time(),
                )
    except ProgramMissingError as missing:
        pytest.fail(str(missing))
