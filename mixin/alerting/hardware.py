"""The hardware alerts (group `safe`), each with its promtool test case: a lost GPU,
XIDs as NVIDIA's catalog classifies them (mixin/xids.py), uncorrectable ECC errors, row
remapping and throttling. One alert per GPU, naming its node and its blast radius: the
pods that held a device of the GPU within `blast_radius_window`. An application's own
XID goes to its tenant instead, one alert per pod."""

from __future__ import annotations

from collections.abc import Sequence

from mixin import xids
from mixin.alerting.fixtures import PODS_ON, fleet, labels, series
from mixin.alerting.model import Alert, Case, by, events, minutes, sel
from mixin.config import Config


def _with_node(c: Config, expr: str) -> str:
    """Per-GPU series with the node of their GPU (gpuwork_gpu_info stays on a lost GPU)."""
    return (
        f"(\n{_indent(expr)}\n)\n"
        f"  * on ({by(c, 'gpu_uuid')}) group_left (node)\n"
        f"group by ({by(c, 'gpu_uuid', 'node')}) ({sel(c, 'gpuwork_gpu_info')})"
    )


def _indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def _cluster_arg(c: Config) -> str:
    return f'(index $labels "{c.cluster_label}")' if c.cluster_label else '""'


def _cluster_matcher(c: Config) -> list[str]:
    """A matcher on the alert's own cluster inside a template query (printf's first arg)."""
    return [f'{c.cluster_label}="%[1]s"'] if c.cluster_label else []


def _blast_radius(c: Config) -> str:
    """The pods that held a device of the alert's GPU in the last blast_radius_window,
    as `namespace/pod (tenant)`, sorted; `none` when no pod did."""
    w = c.blast_radius_window
    allocation = sel(c, "gpuwork_device_allocation", *_cluster_matcher(c))
    info = sel(c, "gpuwork_device_info", *_cluster_matcher(c), 'gpu_uuid="%[2]s"')
    query = (
        f"label_join(group by (namespace, pod, tenant) (last_over_time({allocation}[{w}])"
        f" * on (device) group_left () group by (device) (last_over_time({info}[{w}]))),"
        f' "who", "/", "namespace", "pod")'
    )
    return (
        f"{{{{ with query (printf `{query}` {_cluster_arg(c)} $labels.gpu_uuid) }}}}"
        '{{ range $i, $s := . | sortByLabel "who" }}{{ if $i }}, {{ end }}'
        "{{ $s.Labels.who }} ({{ $s.Labels.tenant }}){{ end }}{{ else }}none{{ end }}"
    )


def _action_labels(expr: str, codes: Sequence[int]) -> str:
    """Adds `catalog_action`, the catalog's immediate action of the series' XID code."""
    wanted = set(codes)
    for bucket, bucket_codes in xids.buckets().items():
        mine = [code for code in bucket_codes if code in wanted]
        if mine:
            expr = f'label_replace(\n{_indent(expr)},\n  "catalog_action", "{bucket}", "xid", "{xids.regex(mine)}"\n)'  # noqa: E501
    return expr


