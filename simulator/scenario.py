"""Scenario files: one YAML document describes a whole simulated GPU node.

A scenario names its GPUs (model, MIG layout, time-slicing), the pods that hold
devices (namespace, tenant, engine, load profile) and faults injected at given
seconds after the node starts. See `docs/simulation.md` for the format.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporter.errors import GpuworkError
from simulator.hardware import GPU_MODELS, profile_slices
from simulator.loads import LoadProfile

BUILT_IN = ("dense-h100", "mixed", "small")
CATALOGS = ("inhouse",)  # simulator/catalogs/<name>.yaml
# Pods that exist when the node starts have run this long already: past their cold start,
# their engines serve tokens from the first scrape, their counters already hold some.
DEFAULT_STARTED_BEFORE_SECONDS = 600.0
MAX_STARTED_BEFORE_SECONDS = 30 * 86400.0


class BodyFault(StrEnum):
    """What a broken engine (or something in front of it) does to its `/metrics` body."""

    TRUNCATED = "truncated"  # cut in the middle of a line in the second half
    INVALID_UTF8 = "invalid_utf8"  # bytes invalid in UTF-8 in the prompt tokens' model label
    DUPLICATE_SERIES = "duplicate_series"  # generation tokens twice, labels reordered
    NAN_VALUE = "nan_value"  # generation tokens NaN
    NEGATIVE_VALUE = "negative_value"  # prompt tokens below zero
    COUNTER_DIP = "counter_dip"  # generation tokens at 90 % of the truth, nothing else moved
    HTML_200 = "html_200"  # an HTML error page with status 200


class ScenarioError(GpuworkError, ValueError):
    """A scenario that cannot be loaded; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuSpec(_Strict):
    model: str
    count: int = Field(1, ge=1, le=64, description="repeat this GPU this many times")
    mig: list[str | None] | None = Field(
        None, description="MIG profile per slot; null for an empty slot; absent: MIG off"
    )
    replicas: int = Field(1, ge=1, le=64, description="time-slicing replicas of a whole GPU")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        if model not in GPU_MODELS:
            raise ValueError(f"unknown GPU model {model!r}; known: {', '.join(GPU_MODELS)}")
        return model

    @model_validator(mode="after")
    def _valid_layout(self) -> GpuSpec:
        if self.mig is not None:
            check_mig_layout(self.model, self.mig)
            if self.replicas != 1:
                raise ValueError("time-slicing replicas apply to whole GPUs, not MIG layouts")
        return self


def check_mig_layout(model_key: str, layout: Sequence[str | None]) -> None:
    model = GPU_MODELS[model_key]
    if not model.mig_slices:
        raise ValueError(f"{model_key} has no MIG")
    if len(layout) > model.mig_slices:
        raise ValueError(f"{model_key} has {model.mig_slices} MIG slots, got {len(layout)}")
    profiles = [p for p in layout if p]
    for profile in profiles:
        if profile not in model.mig_profiles:
            known = ", ".join(model.mig_profiles)
            raise ValueError(f"{model_key} has no MIG profile {profile!r}; known: {known}")
    if sum(map(profile_slices, profiles)) > model.mig_slices:
        raise ValueError(f"MIG layout {profiles} needs more than {model.mig_slices} slices")


class PodSpec(_Strict):
    name: str
    namespace: str
    tenant: str
    container: str = "main"
    labels: dict[str, str] = Field(default_factory=dict)
    devices: list[str] = Field(
        description='"G" holds GPU G (or one of its replicas), "G/S" MIG slot S of GPU G',
        min_length=1,
    )
    engine: Literal["vllm", "sglang", "tgi", "trtllm", "triton", "llamacpp", "inhouse"] | None = (
        "vllm"
    )
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    load: LoadProfile = LoadProfile.BUSY
    dra: bool = Field(
        False, description="allocated by the NVIDIA DRA driver instead of the device plugin"
    )
    cold_start_seconds: float = Field(
        30.0, ge=0, description="from the engine's process start to its first served token"
    )
    started_before_seconds: float = Field(
        DEFAULT_STARTED_BEFORE_SECONDS,
        ge=0,
        le=MAX_STARTED_BEFORE_SECONDS,
        description="how long before the node's t = 0 the pod and its first engine process "
        "started; 0: with the node, its engine cold-starting at t = 0",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="the engine serves its metrics on this port instead of the container "
        "port `http` (8000; Triton: its metrics port 8002, llama.cpp: 8080); the pod then "
        "carries a `prometheus.io/port` annotation",
    )

    @field_validator("devices")
    @classmethod
    def _device_refs(cls, refs: list[str]) -> list[str]:
        for ref in refs:
            parse_device_ref(ref)
        return refs


