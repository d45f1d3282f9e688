"""Fleet efficiency, for the SREs and capacity owners of the GPU fleet: where the GPUs
are and what state they are in, who wastes them and what that costs, useful work per
GPU-hour by model and by GPU model, fair share against efficient use, and the health
of the hardware with the pods and tenants each fault hits."""

from __future__ import annotations

from mixin.config import Config
from mixin.dashboards.panels import RATE_INTERVAL, Board, Query, counted_in

IDLE = 'state=~"allocated_idle|allocated_no_process"'
UNCORRECTED = 'type="uncorrected"'
# An XID's device: a MIG instance, or (anything else) the whole GPU.
MIG = 'device=~"MIG-.*"'
NOT_MIG = 'device!~"MIG-.*"'
# Throttle reasons that are not faults: an idle GPU, clocks set on purpose.
NOT_A_FAULT = 'reason!~"gpu_idle|applications_clocks_setting|display_clock_setting"'


def dashboard(config: Config) -> Board:
    b = Board(
        config,
        name="fleet",
        title="gpuwork / Fleet efficiency",
        description="GPUs by state, waste and its cost per tenant, tokens per GPU-hour, "
        "fair share against useful work, hardware health and its blast radius.",
        tags=["fleet"],
    )
    cl = b.cluster
    raw, rec = b.raw, b.recorded
    # GPUs (as GPU fractions: a 1g MIG instance is 1/7) in each state, now.
    gpus_by_state = (
        f"sum by (state) (gpuwork_device_state{raw()} * on ({cl}, device) group_left () "
        f"gpuwork_device_gpu_fraction{raw()})"
    )

    # -- the fleet now --------------------------------------------------------------
    for state, title, red in (
        ('state="busy"', "GPUs busy", None),
        ('state="allocated_idle"', "GPUs allocated, idle", 1.0),
        ('state="allocated_no_process"', "GPUs allocated, no process", 1.0),
        ('state="unallocated"', "GPUs unallocated", None),
    ):
        b.stat(
            title,
            unit="short",
            description=f"GPUs (MIG instances counted as their share of a GPU) in the "
            f"`{state}` now, from gpuwork_device_state weighted by "
            "gpuwork_device_gpu_fraction.",
            queries=[
                f"sum(gpuwork_device_state{raw(state)} "
                f"* on ({cl}, device) group_left () gpuwork_device_gpu_fraction{raw()})"
            ],
            red_from=red,
        )
    b.timeseries(
        "GPUs by state",
        unit="short",
        description="GPUs in each state over time (a MIG instance counts as its share of "
        "its GPU). allocated_idle and allocated_no_process are held but doing no work.",
        queries=[Query(gpus_by_state, "{{state}}")],
        stack=True,
    )
    b.timeseries(
        "Fleet SM activity",
        unit="percentunit",
        description="SM activity of every device with an activity signal, weighted by "
        "its share of a GPU: the share of the fleet's compute that is in use.",
        queries=[
            Query(
                f"sum(gpuwork_device_sm_active_ratio{raw()} * on ({cl}, device) group_left () "
                f"gpuwork_device_gpu_fraction{raw()}) / sum(gpuwork_device_gpu_fraction{raw()}"
                f" and on ({cl}, device) gpuwork_device_sm_active_ratio{raw()})",
                "fleet",
            )
        ],
        max_value=1,
    )

    # -- waste and what it costs ----------------------------------------------------
    b.bargauge(
        "GPU-hours wasted per tenant, last hour",
        unit="h",
        description="GPU-hours each tenant held without using them (allocated_idle and "
        "allocated_no_process) over the last hour: tenant:gpuwork_gpu_seconds_wasted:"
        "increase1h / 3600.",
        queries=[
            Query(
                f"sort_desc(sum by (tenant) (tenant:gpuwork_gpu_seconds_wasted:increase1h"
                f"{rec()}) / 3600)",
                "{{tenant}}",
            )
        ],
        newline=True,
    )
    b.bargauge(
        "Cost wasted per tenant, last hour",
        unit="short",
        description="What the GPU time each tenant held idle cost over the last hour, in "
        "the currency of the exporter's --cost.gpu-hourly prices: "
        "tenant:gpuwork_cost_wasted:increase1h.",
        queries=[
            Query(
                f"sort_desc(sum by (tenant) (tenant:gpuwork_cost_wasted:increase1h{rec()}))",
                "{{tenant}}",
            )
        ],
    )
    b.timeseries(
        "GPU-hours wasted per tenant",
        unit="h",
        description="The last hour's wasted GPU-hours of each tenant, over time.",
        queries=[
            Query(
                f"sum by (tenant) (tenant:gpuwork_gpu_seconds_wasted:increase1h{rec()}) / 3600",
                "{{tenant}}",
            )
        ],
    )
    b.timeseries(
        "Cost wasted per tenant",
        unit="short",
        description="The last hour's wasted cost of each tenant, over time (currency of "
        "--cost.gpu-hourly).",
        queries=[
            Query(
                f"sum by (tenant) (tenant:gpuwork_cost_wasted:increase1h{rec()})",
                "{{tenant}}",
            )
        ],
    )
    idle_hours = (
        f"sum by ({cl}, tenant, namespace, pod) (namespace_pod_state:gpuwork_device_state_seconds"
        f":increase1h{rec(IDLE)}) / 3600 > 0"
    )
    b.table(
        "Top idle allocations, last hour",
        unit="h",
        description="The 20 pods that held GPU time idle longest over the last hour "
        "(allocated_idle and allocated_no_process), with what it cost and how much GPU "
        "they hold now.",
        queries=[
            Query(f"topk(20, {idle_hours})", column="idle GPU-hours"),
            Query(
                f"sum by ({cl}, tenant, namespace, pod) (namespace_pod_state:gpuwork_cost"
                f":increase1h{rec(IDLE)}) and on ({cl}, tenant, namespace, pod) "
                f"topk(20, {idle_hours})",
                column="idle cost",
                unit="short",
            ),
            Query(
                f"sum by ({cl}, tenant, namespace, pod) (namespace_pod_state:gpuwork_device_state"
                f"_seconds:increase1h{rec()}) / 3600 and on ({cl}, tenant, namespace, pod) "
                f"topk(20, {idle_hours})",
                column="GPU-hours held",
            ),
        ],
    )

    # -- useful work ----------------------------------------------------------------
    b.timeseries(
        "Tokens per GPU-hour by model",
        unit="short",
        description="Tokens (prompt and generation) per GPU-hour held, by the engines' "
        "model, over the last hour: model:gpuwork_tokens_per_gpu_hour:ratio_rate1h.",
        queries=[
            Query(f"model:gpuwork_tokens_per_gpu_hour:ratio_rate1h{rec()}", "{{model}}"),
        ],
    )
    b.timeseries(
        "Tokens per GPU-hour by GPU model",
        unit="short",
        description="Tokens per GPU-hour held, by the GPU model that ran them, over the "
        "last hour: model_name:gpuwork_tokens_per_gpu_hour:ratio_rate1h.",
        queries=[
            Query(
                f"model_name:gpuwork_tokens_per_gpu_hour:ratio_rate1h{rec()}",
                "{{model_name}}",
            ),
        ],
    )
    b.bargauge(
        "Tenants by share held (fair)",
        unit="short",
        description="GPUs each tenant holds now (MIG instances as their share): "
        "tenant:gpuwork_gpu_fraction_held:sum. Fair share is about this number.",
        queries=[
            Query(
                f"sort_desc(sum by (tenant) (tenant:gpuwork_gpu_fraction_held:sum{rec()}))",
                "{{tenant}}",
            )
        ],
    )
    b.bargauge(
        "Tenants by useful work (efficient)",
        unit="short",
        description="Tokens each tenant's engines produced per GPU-hour it held over the "
        "last hour: tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h. A tenant high on "
        "the left and low here holds more than it uses.",
        queries=[
            Query(
                f"sort_desc(tenant:gpuwork_tokens_per_gpu_hour:ratio_rate1h{rec()})",
                f"{{{{{cl}}}}} {{{{tenant}}}}",
            )
        ],
    )

    # -- hardware health and its blast radius ---------------------------------------
    b.stat(
        "Lost GPUs",
        unit="short",
        description="GPUs that fell off the bus (GPU_IS_LOST) and need a reset.",
        queries=[f"sum(gpuwork_gpu_lost{raw()})"],
        red_from=1,
        newline=True,
    )
    b.stat(
        "XID errors in range",
        unit="short",
        description="XID critical errors counted on the fleet over the dashboard's "
        "time range, all codes (raw counts, no grouping by fault domain).",
        queries=[f"sum({counted_in(f'gpuwork_gpu_xid_errors_total{raw()}', '$__range')})"],
        red_from=1,
    )
    b.stat(
        "Uncorrected ECC errors in range",
        unit="short",
        description="Uncorrected ECC errors over the dashboard's time range.",
        queries=[f"sum(increase(gpuwork_gpu_ecc_errors_total{raw(UNCORRECTED)}[$__range]))"],
        red_from=1,
    )
    b.stat(
        "GPUs needing service",
        unit="short",
        description="GPUs whose row remapping failed (gpuwork_gpu_row_remap_failed) or "
        "waits for a reset (gpuwork_gpu_row_remap_pending).",
        queries=[
            f"count(gpuwork_gpu_row_remap_failed{raw()} == 1 or "
            f"gpuwork_gpu_row_remap_pending{raw()} == 1) or vector(0)"
        ],
        red_from=1,
    )
    b.timeseries(
        "XID errors by code",
        unit="short",
        description="XID errors per second across the fleet by XID code (raw counts).",
        queries=[
            Query(
                f"sum by (xid) (rate(gpuwork_gpu_xid_errors_total{raw()}[{RATE_INTERVAL}]))",
                "XID {{xid}}",
            )
        ],
    )
    b.timeseries(
        "GPUs throttled by reason",
        unit="short",
        description="GPUs whose clocks are held down, by reason, leaving out the idle "
        "and application-clock reasons that are not faults.",
        queries=[
            Query(
                f"sum by (reason) (gpuwork_gpu_clock_throttle_active{raw(NOT_A_FAULT)})",
                "{{reason}}",
            )
        ],
    )
    b.timeseries(
        "ECC errors",
        unit="short",
        description="ECC errors per second by type across the fleet.",
        queries=[
            Query(
                f"sum by (type) (rate(gpuwork_gpu_ecc_errors_total{raw()}[{RATE_INTERVAL}]))",
                "{{type}}",
            )
        ],
    )
    # Who sits on each unhealthy GPU: a lost GPU's device series are gone, so its
    # devices and holders are the last ones seen in the range. An XID that names a MIG
    # instance (device="MIG-...") hits that instance's holders only; any other (the GPU
    # itself) every holder on the GPU. max: an exporter restart in the range leaves two
    # series of one allocation (another instance).
    gpu_faults = (
        f"(gpuwork_gpu_lost{raw()} == 1)"
        f" or ({counted_in(f'gpuwork_gpu_xid_errors_total{raw(NOT_MIG)}', '$__range')} > 0)"
        f" or (increase(gpuwork_gpu_ecc_errors_total{raw(UNCORRECTED)}[$__range]) > 0)"
        f" or (gpuwork_gpu_row_remap_failed{raw()} == 1)"
        f" or (gpuwork_gpu_row_remap_pending{raw()} == 1)"
    )
    mig_faults = f"{counted_in(f'gpuwork_gpu_xid_errors_total{raw(MIG)}', '$__range')} > 0"
    held = (
        f"max by ({cl}, gpu_uuid, device, node, tenant, namespace, pod) ("
        f"last_over_time(gpuwork_device_allocation{raw()}[$__range])"
        f" * on ({cl}, device) group_left (gpu_uuid, node)"
        f" group by ({cl}, device, gpu_uuid, node) ("
        f"last_over_time(gpuwork_device_info{raw()}[$__range])))"
    )
    holders = (
        f"({held} and on ({cl}, gpu_uuid) ({gpu_faults}))"
        f" or ({held} and on ({cl}, device) ({mig_faults}))"
    )
    b.table(
        "Blast radius: who is on the unhealthy GPUs",
        unit="short",
        description="Pods and tenants holding a device on a GPU that is lost, had an XID "
        "or an uncorrected ECC error in the range, or needs a row-remap reset or service; "
        "for an XID on one MIG instance, that instance's holders only. "
        "Joined through gpuwork_device_allocation and gpuwork_device_info (last seen in "
        "the range: a lost GPU's device series are gone).",
        queries=[Query(holders, column="share of a device held")],
        height=8,
    )
    xids = (
        f"sum by ({cl}, gpu_uuid, xid) "
        f"({counted_in(f'gpuwork_gpu_xid_errors_total{raw()}', '$__range')}) > 0"
    )
    b.table(
        "XID errors per GPU",
        unit="short",
        description="Each GPU with XID errors in the range, its node and GPU model, the "
        "count per XID code; who it hits is in the table above.",
        queries=[
            Query(
                f"({xids}) * on ({cl}, gpu_uuid) group_left (node, model_name) "
                f"group by ({cl}, gpu_uuid, node, model_name) (gpuwork_gpu_info{raw()})",
                column="errors",
            ),
        ],
        height=8,
    )
    return b
