"""The waste alerts (group `efficient`), each with its promtool test case: a pod that
holds GPU devices it keeps idle or runs nothing on, one alert per pod with its share of
the devices' hourly cost."""

from __future__ import annotations

from mixin.alerting.fixtures import DEVICES, fleet, labels, series
from mixin.alerting.model import Alert, Case, by, sel
from mixin.config import Config


def alerts(c: Config) -> list[Alert]:
    out = []
    for name, state, for_, summary, text in (
        ("GpuworkDeviceAllocatedIdle", "allocated_idle", c.allocated_idle_for,
         "A pod holds GPU devices it keeps idle.",
         "with a process on them that keeps them idle"),
        ("GpuworkDeviceAllocatedNoProcess", "allocated_no_process", c.allocated_no_process_for,
         "A pod holds GPU devices without running anything on them.",
         "without a process on them"),
    ):  # fmt: skip
        allocation = sel(c, "gpuwork_device_allocation")
        state_matcher = f'state="{state}"'
        # the holder's share of the device's price; 0 where the GPU model has no price
        expr = (
            f"sum by ({by(c, 'namespace', 'pod', 'tenant')}) (\n"
            f"  (\n"
            f"      {allocation} * on ({by(c, 'device')}) group_left ()"
            f" {sel(c, 'gpuwork_device_hourly_cost')}\n"
            f"    or\n"
            f"      {allocation} * 0\n"
            f"  )\n"
            f"    and on ({by(c, 'device')})\n"
            f"  ({sel(c, 'gpuwork_device_state', state_matcher)} == 1)\n"
            f")"
        )
        state_series = {
            series(c, "gpuwork_device_state", device=d, state=state): "1x120"
            if d != "MIG-b"
            else "0x120"
            for d in DEVICES
        }
        out.append(Alert(
            name, "efficient", expr, for_, "warning", "tenant", summary,
            "Pod {{ $labels.namespace }}/{{ $labels.pod }} of tenant {{ $labels.tenant }} "
            "has held GPU devices " + text + " for more than " + for_ + "{{ if $value }}, "
            'at {{ printf "%.2f" $value }} an hour{{ else }} (no price is set for their GPU '
            "model){{ end }}. Release them (scale the pod down) or put them to work.",
            Case(
                {
                    **fleet(c),
                    **state_series,
                    series(c, "gpuwork_device_hourly_cost", device="GPU-1"): "4.1x120",
                },
                0,
                [
                    (labels(c, namespace="research", pod="r1", tenant="research"),
                     f"Pod research/r1 of tenant research has held GPU devices {text} for more "
                     f"than {for_} (no price is set for their GPU model). Release them (scale "
                     "the pod down) or put them to work."),
                    *[(labels(c, namespace=ns, pod=pod, tenant=ns),
                       f"Pod {ns}/{pod} of tenant {ns} has held GPU devices {text} for more "
                       f"than {for_}, at 2.05 an hour. Release them (scale the pod down) or put "
                       "them to work.")
                      for ns, pod in (("chat", "c1"), ("ads", "a1"))],
                ],
            ),
        ))  # fmt: skip
    return out
