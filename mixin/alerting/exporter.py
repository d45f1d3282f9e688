"""The alerts on the exporter itself (group `exporter`), each with its promtool test case:
down or absent, a failing source, stale Kubernetes metadata, series dropped at a cap.
Without a working exporter no other alert can fire."""

from __future__ import annotations

from mixin.alerting.fixtures import job_labels, labels_job, series
from mixin.alerting.model import Alert, Case, events, sel
from mixin.config import Config


def alerts(c: Config) -> list[Alert]:
    out = []
    instance = {"instance": "10.0.0.1:9842"}
    out.append(Alert(
        "GpuworkExporterDown", "exporter", f"{sel(c, 'up')} == 0", c.exporter_down_for,
        "warning", "platform", "Prometheus cannot scrape a gpuwork exporter.",
        "Prometheus has failed to scrape the gpuwork exporter at {{ $labels.instance }} for "
        "more than " + c.exporter_down_for + ": the GPUs of its node have no alerts "
        "(hardware, waste, serving) until it is back.",
        Case(
            {series(c, "up", **instance): "1x4 0x30",
             series(c, "up", instance="10.0.0.2:9842"): "1x40"},
            5,
            [(labels_job(c, **instance),
              "Prometheus has failed to scrape the gpuwork exporter at 10.0.0.1:9842 for more "
              f"than {c.exporter_down_for}: the GPUs of its node have no alerts (hardware, "
              "waste, serving) until it is back.")],
        ),
    ))  # fmt: skip

    out.append(Alert(
        "GpuworkExporterAbsent", "exporter", f"absent({sel(c, 'up')})", c.exporter_absent_for,
        "critical", "platform", "No gpuwork exporter is scraped at all.",
        "Prometheus scrapes no target of job {{ $labels.job }}: no GPU alert can fire. Check "
        "the scrape configuration and the exporter's DaemonSet.",
        Case(
            {'up{job="node-exporter", instance="10.0.0.1:9100"}': "1x40"},
            0,
            [(job_labels(c),
              f"Prometheus scrapes no target of job {job_labels(c).get('job', '')}: no GPU "
              "alert can fire. Check the scrape configuration and the exporter's DaemonSet.")],
        ),
    ))  # fmt: skip

    success = "gpuwork_collector_success"
    out.append(Alert(
        "GpuworkCollectorFailing", "exporter",
        # the engines' source fails with a tenant's engine: GpuworkEngineUnreachable
        sel(c, success, 'collector!="engines"') + " == 0", c.collector_failing_for,
        "warning", "platform", "A source of the gpuwork exporter keeps failing.",
        "The {{ $labels.collector }} source of the gpuwork exporter at {{ $labels.instance }} "
        "has failed for more than " + c.collector_failing_for + ": its series are missing or "
        "stale. gpuwork_exporter_errors_total says why.",
        Case(
            {series(c, success, collector="nvml", **instance): "1x4 0x30",
             series(c, success, collector="podresources", **instance): "1x40",
             series(c, success, collector="engines", **instance): "0x40"},
            5,
            [(labels_job(c, collector="nvml", **instance),
              "The nvml source of the gpuwork exporter at 10.0.0.1:9842 has failed for more "
              f"than {c.collector_failing_for}: its series are missing or stale. "
              "gpuwork_exporter_errors_total says why.")],
        ),
    ))  # fmt: skip

    stale = "gpuwork_kubernetes_metadata_stale"
    out.append(Alert(
        "GpuworkKubernetesMetadataStale", "exporter", f"{sel(c, stale)} == 1",
        c.metadata_stale_for, "warning", "platform",
        "A gpuwork exporter cannot reach the Kubernetes API.",
        "The gpuwork exporter at {{ $labels.instance }} has not reached the Kubernetes API "
        "for more than " + c.metadata_stale_for + ": tenants come from the last labels it "
        "knew, and new pods have none.",
        Case(
            {series(c, stale, **instance): "0x4 1x30"},
            5,
            [(labels_job(c, **instance),
              "The gpuwork exporter at 10.0.0.1:9842 has not reached the Kubernetes API for "
              f"more than {c.metadata_stale_for}: tenants come from the last labels it knew, "
              "and new pods have none.")],
        ),
    ))  # fmt: skip

    dropped = "gpuwork_exporter_dropped_series_total"
    out.append(Alert(
        "GpuworkSeriesDropped", "exporter", events(c, dropped, [], c.dropped_series_window),
        "0m", "warning", "platform", "A gpuwork exporter dropped series at a cap.",
        "The gpuwork exporter at {{ $labels.instance }} dropped series in the last "
        + c.dropped_series_window + " (reason {{ $labels.reason }}): a cap was reached, so "
        "some GPUs, pods or engines are missing from its series.",
        Case(
            {series(c, dropped, reason="xid_cap", **instance): "_x5 1x30"},
            5,
            [(labels_job(c, reason="xid_cap", **instance),
              "The gpuwork exporter at 10.0.0.1:9842 dropped series in the last "
              f"{c.dropped_series_window} (reason xid_cap): a cap was reached, so some GPUs, "
              "pods or engines are missing from its series.")],
        ),
    ))  # fmt: skip
    return out
