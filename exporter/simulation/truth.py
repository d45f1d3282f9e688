"""Ground truth for attribution: who holds what, and the state seconds that follow.

Computed from the scenario and its load profiles alone, never from NVML or the
exporter: each pod's true mean activity over the state window, on its own share of
its device, decides its state at each collection; time between collections is
charged as the exporter documents it (GPU fraction * share, the unallocated rest
with no tenant). Devices without any activity signal (MIG on a GPU without GPM)
count a running process as busy, as the exporter must.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import pairwise

from exporter.model import DeviceState
from exporter.simulation.loads import mean_activity, runs_process
from exporter.simulation.node import SimulatedNode

_Device = tuple[int, int | None]  # (GPU index, MIG slot or None)


def _fraction(node: SimulatedNode, device: _Device, t: float) -> float:
    index, slot = device
    if slot is None:
        return 1.0
    layout = node.layout(index, t) or ()
    instance = layout[slot] if slot < len(layout) else None
    return instance.slices / node.models[index].mig_slices if instance else 0.0


def _devices(node: SimulatedNode, t: float) -> list[_Device]:
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
    for device in _devices(node, t):
        for tenancy in node.tenants_of(*device):
            held[tenancy.pod.tenant] += _fraction(node, device, t) * node.holding_share(
                device[0], tenancy
            )
    return dict(held)


def tenant_state_seconds(
    node: SimulatedNode, times: Sequence[float], *, window: float, busy_threshold: float
) -> dict[tuple[str, DeviceState], float]:
    """GPU-seconds per (tenant, state) charged by collections at `times`; tenant "" is
    the unallocated rest."""
    seconds: defaultdict[tuple[str, DeviceState], float] = defaultdict(float)
    seed = node.scenario.seed
    for previous, t in pairwise(times):
        since = max(t - window, times[0])
        for device in _devices(node, t):
            index, slot = device
            fraction = _fraction(node, device, t)
            no_signal = slot is not None and not node.models[index].gpm
            held = 0.0
            for tenancy in node.tenants_of(index, slot):
                share = node.holding_share(index, tenancy)
                held += share
                pod = tenancy.pod
                if not runs_process(pod.load):
                    state = DeviceState.ALLOCATED_NO_PROCESS
                elif no_signal:
                    state = DeviceState.BUSY
                else:
                    key = f"{pod.namespace}/{pod.name}"
                    own = mean_activity(pod.load, key, seed, since, t) / tenancy.share
                    busy = min(own / share, 1.0) >= busy_threshold
                    state = DeviceState.BUSY if busy else DeviceState.ALLOCATED_IDLE
                seconds[(pod.tenant, state)] += (t - previous) * fraction * share
            free = max(1.0 - held, 0.0)
            seconds[("", DeviceState.UNALLOCATED)] += (t - previous) * fraction * free
    return dict(seconds)
