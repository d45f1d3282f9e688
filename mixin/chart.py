"""The Helm chart's copies of the generated rules and dashboards.

`charts/gpuwork-exporter/` ships the recording rules, the alerts and the dashboards in
its `files/` folder, where its templates read them with `.Files.Get` (a PrometheusRule,
dashboard ConfigMaps). They come from the same functions that write `alerts/` and
`dashboards/`, so the chart never drifts from the mixin: `python -m mixin.generate
--check` fails when a copy differs.
"""

from __future__ import annotations

from collections.abc import Mapping

from mixin import alerting, autoscaling, dashboards, recording, rightsizing
from mixin.config import Config

CHART_FILES = "charts/gpuwork-exporter/files"
RULES = f"{CHART_FILES}/gpuwork.rules.yml"
ALERTS = f"{CHART_FILES}/gpuwork.alerts.yml"
# Recording rules beside the useful-work ones, each a file of its own in the mixin.
EXTRA_RULES = {
    f"{CHART_FILES}/gpuwork.rightsizing.rules.yml": (rightsizing.files, rightsizing.PATH),
    f"{CHART_FILES}/gpuwork.autoscaling.rules.yml": (autoscaling.files, autoscaling.PATH),
}
DASHBOARDS = f"{CHART_FILES}/dashboards"

# The generated files the chart takes, by their path in the repository. The alerts'
# promtool tests and the example Alertmanager routing stay out of the chart.
_ALERTS_SOURCE = "alerts/gpuwork.alerts.yml"


def _one(files: Mapping[str, str], path: str) -> str:
    if path not in files:
        raise KeyError(f"the mixin generates no {path} for the chart; it has {sorted(files)}")
    return files[path]


def files(config: Config) -> Mapping[str, str]:
    rules = recording.files(config)
    out = {
        RULES: _one(rules, recording.PATH),
        ALERTS: _one(alerting.files(config), _ALERTS_SOURCE),
    }
    for target, (part, source) in EXTRA_RULES.items():
        out[target] = _one(part(config), source)
    for path, text in dashboards.files(config).items():
        if not path.startswith("dashboards/") or not path.endswith(".json"):
            raise ValueError(f"unexpected dashboard path {path}")
        out[f"{DASHBOARDS}/{path.removeprefix('dashboards/')}"] = text
    return out