def _at(fault: _FaultBase) -> float:
    return fault.at


def exporter_restarts(scenario: Scenario) -> list[float]:
    """When the exporter on this node restarts (`exporter_restart` faults), in order."""
    return sorted(f.at for f in scenario.faults if isinstance(f, ExporterRestartFault))


def parse_device_ref(ref: str) -> tuple[int, int | None]:
    """`"3"` -> (3, None); `"3/5"` -> (3, 5)."""
    gpu, _, slot = ref.partition("/")
    if not gpu.isdigit() or (slot and not slot.isdigit()):
        raise ValueError(f'device reference {ref!r} is not "GPU" or "GPU/SLOT"')
    return int(gpu), int(slot) if slot else None


class _FaultBase(_Strict):
    at: float = Field(0.0, ge=0, description="seconds after the node starts")


class GpuLostFault(_FaultBase):
    kind: Literal["gpu_lost"]
    gpu: int


class XidFault(_FaultBase):
    kind: Literal["xid"]
    gpu: int
    xid: int = Field(ge=1, le=1023)
    count: int = Field(1, ge=1)
    slot: int | None = Field(
        None,
        ge=0,
        description="the MIG slot whose instance the event names (S, as in a pod's G/S): it "
        "carries that instance's GPU and compute instance ids; absent: the event names no "
        "instance (0xFFFFFFFF), as for an error of the whole GPU",
    )

    def check_slot(self, specs: Sequence[GpuSpec], faults: Sequence[object]) -> None:
        """A `slot` names an instance of the GPU's MIG layout at `at`."""
        if self.slot is None:
            return
        layout = specs[self.gpu].mig
        if layout is None:
            raise ValueError(f"xid fault: GPU {self.gpu} is not in MIG mode; `slot` needs MIG")
        repartitions = sorted(
            (f for f in faults
             if isinstance(f, MigRepartitionFault) and f.gpu == self.gpu and f.at <= self.at),
            key=_at,
        )  # fmt: skip
        if repartitions:
            layout = repartitions[-1].mig
        if self.slot >= len(layout) or not layout[self.slot]:
            raise ValueError(
                f"xid fault: GPU {self.gpu} has no MIG instance in slot {self.slot} "
                f"at {self.at:g} s"
            )


class EccFault(_FaultBase):
    kind: Literal["ecc"]
    gpu: int
    corrected: int = Field(0, ge=0)
    uncorrected: int = Field(0, ge=0)


class PcieReplayFault(_FaultBase):
    kind: Literal["pcie_replays"]
    gpu: int
    count: int = Field(ge=1)


class MigRepartitionFault(_FaultBase):
    kind: Literal["mig_repartition"]
    gpu: int
    mig: list[str | None]


class DriverNotLoadedFault(_FaultBase):
    kind: Literal["driver_not_loaded"]
    until: float = Field(gt=0, description="seconds after the node starts; the driver is back")


class EngineRestartFault(_FaultBase):
    """The engine process of a pod dies at `at` and starts again `down_seconds` later."""

    kind: Literal["engine_restart"]
    pod: str = Field(description='"namespace/name" of a pod with an engine')
    down_seconds: float = Field(5.0, gt=0, description="seconds in which nothing listens")

    @property
    def lasts(self) -> float:
        return self.down_seconds

    def after(self, previous: EngineRestartFault | EngineBodyFault) -> str:
        """What is wrong with this fault starting while `previous` lasts."""
        return f"restarts at {self.at:g} s while still down from the restart at {previous.at:g} s"


class EngineBodyFault(_FaultBase):
    """The engine of a pod serves a hostile `/metrics` body from `at` for `seconds`."""

    kind: Literal["engine_body"]
    pod: str = Field(description='"namespace/name" of a pod with an engine')
    seconds: float = Field(gt=0, description="how long it lasts: [at, at + seconds)")
    body: BodyFault = Field(description="what is wrong with the body")

    @property
    def lasts(self) -> float:
        return self.seconds

    def after(self, previous: EngineRestartFault | EngineBodyFault) -> str:
        """What is wrong with this fault starting while `previous` lasts."""
        was = previous.body if isinstance(previous, EngineBodyFault) else previous.kind
        return (
            f"gets a {self.body} body at {self.at:g} s while its {was} body from "
            f"{previous.at:g} s lasts"
        )


