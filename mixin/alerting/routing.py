"""The example Alertmanager configuration, `alerts/alertmanager.example.yml`: platform
alerts to SRE (critical: a pager, the rest: tickets), tenant alerts to a receiver per
tenant, and a lost GPU inhibiting its own XID and throttling alerts."""

from __future__ import annotations

from typing import Any

from mixin.config import Config

# The receivers of the example routing, each a webhook at <webhook_base_url>/<name>.
PAGER, TICKET, DEFAULT = "sre-pager", "sre-ticket", "default"


def _receiver(c: Config, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "webhook_configs": [{"url": f"{c.webhook_base_url}/{name}", "send_resolved": True}],
    }


def tenant_receiver(tenant: str) -> str:
    return f"tenant-{tenant}"


def alertmanager(c: Config) -> dict[str, Any]:
    cluster = [c.cluster_label] if c.cluster_label else []
    hardware = "GpuworkGpuXid.*|GpuworkGpu(Thermal|PowerBrake)Throttling"
    return {
        "route": {
            "receiver": DEFAULT,
            "group_by": [*cluster, "alertname"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {
                    # one notification per node and alert: a node's GPUs fail together
                    "matchers": ['fault_domain="platform"'],
                    "receiver": TICKET,
                    "group_by": [*cluster, "alertname", "node"],
                    "routes": [
                        {
                            "matchers": ['severity="critical"'],
                            "receiver": PAGER,
                            "repeat_interval": "1h",
                        },
                        {"matchers": ['severity=~"warning|info"'], "receiver": TICKET},
                    ],
                },
                {
                    # one notification per tenant and alert, to that tenant only
                    "matchers": ['fault_domain="tenant"'],
                    "receiver": DEFAULT,
                    "group_by": [*cluster, "tenant", "alertname"],
                    "routes": [
                        {"matchers": [f'tenant="{t}"'], "receiver": tenant_receiver(t)}
                        for t in c.tenants
                    ],
                },
            ],
        },
        "inhibit_rules": [
            {
                # a lost GPU explains its own XIDs and throttling
                "source_matchers": ['alertname="GpuworkGpuLost"'],
                "target_matchers": [f'alertname=~"{hardware}"'],
                "equal": [*cluster, "gpu_uuid"],
            }
        ],
        "receivers": [
            _receiver(c, name)
            for name in (DEFAULT, PAGER, TICKET, *(tenant_receiver(t) for t in c.tenants))
        ],
    }
