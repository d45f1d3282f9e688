"""The GPU models a scenario can name, with the facts NVML reports about them.

Names, memory sizes and MIG profiles follow what `nvidia-smi` prints on these
boards. Each MIG profile carries the memory NVML reports for it in MiB; rounded
up to whole GiB it gives the `Ng.Mgb` name back, as the device plugin computes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class GpuModel:
    name: str  # what nvmlDeviceGetName answers
    memory_mib: int
    sm_count: int
    gpm: bool  # GPU Performance Monitoring: Hopper and newer
    ecc: bool
    remapped_rows: bool
    memory_temperature: bool  # HBM boards report it through field values
    idle_watts: float
    max_watts: float
    idle_sm_clock_mhz: int
    max_sm_clock_mhz: int
    memory_clock_mhz: int
    mig_slices: int = 0  # compute slices; 0 when the board has no MIG
    mig_profiles: Mapping[str, int] = field(default_factory=dict)  # profile -> MiB

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB


_H100_MIG = {
    "1g.10gb": 9856, "1g.20gb": 19968, "2g.20gb": 19968,
    "3g.40gb": 40192, "4g.40gb": 40192, "7g.80gb": 81408,
}  # fmt: skip
_A100_80_MIG = {
    "1g.10gb": 9728, "1g.20gb": 19968, "2g.20gb": 19968,
    "3g.40gb": 40192, "4g.40gb": 40192, "7g.80gb": 81408,
}  # fmt: skip
_A100_40_MIG = {
    "1g.5gb": 4864, "1g.10gb": 9856, "2g.10gb": 9856,
    "3g.20gb": 19968, "4g.20gb": 19968, "7g.40gb": 40192,
}  # fmt: skip
_H200_MIG = {
    "1g.18gb": 18176, "1g.35gb": 35584, "2g.35gb": 35584,
    "3g.71gb": 72448, "4g.71gb": 72448, "7g.141gb": 143616,
}  # fmt: skip

GPU_MODELS: Mapping[str, GpuModel] = {
    "H100-SXM5-80GB": GpuModel(
        name="NVIDIA H100 80GB HBM3", memory_mib=81559, sm_count=132, gpm=True, ecc=True,
        remapped_rows=True, memory_temperature=True, idle_watts=70, max_watts=700,
        idle_sm_clock_mhz=345, max_sm_clock_mhz=1980, memory_clock_mhz=2619,
        mig_slices=7, mig_profiles=_H100_MIG,
    ),
    "H200-SXM5-141GB": GpuModel(
        name="NVIDIA H200", memory_mib=143771, sm_count=132, gpm=True, ecc=True,
        remapped_rows=True, memory_temperature=True, idle_watts=75, max_watts=700,
        idle_sm_clock_mhz=345, max_sm_clock_mhz=1980, memory_clock_mhz=3201,
        mig_slices=7, mig_profiles=_H200_MIG,
    ),
    "A100-SXM4-80GB": GpuModel(
        name="NVIDIA A100-SXM4-80GB", memory_mib=81920, sm_count=108, gpm=False, ecc=True,
        remapped_rows=True, memory_temperature=True, idle_watts=60, max_watts=400,
        idle_sm_clock_mhz=210, max_sm_clock_mhz=1410, memory_clock_mhz=1593,
        mig_slices=7, mig_profiles=_A100_80_MIG,
    ),
    "A100-SXM4-40GB": GpuModel(
        name="NVIDIA A100-SXM4-40GB", memory_mib=40960, sm_count=108, gpm=False, ecc=True,
        remapped_rows=True, memory_temperature=True, idle_watts=55, max_watts=400,
        idle_sm_clock_mhz=210, max_sm_clock_mhz=1410, memory_clock_mhz=1215,
        mig_slices=7, mig_profiles=_A100_40_MIG,
    ),
    "L4": GpuModel(
        name="NVIDIA L4", memory_mib=23034, sm_count=58, gpm=False, ecc=True,
        remapped_rows=False, memory_temperature=False, idle_watts=16, max_watts=72,
        idle_sm_clock_mhz=210, max_sm_clock_mhz=2040, memory_clock_mhz=6251,
    ),
}  # fmt: skip

# GPU instance ids NVML hands out per profile size, first free one first, as
# `nvidia-smi mig -lgi` shows them on A100/H100 class boards.
GPU_INSTANCE_IDS: Mapping[int, tuple[int, ...]] = {
    7: (0,),
    4: (1,),
    3: (1, 2),
    2: (3, 4, 5),
    1: (7, 8, 9, 10, 11, 12, 13),
}


def profile_slices(profile: str) -> int:
    """Compute slices of a profile name: `3g.40gb` -> 3."""
    return int(profile.split("g.", 1)[0].rsplit(".", 1)[-1])
