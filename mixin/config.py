"""Every selector, threshold, `for` and URL the rules, alerts and dashboards use, in one
place, each with the reason for its default. Change them here and run
`python -m mixin.generate`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Config:
    # The scrape job of the exporter's pods: every selector on a gpuwork_ series starts
    # with it, so other jobs' series of the same name never mix in.
    job_selector: str = 'job="gpuwork-exporter"'
    # The label that names a cluster where one store holds several (external labels,
    # remote write). Rules aggregate by it, so they run unchanged per cluster or on a
    # global store; where series have no such label it is simply empty.
    cluster_label: str = "cluster"
    # Where each alert's runbook section lives: `<base>#<alert name, lower-case>`.
    runbook_base_url: str = "https://github.com/gpuwork/gpuwork/blob/main/docs/runbooks.md"


CONFIG = Config()
