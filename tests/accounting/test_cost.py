"""Device prices from the price table: whole GPUs, MIG fractions, unpriced models."""

from __future__ import annotations

import pytest

from exporter.accounting.cost import hourly_costs
from tests.support.sim import make_sim


def test_prices_follow_the_gpu_model_and_the_device_fraction() -> None:
    sim = make_sim("mixed")
    sim.reader.start()
    reading = sim.reader.read()
    costs = hourly_costs(reading, (("*H100*", 4.0), ("*A100*", 2.0)))

    fractions = {d.device: (g.model_name, d.gpu_fraction) for g in reading.gpus
                 for d in g.devices}  # fmt: skip
    for device, (model, fraction) in fractions.items():
        if "H100" in model:
            assert costs[device] == pytest.approx(4.0 * fraction)
        elif "A100" in model:
            assert costs[device] == pytest.approx(2.0 * fraction)
        else:
            assert device not in costs  # L4 and H200: no price, no series
    # the 3g.40gb instances of an H100 cost 3/7 of it
    assert sorted({round(c, 4) for c in costs.values()}) == [
        round(x, 4) for x in sorted({4.0, 4 * 3 / 7, 4 * 2 / 7, 4 / 7, 2.0, 2 * 4 / 7, 2 * 3 / 7})
    ]
    assert hourly_costs(reading, ()) == {}
