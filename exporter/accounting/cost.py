"""Device prices: the hourly price of each device, from a price table per GPU model.

A whole GPU costs its model's price; a MIG instance its GPU fraction of it. A
time-sliced device is priced whole here: each holder's part is its allocation share
of it, which recording rules multiply in (`gpuwork_device_allocation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from exporter.model import NvmlReading


def hourly_costs(reading: NvmlReading, prices: Sequence[tuple[str, float]]) -> dict[str, float]:
    """device -> price per hour; devices of unpriced models are left out."""
    costs: dict[str, float] = {}
    if not prices:
        return costs
    for gpu in reading.gpus:
        price = next((p for pattern, p in prices if fnmatchcase(gpu.model_name, pattern)), None)
        if price is None:
            continue
        for device in gpu.devices:
            costs[device.device] = price * device.gpu_fraction
    return costs
