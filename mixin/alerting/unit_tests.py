"""The promtool unit tests, `alerts/gpuwork.alerts.test.yml`, from each alert's test case:
silent one minute before its `for` has elapsed, firing at it, with exact labels and
annotations, and the case's further checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mixin.alerting.model import Alert, Labels, seconds
from mixin.alerting.render import RULES
from mixin.alerting.rules import runbook_url
from mixin.config import Config


def _at(total_seconds: int) -> str:
    """An eval_time: minutes where whole (the tests' step), else seconds."""
    return f"{total_seconds // 60}m" if total_seconds % 60 == 0 else f"{total_seconds}s"


def _expected(c: Config, a: Alert, found: Sequence[tuple[Labels, str]]) -> list[dict[str, Any]]:
    return [
        {
            "exp_labels": {
                **labels,
                "severity": a.severity,
                "fault_domain": a.fault_domain,
                **a.extra_labels,
            },
            "exp_annotations": {
                "summary": a.summary,
                "description": description,
                "runbook_url": runbook_url(c, a.name),
            },
        }
        for labels, description in found
    ]


def tests(c: Config, defined: Sequence[Alert]) -> dict[str, Any]:
    out = []
    for a in defined:
        case = a.case
        # In seconds: a config with durations of seconds (a fast end-to-end run) still
        # generates, though its unit tests are meant for the minutes of the defaults.
        due = case.onset * 60 + seconds(a.for_)
        silent: list[tuple[int, Sequence[tuple[Labels, str]]]] = (
            [(due - 60, [])] if due >= 60 else []
        )
        checks = [*silent, (due, case.alerts), *((t * 60, f) for t, f in case.extra)]
        out.append({
            "name": a.name,
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
            "alert_rule_test": [
                {"eval_time": _at(t), "alertname": a.name, "exp_alerts": _expected(c, a, found)}
                for t, found in checks
            ],
        })  # fmt: skip
    return {
        "rule_files": [RULES.rsplit("/", 1)[1]],
        "evaluation_interval": "1m",
        "tests": out,
    }
