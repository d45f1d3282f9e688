"""The one source of gpuwork's recording rules, alerts and dashboards.

`python -m mixin.generate` writes `alerts/` and `dashboards/` from it; the generated
files are committed, and `--check` (run by the tests) fails when they differ.
"""
