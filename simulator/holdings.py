"""Who holds which device of a simulated node, in GPU fractions: shared by the truths."""

from __future__ import annotations

from collections import defaultdict

from simulator.node import SimulatedNode

_Device = tuple[int, int | None]  # (GPU index, MIG slot or None)


def device_fraction(node: SimulatedNode, device: _Device, t: float) -> float:
    index, slot = device
    if slot is None:
        return 1.0
    layout = node.layout(index, t) or ()
    instance = layout[slot] if slot < len(layout) else None
    return instance.slices / node.models[index].mig_slices if instance else 0.0


def live_devices(node: SimulatedNode, t: float) -> list[_Device]:
    devices: list[_Device] = []
    for index in range(len(node.specs)):
        if node.lost(index, t):
            continue
        layout = node.layout(index, t)
        if layout is None:
            devices.append((index, None))
        else:
            devices.extend((index, m.slot) for m in layout if m is not None)
    return devices


def tenant_gpu_fractions(node: SimulatedNode, t: float) -> dict[str, float]:
    """GPUs each tenant holds at time t: device fraction * share, summed."""
    held: defaultdict[str, float] = defaultdict(float)
    for device in live_devices(node, t):
        for tenancy in node.tenants_of(*device):
            held[tenancy.pod.tenant] += device_fraction(node, device, t) * node.holding_share(
                device[0], tenancy
            )
    return dict(held)
