"""The dashboards: one module each, built with grafanalib behind `mixin.dashboards.panels`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mixin.config import Config
from mixin.dashboards import exporter, fleet, node, rightsizing, serving, tenant
from mixin.dashboards.panels import Board

MODULES = (fleet, node, tenant, serving, exporter, rightsizing)


def boards(config: Config) -> list[Board]:
    return [module.dashboard(config) for module in MODULES]


def dashboards(config: Config) -> dict[str, dict[str, Any]]:
    """Each dashboard's name to its JSON, decoded."""
    return {board.name: board.json_data() for board in boards(config)}


def files(config: Config) -> Mapping[str, str]:
    return {f"dashboards/{board.name}.json": board.json_text() for board in boards(config)}
