"""The recording rules: `alerts/gpuwork.rules.yml`."""

from __future__ import annotations

from collections.abc import Mapping

from mixin.config import Config


def files(config: Config) -> Mapping[str, str]:
    return {}
