"""The rule file, `alerts/gpuwork.alerts.yml`: every alert in its group, with the labels
and annotations every alert carries (`severity`, `fault_domain`, `summary`, `description`,
`runbook_url`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mixin.alerting import exporter, hardware, serving, waste
from mixin.alerting.model import Alert
from mixin.config import Config


def alerts(c: Config) -> list[Alert]:
    return [*hardware.alerts(c), *waste.alerts(c), *serving.alerts(c), *exporter.alerts(c)]


GROUPS = {
    "safe": "gpuwork-safe",
    "efficient": "gpuwork-efficient",
    "serving": "gpuwork-serving",
    "exporter": "gpuwork-exporter",
}


def runbook_url(c: Config, name: str) -> str:
    return f"{c.runbook_base_url}#{name.lower()}"


def _rule(c: Config, a: Alert) -> dict[str, Any]:
    return {
        "alert": a.name,
        "expr": a.expr + "\n",
        "for": a.for_,
        "labels": {"severity": a.severity, "fault_domain": a.fault_domain, **a.extra_labels},
        "annotations": {
            "summary": a.summary,
            "description": a.description,
            "runbook_url": runbook_url(c, a.name),
        },
    }


def rules(c: Config, defined: Sequence[Alert]) -> dict[str, Any]:
    names = [a.name for a in defined]
    if len(set(names)) != len(names):
        raise ValueError("alert names must be unique")
    return {
        "groups": [
            {"name": group, "rules": [_rule(c, a) for a in defined if a.group == key]}
            for key, group in GROUPS.items()
        ]
    }
