"""Exporter health, for whoever runs gpuwork itself: are the exporters scraped, does
each source (NVML, the kubelet, /proc, the Kubernetes API, the engines) read in full
and in time, what fails and how, what is dropped at a cap, and what the exporter costs
(memory, CPU, the size of a scrape)."""

from __future__ import annotations

from mixin.config import Config
from mixin.dashboards.panels import RATE_INTERVAL, Board, Query, Variable

NODE = 'node=~"$node"'


def dashboard(config: Config) -> Board:
    job = config.job_selector
    cl = config.cluster_label
    b = Board(
        config,
        name="exporter",
        title="gpuwork / Exporter health",
        description="Scrape targets up, each collector's success, duration and last "
        "success, errors by collector and kind, dropped series, stale metadata, and "
        "the exporter's memory, CPU and scrape size.",
        tags=["exporter"],
        variables=[
            Variable(
                name="node",
                label="Node",
                source=f'gpuwork_exporter_build_info{{{job}, {cl}=~"$cluster"}}',
                label_name="node",
                include_all=True,
                multi=True,
            )
        ],
    )
    raw = b.raw
    # Only gpuwork_exporter_build_info names the node: join each target's series to it.
    build_info = f"gpuwork_exporter_build_info{raw(NODE)}"

    def per_node(series: str, *keep: str) -> str:
        by = ", ".join([cl, "node", *keep])
        return f"max by ({by}) (({series}) * on ({cl}, instance) group_left (node) {build_info})"

    # -- the fleet of exporters now -------------------------------------------------
    b.stat(
        "Targets up",
        unit="short",
        description="Exporter pods Prometheus scraped successfully last time (up == 1).",
        queries=[f"count(up{raw()} == 1)"],
    )
    b.stat(
        "Targets down",
        unit="short",
        description="Exporter pods Prometheus failed to scrape last time (up == 0).",
        queries=[f"count(up{raw()} == 0) or vector(0)"],
        red_from=1,
    )
    b.stat(
        "Nodes with NVML down",
        unit="short",
        description="Exporters whose NVML is not answering (gpuwork_nvml_up 0: driver "
        "missing or reloading); they retry with backoff and keep serving.",
        queries=[f"count({per_node(f'gpuwork_nvml_up{raw()}')} == 0) or vector(0)"],
        red_from=1,
    )
    b.stat(
        "Nodes with stale metadata",
        unit="short",
        description="Exporters that cannot reach the API server: tenants come from the "
        "last known labels (gpuwork_kubernetes_metadata_stale 1).",
        queries=[
            f"count({per_node(f'gpuwork_kubernetes_metadata_stale{raw()}')} == 1) or vector(0)"
        ],
        red_from=1,
    )

    # -- collectors -----------------------------------------------------------------
    success = f"gpuwork_collector_success{raw()}"
    last_success = f"gpuwork_collector_last_success_timestamp_seconds{raw()}"
    errors = f"rate(gpuwork_exporter_errors_total{raw()}[{RATE_INTERVAL}])"
    dropped = f"rate(gpuwork_exporter_dropped_series_total{raw()}[{RATE_INTERVAL}])"
    b.timeseries(
        "Collectors failing",
        unit="short",
        description="Exporters whose last read of each source did not succeed in full "
        "(gpuwork_collector_success 0), by collector.",
        queries=[
            Query(
                f"sum by (collector) (1 - {per_node(success, 'collector')})",
                "{{collector}}",
            )
        ],
    )
    b.timeseries(
        "Collector duration",
        unit="s",
        description="Wall time of each source's last collection, the slowest exporter "
        "per collector.",
        queries=[
            Query(
                "max by (collector) "
                f"({per_node(f'gpuwork_collector_duration_seconds{raw()}', 'collector')})",
                "{{collector}}",
            )
        ],
    )
    b.timeseries(
        "Time since last success",
        unit="s",
        description="Seconds since each source last read successfully, the worst "
        "exporter per collector (gpuwork_collector_last_success_timestamp_seconds).",
        queries=[
            Query(
                f"max by (collector) (time() - {per_node(last_success, 'collector')})",
                "{{collector}}",
            )
        ],
    )
    b.timeseries(
        "Errors by collector and kind",
        unit="short",
        description="Errors per second by collector and kind (the ErrorKind vocabulary, "
        "http_<status>, NVML return codes); docs/metrics.md says what each means.",
        queries=[
            Query(
                f"sum by (collector, kind) ({per_node(errors, 'collector', 'kind')})",
                "{{collector}} {{kind}}",
            )
        ],
    )
    b.timeseries(
        "Dropped series",
        unit="short",
        description="Series not exported per second because a cap was reached, by "
        "reason (gpuwork_exporter_dropped_series_total).",
        queries=[
            Query(
                f"sum by (reason) ({per_node(dropped, 'reason')}) or vector(0)",
                "{{reason}}",
            )
        ],
    )
    b.timeseries(
        "Attribution",
        unit="short",
        description="Per node: device ids the kubelet allocated that match no NVML device "
        "(gpuwork_attribution_unmapped_device_ids), and whether GPU PIDs map to pods "
        "(gpuwork_attribution_host_pids, 0 when hostPID is off).",
        queries=[
            Query(
                per_node(f"gpuwork_attribution_unmapped_device_ids{raw()}"),
                "{{node}} unmapped device ids",
            ),
            Query(
                per_node(f"gpuwork_attribution_host_pids{raw()}"),
                "{{node}} host PIDs",
            ),
        ],
    )

    # -- what it costs --------------------------------------------------------------
    b.timeseries(
        "Memory (RSS)",
        unit="bytes",
        description="Resident memory of each exporter process (prometheus_client's "
        "process_resident_memory_bytes).",
        queries=[
            Query(per_node(f"process_resident_memory_bytes{raw()}"), "{{node}}"),
        ],
    )
    b.timeseries(
        "CPU",
        unit="percentunit",
        description="CPU time per second of each exporter process, 1 = one core "
        "(process_cpu_seconds_total).",
        queries=[
            Query(
                per_node(f"rate(process_cpu_seconds_total{raw()}[{RATE_INTERVAL}])"),
                "{{node}}",
            ),
        ],
    )
    b.timeseries(
        "Scrape size",
        unit="bytes",
        description="Uncompressed size of each scrape's body "
        "(scrape_body_size_bytes: needs Prometheus' --enable-feature=extra-scrape-metrics; "
        "empty without it).",
        queries=[Query(per_node(f"scrape_body_size_bytes{raw()}"), "{{node}}")],
    )
    b.timeseries(
        "Samples per scrape",
        unit="short",
        description="Samples each scrape of an exporter returned (scrape_samples_scraped).",
        queries=[
            Query(per_node(f"scrape_samples_scraped{raw()}"), "{{node}} samples"),
        ],
    )
    b.timeseries(
        "Scrape duration",
        unit="s",
        description="How long Prometheus took to scrape each exporter (scrape_duration_seconds).",
        queries=[Query(per_node(f"scrape_duration_seconds{raw()}"), "{{node}}")],
    )
    b.table(
        "Exporters",
        unit="short",
        description="Every exporter scraped: its node, version and Python version.",
        queries=[
            Query(
                f"max by ({cl}, node, version, python_version) ({build_info})",
                column="build info",
            )
        ],
        hide=["Value"],
        width=12,
    )
    return b
