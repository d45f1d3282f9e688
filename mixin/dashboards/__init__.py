"""The dashboards: one module each, built with grafanalib behind `mixin.dashboards.panels`."""

from __future__ import annotations

from collections.abc import Mapping

from mixin.config import Config


def files(config: Config) -> Mapping[str, str]:
    return {}
