"""Tenant efficiency, for one tenant's own engineers and its budget owner: what it
holds, how much useful work it gets from it against the fleet on the same model, what
a million tokens cost, what idle time costs, per pod, and its engines' latency and
queues.

Every query reads only series that carry a `tenant` label and selects
`tenant="$tenant"` on each of them, so the dashboard works unchanged behind a
label-enforcing proxy (prom-label-proxy and the like) that adds `tenant="X"` to every
selector: no panel needs a series the proxy would hide. The fleet's figure for a
model comes from `tenant_model:gpuwork_fleet_tokens_per_gpu_hour:ratio_rate1h`, a
rule that copies it onto each tenant's own series for that very reason.
"""

from __future__ import annotations

from mixin.config import Config
from mixin.dashboards.panels import RATE_INTERVAL, Board, Query, Variable

TENANT = 'tenant="$tenant"'
IDLE = 'state=~"allocated_idle|allocated_no_process"'
HELD = 'state!="unallocated"'
QUANTILES = (("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99"))


def dashboard(config: Config) -> Board:
    cl = config.cluster_label
    source = "tenant:gpuwork_gpu_fraction_held:sum"
    b = Board(
        config,
        name="tenant",
        title="gpuwork / Tenant efficiency",
        description="One tenant: GPUs held, tokens per GPU-hour against the fleet's for "
        "the same model, cost per million tokens, idle time and its cost, per pod, and "
        "its engines' latency and queues. Works behind a label-enforcing proxy.",
        tags=["tenant"],
        # Both variables read a tenant-labelled series, so they fill in behind the proxy.
        cluster_source=source,
        variables=[
            Variable(
                name="tenant",
                label="Tenant",
                source=f'{source}{{{cl}=~"$cluster"}}',
                label_name="tenant",
            )
        ],
    )
    raw, rec = b.raw, b.recorded

    # -- what it holds and what it gets ---------------------------------------------
    b.stat(
        "GPUs held",
        unit="short",
        description="GPUs the tenant holds now, MIG instances as their share of a GPU "
        "(tenant:gpuwork_gpu_fraction_held:sum).",
        queries=[f"sum(tenant:gpuwork_gpu_fraction_held:sum{rec(TENANT)})"],
    )
    b.stat(
        "Tokens per GPU-hour, last hour",
        unit="short",
        description="Tokens the tenant's engines processed per GPU-hour it held over the "
        "last hour, over every chosen cluster (tenant:gpuwork_tokens:increase1h / "
        "tenant:gpuwork_gpu_seconds_held:increase1h, as "
        "tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h per cluster).",
        # From the sums, not a sum of per-cluster ratios.
        queries=[
            f"sum(tenant:gpuwork_tokens:increase1h{rec(TENANT)}) / "
            f"sum(tenant:gpuwork_gpu_seconds_held:increase1h{rec(TENANT)}) * 3600"
        ],
    )
    b.stat(
        "Cost per million tokens, last hour",
        unit="short",
        description="What the tenant's GPU time cost per million tokens over the last "
        "hour, in the currency of the exporter's --cost.gpu-hourly, over every chosen "
        "cluster (as tenant:gpuwork_cost_per_million_tokens:ratio_rate1h per cluster).",
        queries=[
            f"sum(tenant:gpuwork_cost:increase1h{rec(TENANT)}) / "
            f"sum(tenant:gpuwork_tokens:increase1h{rec(TENANT)}) * 1e6"
        ],
    )
    b.stat(
        "Idle share of GPU time, last hour",
        unit="percentunit",
        description="The share of the GPU-hours the tenant held over the last hour that "
        "were idle or had no process (tenant:gpuwork_gpu_seconds_wasted:increase1h / "
        "tenant:gpuwork_gpu_seconds_held:increase1h).",
        queries=[
            f"sum(tenant:gpuwork_gpu_seconds_wasted:increase1h{rec(TENANT)}) / "
            f"sum(tenant:gpuwork_gpu_seconds_held:increase1h{rec(TENANT)})"
        ],
        red_from=0.5,
    )
    b.timeseries(
        "GPUs held",
        unit="short",
        description="GPUs held over time (MIG instances as their share of a GPU).",
        queries=[
            Query(
                f"sum by ({cl}) (tenant:gpuwork_gpu_fraction_held:sum{rec(TENANT)})",
                f"{{{{{cl}}}}} held",
            )
        ],
    )
    b.timeseries(
        "Tokens per GPU-hour against the fleet, by model",
        unit="short",
        description="For each model the tenant serves: its tokens per GPU-hour over the "
        "last hour (tenant_model:gpuwork_tokens_per_gpu_hour:ratio_rate1h) against the "
        "whole fleet's for the same model (tenant_model:gpuwork_fleet_tokens_per_gpu_hour"
        ":ratio_rate1h). Below the fleet: the same model gets less done per GPU here.",
        queries=[
            Query(
                f"tenant_model:gpuwork_tokens_per_gpu_hour:ratio_rate1h{rec(TENANT)}",
                "{{model}} (this tenant)",
            ),
            Query(
                f"tenant_model:gpuwork_fleet_tokens_per_gpu_hour:ratio_rate1h{rec(TENANT)}",
                "{{model}} (fleet)",
            ),
        ],
    )
    b.bargauge(
        "Useful work against the fleet, by model",
        unit="percentunit",
        description="The tenant's tokens per GPU-hour as a share of the fleet's for the "
        "same model, over the last hour: 100 % is the fleet's average.",
        queries=[
            Query(
                f"tenant_model:gpuwork_tokens_per_gpu_hour:ratio_rate1h{rec(TENANT)} / "
                f"tenant_model:gpuwork_fleet_tokens_per_gpu_hour:ratio_rate1h{rec(TENANT)}",
                "{{model}}",
            )
        ],
        max_value=2,
    )
    b.timeseries(
        "Cost per million tokens",
        unit="short",
        description="The last hour's cost per million tokens, over time (currency of "
        "--cost.gpu-hourly).",
        queries=[
            Query(
                f"tenant:gpuwork_cost_per_million_tokens:ratio_rate1h{rec(TENANT)}",
                f"{{{{{cl}}}}} per 1M tokens",
            )
        ],
    )

    # -- idle time and its cost -----------------------------------------------------
    b.timeseries(
        "GPUs idle",
        unit="short",
        description="GPUs the tenant holds without using them, by state: GPU-seconds "
        "per second from gpuwork_device_state_seconds_total (allocated_idle: a process "
        "runs below the busy threshold; allocated_no_process: none runs).",
        queries=[
            Query(
                "sum by (state) (rate(gpuwork_device_state_seconds_total"
                f"{raw(TENANT, IDLE)}[{RATE_INTERVAL}]))",
                "{{state}}",
            )
        ],
        stack=True,
        newline=True,
    )
    b.timeseries(
        "Cost of idle time, last hour",
        unit="short",
        description="What the GPU time held idle over the last hour cost "
        "(tenant:gpuwork_cost_wasted:increase1h), beside the last hour's whole cost "
        "(tenant:gpuwork_cost:increase1h).",
        queries=[
            Query(f"sum(tenant:gpuwork_cost_wasted:increase1h{rec(TENANT)})", "idle"),
            Query(f"sum(tenant:gpuwork_cost:increase1h{rec(TENANT)})", "all"),
        ],
    )
    by_pod = f"{cl}, namespace, pod"
    b.table(
        "Pods, last hour",
        unit="short",
        description="Each of the tenant's pods over the last hour: GPUs held on average, "
        "the idle share of that time, tokens per GPU-hour, and what its GPU time cost.",
        queries=[
            Query(
                f"sum by ({by_pod}) (namespace_pod_state:gpuwork_device_state_seconds"
                f":increase1h{rec(TENANT)}) / 3600",
                column="GPUs held (avg)",
            ),
            Query(
                f"sum by ({by_pod}) (namespace_pod_state:gpuwork_device_state_seconds"
                f":increase1h{rec(TENANT, IDLE)}) / sum by ({by_pod}) "
                f"(namespace_pod_state:gpuwork_device_state_seconds:increase1h{rec(TENANT)})",
                column="idle share",
                unit="percentunit",
            ),
            Query(
                f"sum by ({by_pod}) (namespace_pod:gpuwork_tokens_per_gpu_hour:ratio_rate1h"
                f"{rec(TENANT)})",
                column="tokens per GPU-hour",
            ),
            Query(
                f"sum by ({by_pod}) (namespace_pod_state:gpuwork_cost:increase1h{rec(TENANT)})",
                column="cost",
            ),
            Query(
                f"sum by ({by_pod}) (rate(gpuwork_device_state_seconds_total"
                f"{raw(TENANT, HELD)}[{RATE_INTERVAL}]))",
                column="GPUs held now",
            ),
        ],
        newline=True,
    )

    # -- its engines ----------------------------------------------------------------
    for metric, what in (
        ("gpuwork_engine_time_to_first_token_seconds", "Time to first token"),
        ("gpuwork_engine_inter_token_latency_seconds", "Inter-token latency"),
    ):
        b.timeseries(
            what,
            unit="s",
            description=f"{what} of the tenant's engines, p50/p90/p99 by model, from the "
            f"engines' own histograms ({metric}).",
            queries=[
                Query(
                    f"histogram_quantile({q}, sum by (model, le) (rate({metric}_bucket"
                    f"{raw(TENANT)}[{RATE_INTERVAL}])))",
                    f"{{{{model}}}} {name}",
                )
                for name, q in QUANTILES
            ],
        )
    b.timeseries(
        "Engine queue",
        unit="short",
        description="Requests the tenant's engines are running and holding in their "
        "queues, by model.",
        queries=[
            Query(
                f"sum by (model) (gpuwork_engine_requests_running{raw(TENANT)})",
                "{{model}} running",
            ),
            Query(
                f"sum by (model) (gpuwork_engine_requests_waiting{raw(TENANT)})",
                "{{model}} waiting",
            ),
        ],
    )
    b.timeseries(
        "Tokens per second",
        unit="short",
        description="Tokens the tenant's engines process per second, by model and type "
        "(prompt, generation).",
        queries=[
            Query(
                f"sum by (model, type) (rate(gpuwork_tokens_total{raw(TENANT)}[{RATE_INTERVAL}]))",
                "{{model}} {{type}}",
            )
        ],
    )
    b.stat(
        "Engines up",
        unit="short",
        description="The tenant's engines whose last scrape succeeded, of those the "
        "exporter scrapes (gpuwork_engine_up).",
        queries=[
            Query(f"sum(gpuwork_engine_up{raw(TENANT)})", "up"),
            Query(f"count(gpuwork_engine_up{raw(TENANT)})", "scraped"),
        ],
        width=12,
    )
    return b