def alerts(c: Config) -> list[Alert]:
    out = []
    blast = _blast_radius(c)
    gpu_lost = _with_node(c, f"max by ({by(c, 'gpu_uuid')}) ({sel(c, 'gpuwork_gpu_lost')}) == 1")
    lost_for = minutes(c.gpu_lost_for)
    out.append(Alert(
        "GpuworkGpuLost", "safe", gpu_lost, c.gpu_lost_for, "critical", "platform",
        "A GPU is lost: it fell off the bus or needs a reset.",
        "GPU {{ $labels.gpu_uuid }} on node {{ $labels.node }} answers GPU_IS_LOST: it fell "
        "off the bus or needs a reset, and the work on it has stopped. Pods on it: "
        f"{blast}.",
        Case(
            {  # the lost GPU's devices and allocations go at once (minute 5)
                **fleet(c, "1x5"),
                series(c, "gpuwork_gpu_lost", gpu_uuid="GPU-0"): "0x4 1x60",
                series(c, "gpuwork_gpu_lost", gpu_uuid="GPU-1"): "0x70",
            },
            5,
            [(labels(c, gpu_uuid="GPU-0", node="n1"),
              "GPU GPU-0 on node n1 answers GPU_IS_LOST: it fell off the bus or needs a reset, "
              f"and the work on it has stopped. Pods on it: {PODS_ON['GPU-0']}.")],
            extra=[(5 + lost_for + 20, [(  # its pods are still named once allocations went
                labels(c, gpu_uuid="GPU-0", node="n1"),
                "GPU GPU-0 on node n1 answers GPU_IS_LOST: it fell off the bus or needs a "
                "reset, and the work on it has stopped. Pods on it: none.")])]
            if 20 + lost_for > minutes(c.blast_radius_window) else [],
        ),
    ))  # fmt: skip

    xid = "gpuwork_gpu_xid_errors_total"
    for name, severity, codes, summary, example in (
        ("GpuworkGpuXidResetRequired", "critical", xids.codes("platform", reset=True),
         "A GPU reported an XID that takes a GPU reset or a node reboot.", 79),
        ("GpuworkGpuXidInvestigate", "warning", xids.codes("platform", reset=False),
         "A GPU reported an XID that the platform team must look into.", 74),
    ):  # fmt: skip
        new = events(c, xid, [f'xid=~"{xids.regex(codes)}"'], c.event_window)
        expr = _with_node(c, _action_labels(f"sum by ({by(c, 'gpu_uuid', 'xid')}) {new}", codes))
        action = xids.XIDS[example][1]
        out.append(Alert(
            name, "safe", expr, "0m", severity, "platform", summary,
            "GPU {{ $labels.gpu_uuid }} on node {{ $labels.node }} reported XID "
            "{{ $labels.xid }} in the last " + c.event_window + "; NVIDIA's XID catalog says "
            "{{ $labels.catalog_action }}. Pods on it: " + blast + ".",
            Case(
                {
                    **fleet(c),
                    series(c, xid, gpu_uuid="GPU-0", device="GPU-0", xid=str(example)): "_x5 1x60",
                    series(c, xid, gpu_uuid="GPU-1", device="GPU-1", xid="63"): "_x5 1x60",
                },
                5,
                [(labels(c, gpu_uuid="GPU-0", node="n1", xid=str(example), catalog_action=action),
                  f"GPU GPU-0 on node n1 reported XID {example} in the last {c.event_window}; "
                  f"NVIDIA's XID catalog says {action}. Pods on it: {PODS_ON['GPU-0']}.")],
            ),
        ))  # fmt: skip

    known = xids.regex(sorted(xids.XIDS))
    new = events(c, xid, [f'xid!~"{known}"'], c.event_window)
    out.append(Alert(
        "GpuworkGpuXidUnclassified", "safe",
        _with_node(c, f"sum by ({by(c, 'gpu_uuid', 'xid')}) {new}"), "0m", "info", "platform",
        "A GPU reported an XID code that mixin/xids.py does not classify.",
        "GPU {{ $labels.gpu_uuid }} on node {{ $labels.node }} reported XID {{ $labels.xid }}, "
        "which mixin/xids.py does not classify (" + xids.CATALOG + "). Look it up in the "
        "catalog and classify it. Pods on it: " + blast + ".",
        Case(
            {**fleet(c), series(c, xid, gpu_uuid="GPU-1", device="GPU-1", xid="171"): "_x10 1x60"},
            10,
            [(labels(c, gpu_uuid="GPU-1", node="n1", xid="171"),
              "GPU GPU-1 on node n1 reported XID 171, which mixin/xids.py does not classify "
              f"({xids.CATALOG}). Look it up in the catalog and classify it. Pods on it: "
              f"{PODS_ON['GPU-1']}.")],
        ),
    ))  # fmt: skip

    tenant_codes = xids.codes("tenant")
    tenant_matchers = [f'xid=~"{xids.regex(tenant_codes)}"']
    new = events(c, xid, tenant_matchers, c.event_window)
    expr = (
        f"group by ({by(c, 'device', 'namespace', 'pod', 'tenant')}) "
        f"({sel(c, 'gpuwork_device_allocation')})\n"
        f"  * on ({by(c, 'device')}) group_left (gpu_uuid)\n"
        f"sum by ({by(c, 'device', 'gpu_uuid')}) {new}"
    )
    code_events = events(
        c, xid, [*_cluster_matcher(c), 'device="%[2]s"', *tenant_matchers], c.event_window
    )
    codes_query = (
        f"{{{{ range $i, $s := query (printf `group by (xid) {code_events}` "
        f'{_cluster_arg(c)} $labels.device) | sortByLabel "xid" }}}}'
        "{{ if $i }}, {{ end }}{{ $s.Labels.xid }}{{ end }}"
    )
    who = "Pod {{ $labels.namespace }}/{{ $labels.pod }} of tenant {{ $labels.tenant }}"
    out.append(Alert(
        "GpuworkGpuXidApplication", "safe", expr, "0m", "warning", "tenant",
        "An application hit a GPU error of its own (an XID whose remedy is restarting it).",
        who + " hit XID " + codes_query + " on device {{ $labels.device }} (GPU "
        "{{ $labels.gpu_uuid }}) in the last " + c.event_window + ": NVIDIA's XID catalog "
        "says restart the application (RESTART_APP). If it recurs, debug the application.",
        Case(
            {
                **fleet(c),  # 31 on MIG-a reaches only research; 13 on GPU-1 both its pods
                series(c, xid, gpu_uuid="GPU-0", device="MIG-a", xid="31"): "_x3 1x60",
                series(c, xid, gpu_uuid="GPU-0", device="MIG-a", xid="94"): "_x3 1x60",
                series(c, xid, gpu_uuid="GPU-1", device="GPU-1", xid="13"): "_x3 1x60",
                series(c, xid, gpu_uuid="GPU-1", device="GPU-1", xid="63"): "_x3 1x60",
            },
            3,
            [
                (labels(c, device="MIG-a", gpu_uuid="GPU-0", namespace="research", pod="r1",
                         tenant="research"),
                 f"Pod research/r1 of tenant research hit XID 31, 94 on device MIG-a (GPU GPU-0) "
                 f"in the last {c.event_window}: NVIDIA's XID catalog says restart the "
                 "application (RESTART_APP). If it recurs, debug the application."),
                *[(labels(c, device="GPU-1", gpu_uuid="GPU-1", namespace=ns, pod=pod, tenant=ns),
                   f"Pod {ns}/{pod} of tenant {ns} hit XID 13 on device GPU-1 (GPU GPU-1) in the "
                   f"last {c.event_window}: NVIDIA's XID catalog says restart the application "
                   "(RESTART_APP). If it recurs, debug the application.")
                  for ns, pod in (("chat", "c1"), ("ads", "a1"))],
            ],
        ),
    ))  # fmt: skip

    # served from the exporter's start on (the driver's count), so increase() sees each one
    uncorrected = sel(c, "gpuwork_gpu_ecc_errors_total", 'type="uncorrected"')
    ecc = f"sum by ({by(c, 'gpu_uuid')}) (increase({uncorrected}[{c.ecc_window}])) > 0"
    out.append(Alert(
        "GpuworkGpuUncorrectableEccErrors", "safe", _with_node(c, ecc), "0m", "warning",
        "platform", "A GPU counted uncorrectable ECC errors.",
        "GPU {{ $labels.gpu_uuid }} on node {{ $labels.node }} counted uncorrectable ECC "
        "errors in the last " + c.ecc_window + ": the applications that touched the memory "
        "were stopped, and the GPU may need a reset to remap the row. Pods on it: "
        + blast + ".",
        Case(
            {
                **fleet(c),
                series(c, "gpuwork_gpu_ecc_errors_total", gpu_uuid="GPU-1", type="uncorrected"): "0x4 1x60",  # noqa: E501
                series(c, "gpuwork_gpu_ecc_errors_total", gpu_uuid="GPU-0", type="corrected"): "0+5x60",  # noqa: E501
            },
            5,
            [(labels(c, gpu_uuid="GPU-1", node="n1"),
              "GPU GPU-1 on node n1 counted uncorrectable ECC errors in the last "
              f"{c.ecc_window}: the applications that touched the memory were stopped, and "
              f"the GPU may need a reset to remap the row. Pods on it: {PODS_ON['GPU-1']}.")],
        ),
    ))  # fmt: skip

    hold = c.hardware_state_hold
    for name, metric, severity, summary, text in (
        ("GpuworkGpuRowRemapFailed", "gpuwork_gpu_row_remap_failed", "critical",
         "A GPU failed to remap a memory row: it needs service.",
         "failed to remap a memory row: its memory can no longer be repaired and it needs "
         "service (field diagnostics, RMA)."),
        ("GpuworkGpuRowRemapPending", "gpuwork_gpu_row_remap_pending", "warning",
         "A GPU has a remapped memory row waiting for a GPU reset.",
         "has a remapped memory row that waits for a GPU reset to take effect; until then "
         "the faulty row may be used again."),
    ):  # fmt: skip
        # absent (MIG with instances, a lost GPU) is neither 0 nor 1: the last value holds
        expr = f"max by ({by(c, 'gpu_uuid')}) (last_over_time({sel(c, metric)}[{hold}])) == 1"
        out.append(Alert(
            name, "safe", _with_node(c, expr), "0m", severity, "platform", summary,
            "GPU {{ $labels.gpu_uuid }} on node {{ $labels.node }} " + text + " Pods on it: "
            + blast + ".",
            Case(
                {
                    **fleet(c),
                    # GPU-1 turns 1, then its series goes (MIG instances made): still firing
                    series(c, metric, gpu_uuid="GPU-1"): "0x4 1x10",
                    # GPU-0: MIG with instances, never any remap series: silent
                },
                5,
                [(labels(c, gpu_uuid="GPU-1", node="n1"),
                  f"GPU GPU-1 on node n1 {text} Pods on it: {PODS_ON['GPU-1']}.")],
                extra=[(40, [(labels(c, gpu_uuid="GPU-1", node="n1"),
                              f"GPU GPU-1 on node n1 {text} Pods on it: {PODS_ON['GPU-1']}.")])],
            ),
        ))  # fmt: skip

    for name, reasons, for_, summary in (
        ("GpuworkGpuThermalThrottling", ("hw_thermal_slowdown", "sw_thermal_slowdown"),
         c.thermal_throttle_for, "A GPU holds its clocks down to cool."),
        ("GpuworkGpuPowerBrakeThrottling", ("hw_power_brake_slowdown",), c.power_brake_for,
         "A GPU holds its clocks down on the power brake."),
    ):  # fmt: skip
        metric = "gpuwork_gpu_clock_throttle_active"
        matcher = 'reason=~"' + "|".join(reasons) + '"'
        expr = f"max by ({by(c, 'gpu_uuid', 'reason')}) ({sel(c, metric, matcher)}) == 1"
        out.append(Alert(
            name, "safe", _with_node(c, expr), for_, "warning", "platform", summary,
            "GPU {{ $labels.gpu_uuid }} on node {{ $labels.node }} has held its clocks down "
            "for {{ $labels.reason }} for more than " + for_ + ": its work runs slower. Pods "
            "on it: " + blast + ".",
            Case(
                {
                    **fleet(c),
                    series(c, metric, gpu_uuid="GPU-0", reason=reasons[0]): "0x4 1x120",
                    series(c, metric, gpu_uuid="GPU-0", reason="sw_power_cap"): "1x120",
                    series(c, metric, gpu_uuid="GPU-1", reason=reasons[0]): "0x120",
                },
                5,
                [(labels(c, gpu_uuid="GPU-0", node="n1", reason=reasons[0]),
                  f"GPU GPU-0 on node n1 has held its clocks down for {reasons[0]} for more "
                  f"than {for_}: its work runs slower. Pods on it: {PODS_ON['GPU-0']}.")],
            ),
        ))  # fmt: skip
    return out
