"""Fixtures shared by the test modules: a controllable clock and simulated nodes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.sim import Sim, make_sim


@pytest.fixture
def sim_factory() -> Callable[..., Sim]:
    return make_sim
