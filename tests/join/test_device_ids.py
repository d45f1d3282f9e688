"""Every id form the kubelet can report resolves to the right device, or to None."""

from __future__ import annotations

import dataclasses

import pytest

from exporter.join.device_ids import DeviceIndex, ResolvedId
from exporter.model import ActivitySource, DeviceStats, GpuStats, MigMode, NvmlReading

WHOLE = "GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"  # index 0, not in MIG mode
PARTED = "GPU-11111111-2222-3333-4444-555555555555"  # index 1, in MIG mode
MIG_A = "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"  # on PARTED, gi 1 ci 0
MIG_B = "MIG-0f0f0f0f-1e1e-2d2d-3c3c-4b4b4b4b4b4b"  # on PARTED, gi 2 ci 0
LOST = "GPU-99999999-8888-7777-6666-555555555555"  # index 2, fell off the bus
OTHER = "GPU-fedcba98-7654-3210-fedc-ba9876543210"  # index 3, not in MIG mode


def _device(device: str, gpu: str, gi: int | None = None, ci: int | None = None) -> DeviceStats:
    return DeviceStats(
        device=device,
        gpu_uuid=gpu,
        mig_profile="1g.10gb" if gi is not None else "",
        gpu_instance_id=gi,
        compute_instance_id=ci,
        gpu_fraction=1 / 7 if gi is not None else 1.0,
        memory_used_bytes=None,
        memory_total_bytes=None,
        sm_active_ratio=None,
        activity_source=ActivitySource.NONE,
        processes=None,
    )


def _gpu(
    uuid: str, index: int, mode: MigMode, *devices: DeviceStats, lost: bool = False
) -> GpuStats:
    return GpuStats(
        uuid, index, "NVIDIA H100", f"0000:{index:02x}:00.0", mode, lost, devices=devices
    )


READING = NvmlReading(
    driver_version="550.54.15",
    gpus=(
        _gpu(WHOLE, 0, MigMode.DISABLED, _device(WHOLE, WHOLE)),
        _gpu(
            PARTED, 1, MigMode.ENABLED, _device(MIG_A, PARTED, 1, 0), _device(MIG_B, PARTED, 2, 0)
        ),
        _gpu(LOST, 2, MigMode.UNKNOWN, lost=True),
        _gpu(OTHER, 3, MigMode.UNSUPPORTED, _device(OTHER, OTHER)),
    ),
    nvml_calls=0,
)
INDEX = DeviceIndex.of(READING)


@pytest.mark.parametrize(
    ("device_id", "expected"),
    [
        # k8s-device-plugin: UUIDs, and time-slicing / MPS replicas of them
        (WHOLE, ResolvedId(WHOLE, None)),
        (f"{WHOLE}::0", ResolvedId(WHOLE, 0)),
        (f"{OTHER}::17", ResolvedId(OTHER, 17)),
        (MIG_A, ResolvedId(MIG_A, None)),
        (f"{MIG_B}::3", ResolvedId(MIG_B, 3)),
        ("GPU-" + WHOLE[4:].upper(), ResolvedId(WHOLE, None)),
        ("MIG-" + MIG_A[4:].upper() + "::1", ResolvedId(MIG_A, 1)),
        # legacy MIG ids (drivers before R470)
        (f"MIG-{PARTED}/1/0", ResolvedId(MIG_A, None)),
        (f"MIG-{PARTED}/2/0::4", ResolvedId(MIG_B, 4)),
        (f"MIG-GPU-{PARTED[4:].upper()}/2/0", ResolvedId(MIG_B, None)),
        # a bare NVML index
        ("0", ResolvedId(WHOLE, None)),
        ("3::2", ResolvedId(OTHER, 2)),
        # DRA driver names (NVML index standing in for the minor number)
        ("gpu-0", ResolvedId(WHOLE, None)),
        ("gpu-3", ResolvedId(OTHER, None)),
        # ids that embed one UUID
        (f"nvidia.com/gpu={WHOLE}", ResolvedId(WHOLE, None)),
        (f"claim-{MIG_B}", ResolvedId(MIG_B, None)),
        (f"k8s.gpu.nvidia.com/device=MIG-{PARTED}/1/0", ResolvedId(MIG_A, None)),
        (f"{WHOLE},{WHOLE}", ResolvedId(WHOLE, None)),
    ],
)
def test_resolves(device_id: str, expected: ResolvedId) -> None:
    assert INDEX.resolve(device_id) == expected


@pytest.mark.parametrize(
    "device_id",
    [
        # a GPU in MIG mode is not a device as a whole, in any form
        PARTED,
        f"{PARTED}::0",
        "1",
        "gpu-1",
        f"nvidia.com/gpu={PARTED}",
        # a lost GPU has no device this time
        LOST,
        "2",
        # not on this node
        "GPU-00000000-0000-0000-0000-000000000000",
        "MIG-00000000-0000-0000-0000-000000000000::1",
        f"MIG-{PARTED}/3/0",
        f"MIG-{WHOLE}/0/0",
        "7",
        "gpu-7",
        # forms not supported, or of unknown shape
        f"MIG-{PARTED}",
        f"MIG-{PARTED}/1",
        "1:0",  # the device plugin's MIG index form never reaches the kubelet
        "gpu-1-mig-1g10gb-19-0",  # DRA MIG names: placement is not in the reading
        "gpu-vfio-0",
        f"{WHOLE}::",
        f"{WHOLE}::x",
        f"{WHOLE}::1::2",
        f"{WHOLE}::-1",
        WHOLE[:-1],
        WHOLE + "0",
        f"{WHOLE},{OTHER}",  # two devices: ambiguous
        "GPU-",
        "",
        "::",
        "-1",
        "gpu-",
        "\u0663",  # a digit, but not an ASCII one
        "x" * 256,
    ],
)
def test_resolves_nothing(device_id: str) -> None:
    assert INDEX.resolve(device_id) is None


def test_devices_are_whole_gpus_and_mig_instances() -> None:
    assert INDEX.devices == frozenset({WHOLE, MIG_A, MIG_B, OTHER})


def test_dra_names_gpus_by_their_minor_number_where_nvml_gives_it() -> None:
    swapped = NvmlReading(
        "550.54.15",
        tuple(
            dataclasses.replace(gpu, minor_number=minor)
            for gpu, minor in zip(READING.gpus, (3, None, None, 0), strict=True)
        ),
        0,
    )
    index = DeviceIndex.of(swapped)
    assert index.resolve("gpu-3") == ResolvedId(WHOLE, None)
    assert index.resolve("gpu-0") == ResolvedId(OTHER, None)
    assert index.resolve("0") == ResolvedId(WHOLE, None)  # a bare index stays the NVML index


def test_empty_reading() -> None:
    index = DeviceIndex.of(NvmlReading("550.54.15", (), 0))
    assert index.devices == frozenset()
    assert index.resolve(WHOLE) is None
    assert index.resolve("0") is None
