"""The alerts, their promtool unit tests and an example of their routing:

- `alerts/gpuwork.alerts.yml`: every alert (`rules.py`, from `hardware.py`, `waste.py`,
  `serving.py` and `exporter.py`);
- `alerts/gpuwork.alerts.test.yml`: a promtool unit test for each (`unit_tests.py`), from
  the test case that sits next to its alert: silent one minute before its `for` has
  elapsed, firing at it, with exact labels and annotations;
- `alerts/alertmanager.example.yml` (`routing.py`): platform alerts to SRE (critical: a
  pager, the rest: tickets), tenant alerts to a receiver per tenant, and a lost GPU
  inhibiting its own XID and throttling alerts.

Every alert has `severity`, `fault_domain` (who acts: "tenant" or "platform"), a static
`summary`, a templated `description` and `runbook_url` (added in `rules.py`). Hardware
alerts are one per GPU and name their blast radius in the description: the pods that held
a device of the GPU within `blast_radius_window`. Alerts routed to a tenant are one per pod
(or per tenant and model), so that each carries its `tenant` label. docs/alerts.md says
why; docs/runbooks.md has a section per alert.
"""

from __future__ import annotations

from collections.abc import Mapping

from mixin.alerting import render, routing, rules, unit_tests
from mixin.config import Config


def files(config: Config) -> Mapping[str, str]:
    defined = rules.alerts(config)
    return {
        render.RULES: render.document(rules.rules(config, defined)),
        render.TESTS: render.document(unit_tests.tests(config, defined)),
        render.ALERTMANAGER: render.document(routing.alertmanager(config)),
    }
