"""MIG profile tables per GPU model: the one place the right-sizing rules
(`mixin/rightsizing.py`) and docs/rightsizing.md take them from.

Source: NVIDIA Multi-Instance GPU User Guide, "Supported MIG Profiles"
(https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html):
the profile names, their compute slices (the "fraction of SMs" n/7) and how many
instances of each fit on one GPU. The memory of each profile is the size NVML reports
for an instance of it (`nvidia-smi mig -lgip`, MiB), which the exporter serves as
`gpuwork_device_memory_total_bytes`; rounded up to whole GiB it gives the `.Ngb` of the
name back. Media-extension profiles (`+me`) are left out: they have the compute and
memory of their plain profile and are chosen for decoders, not for size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MIB = 1024 * 1024
SLICES = 7  # compute slices of a whole GPU on A100, H100 and H200: a fraction is slices / 7
WHOLE = "whole"  # the name the rules give a whole GPU (MIG off, or not split)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str  # as the device plugin and `nvidia-smi` name it: `3g.40gb`
    slices: int  # compute slices out of SLICES
    memory_mib: int  # what NVML reports for an instance
    instances: int  # how many fit on one GPU

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    @property
    def fraction(self) -> float:
        """The share of its GPU, as the exporter's `gpuwork_device_gpu_fraction`."""
        return self.slices / SLICES

    @property
    def size_key(self) -> int:
        """Orders profiles smallest first: by compute slices, then memory (GiB). The
        right-sizing rules record it as the value of each fitting profile."""
        return self.slices * 1000 + -(-self.memory_mib // 1024)


@dataclass(frozen=True, slots=True)
class MigTable:
    key: str  # the `mig_table` label of the rules
    title: str  # for the docs
    model_names: str  # RE2 regex over NVML's model name (`model_name` of gpuwork_gpu_info)
    memory_mib: int  # the whole GPU, as NVML reports it
    profiles: Sequence[Profile]

    @property
    def candidates(self) -> list[Profile]:
        """What the rules may advise below a whole GPU: every profile but the full one
        (7 slices), which costs what the whole GPU costs and holds a little less."""
        return sorted((p for p in self.profiles if p.slices < SLICES), key=lambda p: p.size_key)


# The whole GPU sorts after every profile.
WHOLE_SIZE_KEY = SLICES * 1000 + 999

TABLES: Sequence[MigTable] = (
    MigTable(
        key="h100-80gb",
        title="H100 80GB (SXM5, PCIe)",
        model_names="NVIDIA H100 80GB HBM3|NVIDIA H100 PCIe",
        memory_mib=81559,
        profiles=(
            Profile("1g.10gb", 1, 9856, 7),
            Profile("1g.20gb", 1, 19968, 4),
            Profile("2g.20gb", 2, 19968, 3),
            Profile("3g.40gb", 3, 40192, 2),
            Profile("4g.40gb", 4, 40192, 1),
            Profile("7g.80gb", 7, 81408, 1),
        ),
    ),
    MigTable(
        key="h200-141gb",
        title="H200 141GB (SXM5, NVL)",
        model_names="NVIDIA H200.*",
        memory_mib=143771,
        profiles=(
            Profile("1g.18gb", 1, 18176, 7),
            Profile("1g.35gb", 1, 35584, 4),
            Profile("2g.35gb", 2, 35584, 3),
            Profile("3g.71gb", 3, 72448, 2),
            Profile("4g.71gb", 4, 72448, 1),
            Profile("7g.141gb", 7, 143616, 1),
        ),
    ),
    MigTable(
        key="a100-80gb",
        title="A100 80GB (SXM4, PCIe)",
        model_names="NVIDIA A100.*80GB.*",
        memory_mib=81920,
        profiles=(
            Profile("1g.10gb", 1, 9728, 7),
            Profile("1g.20gb", 1, 19968, 4),
            Profile("2g.20gb", 2, 19968, 3),
            Profile("3g.40gb", 3, 40192, 2),
            Profile("4g.40gb", 4, 40192, 1),
            Profile("7g.80gb", 7, 81408, 1),
        ),
    ),
    MigTable(
        key="a100-40gb",
        title="A100 40GB (SXM4, PCIe)",
        model_names="NVIDIA A100-(SXM4|PCIE)-40GB",
        memory_mib=40960,
        profiles=(
            Profile("1g.5gb", 1, 4864, 7),
            Profile("1g.10gb", 1, 9856, 4),
            Profile("2g.10gb", 2, 9856, 3),
            Profile("3g.20gb", 3, 19968, 2),
            Profile("4g.20gb", 4, 19968, 1),
            Profile("7g.40gb", 7, 40192, 1),
        ),
    ),
)


def table(key: str) -> MigTable:
    for t in TABLES:
        if t.key == key:
            return t
    raise KeyError(f"no MIG table {key!r}; known: {', '.join(t.key for t in TABLES)}")


def profile(table_key: str, name: str) -> Profile:
    for p in table(table_key).profiles:
        if p.name == name:
            return p
    raise KeyError(f"{table_key} has no profile {name!r}")


def markdown() -> str:
    """The tables as docs/rightsizing.md shows them (a test keeps the two equal)."""
    lines = [
        "| GPU model | NVML model names (regex) | profile | slices | memory (MiB) | per GPU |",
        "|---|---|---|---:|---:|---:|",
    ]
    for t in TABLES:
        names = t.model_names.replace("|", "\\|")  # a bar inside a Markdown table cell
        for p in t.profiles:
            lines.append(
                f"| {t.title} | `{names}` | `{p.name}` | {p.slices} | {p.memory_mib} "
                f"| {p.instances} |"
            )
    return "\n".join(lines) + "\n"
