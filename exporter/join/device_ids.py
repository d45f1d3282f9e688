"""Maps the device ids the kubelet hands out to this node's devices.

The kubelet's pod-resources API names devices in whatever form the device plugin
or DRA driver registered them, and NVML names them by UUID. Attribution needs one
key per device, so every id form seen in the field is resolved here, once per NVML
reading, through dictionaries built up front.

Forms, as the NVIDIA projects write them:

- k8s-device-plugin registers every device with the kubelet by UUID: `GPU-<uuid>`
  for a whole GPU, `MIG-<uuid>` for a MIG instance, or `MIG-GPU-<gpu uuid>/<gi>/<ci>`
  from older drivers, whose MIG UUIDs carried the placement. With time-slicing or
  MPS each replica is registered as `<uuid>::<n>`, n counting from 0.
  `deviceIDStrategy=index` only changes what the plugin passes to the container
  runtime, never the ids the kubelet reports, so its MIG index form
  `<gpu index>:<mig index>` never reaches us and is not supported (that MIG index
  is NVML's MIG slot number, which `DeviceStats` does not keep). A bare `<n>` is
  still read as the whole GPU with NVML index n.
- The DRA driver (`gpu.nvidia.com`) names whole GPUs `gpu-<n>`: n is the device
  minor number (`/dev/nvidia<n>`) since release v25.3.0, the NVML index before.
  Minor and index agree on most nodes but need not; the reader reads the minor
  number (`GpuStats.minor_number`), and the index stands in only where NVML
  cannot give it. Its MIG names (`gpu-<minor>-mig-<gi profile id>-
  <start>-<size>`, since v25.12 `gpu-<minor>-mig-<profile>-<gi profile id>-<start>`)
  carry a placement that `DeviceStats` does not keep, so they are not resolved.
- Any id that embeds exactly one GPU or MIG UUID resolves by that UUID.

A GPU in MIG mode is not a device itself: ids naming it as a whole resolve to None.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from exporter.model import MigMode, NvmlReading

_HEX_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# One UUID token inside an id: a legacy MIG id, a MIG UUID, or a GPU UUID that is not
# the middle of a legacy MIG id. Tried in that order at each position.
_UUID_TOKEN = re.compile(
    rf"MIG-GPU-(?P<legacy>{_HEX_UUID})/(?P<gi>[0-9]{{1,9}})/(?P<ci>[0-9]{{1,9}})(?![0-9])"
    rf"|MIG-(?P<mig>{_HEX_UUID})(?![0-9a-fA-F])"
    rf"|(?<!MIG-)GPU-(?P<gpu>{_HEX_UUID})(?![0-9a-fA-F])"
)
_INDEX = re.compile(r"[0-9]{1,9}")
_DRA_GPU = re.compile(r"gpu-([0-9]{1,9})")
_REPLICA_SEPARATOR = "::"


@dataclass(frozen=True, slots=True)
class ResolvedId:
    """The device an id names, and which shared replica of it."""

    device: str  # the device key: a whole GPU's `GPU-…` UUID or a `MIG-…` UUID
    replica: int | None  # the n of `<id>::<n>` (time-slicing, MPS); None if not a replica


def _normal(prefix: str, hex_uuid: str) -> str:
    """NVML writes lower-case hex; accept upper case by lowering the hex part only."""
    return prefix + hex_uuid.lower()


def _normal_key(key: str) -> str:
    match = _UUID_TOKEN.fullmatch(key)
    if match is None:
        return key  # not a UUID (a lost GPU NVML never named): exact match only
    if match["legacy"] is not None:
        return f"MIG-GPU-{match['legacy'].lower()}/{int(match['gi'])}/{int(match['ci'])}"
    return key[:4] + key[4:].lower()


class DeviceIndex:
    """Every device of one NVML reading, looked up by any id form. Immutable."""

    __slots__ = ("_by_dra", "_by_index", "_by_placement", "_by_uuid", "_devices")

    def __init__(
        self,
        devices: frozenset[str],
        by_uuid: Mapping[str, str],
        by_placement: Mapping[tuple[str, int, int], str],
        by_index: Mapping[int, str],
        by_dra: Mapping[int, str],
    ) -> None:
        self._devices = devices
        self._by_uuid = dict(by_uuid)  # normalized UUID id -> device key
        self._by_placement = dict(by_placement)  # (normalized GPU UUID, gi, ci) -> MIG device
        self._by_index = dict(by_index)  # NVML index -> whole-GPU device
        self._by_dra = dict(by_dra)  # the n of DRA's `gpu-<n>` -> whole-GPU device

    @classmethod
    def of(cls, reading: NvmlReading) -> DeviceIndex:
        """Indexes a reading. DRA's `gpu-<n>` is the GPU's device minor number; where NVML
        could not give it, the NVML index stands in (they agree on most nodes)."""
        devices: set[str] = set()
        by_uuid: dict[str, str] = {}
        by_placement: dict[tuple[str, int, int], str] = {}
        by_index: dict[int, str] = {}
        by_dra: dict[int, str] = {}
        for gpu in reading.gpus:
            for stats in gpu.devices:
                devices.add(stats.device)
                by_uuid[stats.device] = stats.device
                by_uuid[_normal_key(stats.device)] = stats.device
                if stats.device == gpu.uuid and gpu.mig_mode != MigMode.ENABLED:
                    by_index[gpu.index] = stats.device
                    minor = gpu.minor_number
                    by_dra[gpu.index if minor is None else minor] = stats.device
                elif stats.gpu_instance_id is not None and stats.compute_instance_id is not None:
                    gi, ci = stats.gpu_instance_id, stats.compute_instance_id
                    by_placement[(_normal_key(gpu.uuid), gi, ci)] = stats.device
        return cls(frozenset(devices), by_uuid, by_placement, by_index, by_dra)

    @property
    def devices(self) -> frozenset[str]:
        """Every device key of the reading."""
        return self._devices

    def resolve(self, device_id: str) -> ResolvedId | None:
        """The device `device_id` names; None if it names none on this node."""
        base, separator, suffix = device_id.partition(_REPLICA_SEPARATOR)
        replica = None
        if separator:
            if _INDEX.fullmatch(suffix) is None:
                return None
            replica = int(suffix)
        device = self._device(base)
        return None if device is None else ResolvedId(device, replica)

    def _device(self, base: str) -> str | None:
        exact = self._by_uuid.get(base)
        if exact is not None:
            return exact
        if _INDEX.fullmatch(base):
            return self._by_index.get(int(base))
        dra = _DRA_GPU.fullmatch(base)
        if dra is not None:
            return self._by_dra.get(int(dra[1]))
        found = {self._token_device(token) for token in _UUID_TOKEN.finditer(base)}
        if len(found) != 1:
            return None  # no UUID, or several naming different devices: ambiguous
        return found.pop()

    def _token_device(self, token: re.Match[str]) -> str | None:
        if token["legacy"] is not None:
            gpu = _normal("GPU-", token["legacy"])
            return self._by_placement.get((gpu, int(token["gi"]), int(token["ci"])))
        if token["mig"] is not None:
            return self._by_uuid.get(_normal("MIG-", token["mig"]))
        return self._by_uuid.get(_normal("GPU-", token["gpu"]))
