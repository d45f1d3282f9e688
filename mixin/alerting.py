"""The alert rules: `alerts/gpuwork.alerts.yml`."""

from __future__ import annotations

from collections.abc import Mapping

from mixin.config import Config


def files(config: Config) -> Mapping[str, str]:
    return {}