class ExporterRestartFault(_FaultBase):
    """The exporter's process ends at `at` and a new one starts: everything it kept in
    memory starts anew. Acted on by whoever runs the exporter on the node (`serve` with
    `--simulate`, the tests), not by the node itself."""

    kind: Literal["exporter_restart"]


Fault = Annotated[
    GpuLostFault
    | XidFault
    | EccFault
    | PcieReplayFault
    | MigRepartitionFault
    | DriverNotLoadedFault
    | EngineRestartFault
    | EngineBodyFault
    | ExporterRestartFault,
    Field(discriminator="kind"),
]


class Scenario(_Strict):
    name: str
    node: str = "sim-gpu-node"
    driver_version: str = "570.133.20"
    seed: int = 0
    gpus: list[GpuSpec] = Field(min_length=1)
    pods: list[PodSpec] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    gpu_hourly_cost: dict[str, float] = Field(
        default_factory=dict,
        description="price of a whole GPU per hour by model: glob over NVML's model name -> "
        "price, first match wins; the exporter's default for --cost.gpu-hourly",
    )
    engine_catalog: str | None = Field(
        None,
        description="an engine catalog the exporter reads besides its built-in one (the "
        "default for --engines.catalog): a catalog of the simulator by name (`inhouse`: "
        "simulator/catalogs/inhouse.yaml) or a file's path",
    )

    def engine_catalog_path(self) -> str:
        """`engine_catalog` as a file's path; "" when there is none."""
        if not self.engine_catalog:
            return ""
        if self.engine_catalog in CATALOGS:
            name = f"catalogs/{self.engine_catalog}.yaml"
            return str(resources.files(__package__).joinpath(name))
        return self.engine_catalog

    @field_validator("gpu_hourly_cost")
    @classmethod
    def _prices(cls, prices: dict[str, float]) -> dict[str, float]:
        for pattern, price in prices.items():
            if not pattern.strip() or any(c in pattern for c in ",="):
                raise ValueError(f"price pattern {pattern!r} is empty or holds ',' or '='")
            if not math.isfinite(price) or price < 0:
                raise ValueError(f"price of {pattern!r} must be a finite number >= 0")
        return prices

    @property
    def gpu_prices(self) -> tuple[tuple[str, float], ...]:
        """`gpu_hourly_cost` as the exporter's price table: (pattern, price), in order."""
        return tuple(self.gpu_hourly_cost.items())

    @property
    def gpu_specs(self) -> list[GpuSpec]:
        """The spec of each GPU index, `count` expanded."""
        return [spec for spec in self.gpus for _ in range(spec.count)]

    @property
    def gpu_models(self) -> list[str]:
        return [spec.model for spec in self.gpu_specs]

    @model_validator(mode="after")
    def _references_exist(self) -> Scenario:
        specs = self.gpu_specs
        seen: set[tuple[str, str]] = set()
        for pod in self.pods:
            if (pod.namespace, pod.name) in seen:
                raise ValueError(f"pod {pod.namespace}/{pod.name} appears twice")
            seen.add((pod.namespace, pod.name))
            for ref in pod.devices:
                gpu, slot = parse_device_ref(ref)
                if gpu >= len(specs):
                    raise ValueError(f"pod {pod.name}: no GPU {gpu} (node has {len(specs)})")
                layout = specs[gpu].mig
                if (slot is None) != (layout is None):
                    want = "a MIG slot G/S" if layout is not None else "the whole GPU G"
                    raise ValueError(f"pod {pod.name}: GPU {gpu} is allocated as {want}")
                if layout is not None and (slot is None or slot >= len(layout) or not layout[slot]):
                    raise ValueError(
                        f"pod {pod.name}: GPU {gpu} has no MIG instance in slot {slot}"
                    )
                if pod.dra and (slot is not None or specs[gpu].replicas > 1):
                    what = "a MIG slot" if slot is not None else "a time-sliced GPU"
                    raise ValueError(
                        f"pod {pod.name}: `dra: true` takes whole GPUs without time-slicing; "
                        f"{ref!r} is {what}"
                    )
        for pod in self.pods:
            if pod.metrics_port is not None and pod.engine is None:
                raise ValueError(f"pod {pod.name}: `metrics_port` needs an engine")
        self._check_tenants()
        self._check_holders(specs)
        self._check_engine_faults()
        for fault in self.faults:
            if hasattr(fault, "gpu") and fault.gpu >= len(specs):
                raise ValueError(f"{fault.kind} fault: no GPU {fault.gpu}")
            if isinstance(fault, XidFault):
                fault.check_slot(specs, self.faults)
            if isinstance(fault, MigRepartitionFault):
                check_mig_layout(specs[fault.gpu].model, fault.mig)
                if specs[fault.gpu].mig is None:
                    raise ValueError(f"mig_repartition fault: GPU {fault.gpu} is not in MIG mode")
            if isinstance(fault, DriverNotLoadedFault) and fault.until <= fault.at:
                raise ValueError("driver_not_loaded fault: `until` must come after `at`")
        return self

    def _check_tenants(self) -> None:
        """A namespace has one tenant: the exporter reads it from a namespace label."""
        tenants: dict[str, PodSpec] = {}
        for pod in self.pods:
            first = tenants.setdefault(pod.namespace, pod)
            if first.tenant != pod.tenant:
                raise ValueError(
                    f"namespace {pod.namespace}: pod {first.name} names tenant {first.tenant!r} "
                    f"and pod {pod.name} tenant {pod.tenant!r}; a namespace has one tenant "
                    "(the simulated node labels each namespace with its tenant)"
                )

    def _check_engine_faults(self) -> None:
        """Engine restarts and hostile bodies name a pod that runs an engine, and each is
        over before the next of its kind on the same pod."""
        engines = {f"{pod.namespace}/{pod.name}": pod.engine for pod in self.pods}
        for kind in (EngineRestartFault, EngineBodyFault):
            last: dict[str, EngineRestartFault | EngineBodyFault] = {}
            for fault in sorted((f for f in self.faults if isinstance(f, kind)), key=_at):
                if fault.pod not in engines:
                    raise ValueError(f'{fault.kind} fault: no pod {fault.pod!r} ("namespace/name")')
                if engines[fault.pod] is None:
                    raise ValueError(f"{fault.kind} fault: pod {fault.pod} has no engine")
                previous = last.get(fault.pod)
                if previous is not None and fault.at < previous.at + previous.lasts:
                    raise ValueError(f"{fault.kind} fault: pod {fault.pod} {fault.after(previous)}")
                last[fault.pod] = fault

    def _check_holders(self, specs: Sequence[GpuSpec]) -> None:
        """A device goes to as many pod references as it has replicas: one unless time-sliced."""
        holders: dict[tuple[int, int | None], list[str]] = {}
        for pod in self.pods:
            for ref in pod.devices:
                holders.setdefault(parse_device_ref(ref), []).append(pod.name)
        for (gpu, slot), pods in holders.items():
            ref = f"{gpu}" if slot is None else f"{gpu}/{slot}"
            replicas = specs[gpu].replicas if slot is None else 1
            if len(pods) <= replicas:
                continue
            named = ", ".join(pods)
            if slot is not None:
                raise ValueError(
                    f"MIG slot {ref} is held {len(pods)} times ({named}); "
                    "a MIG instance goes to one pod"
                )
            if replicas == 1:
                raise ValueError(
                    f"GPU {ref} is held {len(pods)} times ({named}); a GPU without "
                    "time-slicing goes to one pod (set `replicas` to share it)"
                )
            raise ValueError(
                f"GPU {ref} is held {len(pods)} times ({named}) but has {replicas} "
                "time-slicing replicas"
            )


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario YAML file by path."""
    if name_or_path in BUILT_IN:
        text = resources.files(__package__).joinpath(f"scenarios/{name_or_path}.yaml").read_text()
        source = f"built-in scenario {name_or_path!r}"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ScenarioError(
                f"{name_or_path!r} is neither a built-in scenario ({', '.join(BUILT_IN)}) "
                "nor a scenario file"
            )
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ScenarioError(f"{source}: cannot read: {error}") from error
    try:
        return Scenario.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ScenarioError(f"{source}: not valid YAML: {detail}") from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'scenario'}: {e['msg']}" for e in error.errors()
        )
        raise ScenarioError(f"{source}: {problems}") from error
