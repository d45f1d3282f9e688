"""Every selector, threshold, `for` and URL the rules, alerts and dashboards use, in one
place, each with the reason for its default. Change them here and run
`python -m mixin.generate`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """One multi-window burn-rate alert: both windows burn faster than `factor` x the
    error budget for `for_`."""

    name: str  # the alert's suffix: GpuworkTtftSloBurn<name>
    long: str
    short: str
    factor: float
    severity: str
    for_: str


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

    # -- Alerts: safe (the hardware) ---------------------------------------------------
    # GPU_IS_LOST is definitive; one more minute (several collections) only rules out a
    # glitch of one read, and a page a minute later costs nothing.
    gpu_lost_for: str = "1m"
    # XID and dropped-series counters count since the exporter started and a code's series
    # first appears at 1, so alerts look for new counts (or a new series) in this window;
    # an event alert stays up this long. 15m outlasts a few missed scrapes and a group_wait.
    event_window: str = "15m"
    # Uncorrectable ECC counters increasing: the same window as an XID, as the two come together.
    ecc_window: str = "15m"
    # Hardware alerts list the pods on the GPU from allocations seen this far back: a lost
    # GPU's devices and allocations disappear at once, its pods are still the blast radius.
    blast_radius_window: str = "15m"
    # Row-remap state is absent (not 0) on a MIG GPU with instances and on a lost GPU: an
    # alert keeps the last value seen this long, so absence neither fires nor resolves it.
    hardware_state_hold: str = "1h"
    # Thermal slowdown that lasts: seconds of it are normal at a load step; ten minutes
    # means cooling cannot keep up (airflow, a fan, a failed heat sink).
    thermal_throttle_for: str = "10m"
    # The power brake is an external signal (the chassis or PSU asking for less): rarer
    # and costlier than thermal slowdown, so it alerts sooner.
    power_brake_for: str = "5m"

    # -- Alerts: efficient (the waste ledger) ------------------------------------------
    # A process on the device, below the busy threshold, for an hour: a notebook or a
    # server left idle. Shorter waits page on lunch breaks and long compiles.
    allocated_idle_for: str = "1h"
    # Holding a device with no process on it at all is plainer waste (a crashed job, a
    # sleeping pod): half an hour, past image pulls, data loading and restarts.
    allocated_no_process_for: str = "30m"

    # -- Alerts: serving (the engines' SLOs) -------------------------------------------
    # The TTFT SLO: this share of first tokens within the threshold, per tenant and model.
    # 99% is the SRE workbook's example and leaves a 1% error budget.
    ttft_slo_target: float = 0.99
    # The threshold in seconds, as the `le` label is written: it must be a bucket bound of
    # the engine's TTFT histogram (vLLM, SGLang and TensorRT-LLM all have le="1.0").
    # One second is where a chat user notices the wait.
    ttft_slo_threshold: str = "1.0"
    # Multi-window, multi-burn-rate alerts (SRE workbook, ch. 5; kubernetes-mixin): both the
    # long and the short window must burn faster than factor x the budget. 14.4x for 1h
    # spends 2% of a 30-day budget, 6x for 6h 5%, 3x for 1d 10%; the short window (1/12 of
    # the long one) makes the alert resolve soon after the burn stops.
    ttft_burn_windows: tuple[BurnWindow, ...] = (
        BurnWindow("Fast", "1h", "5m", 14.4, "critical", "2m"),
        BurnWindow("Medium", "6h", "30m", 6.0, "warning", "15m"),
        BurnWindow("Slow", "1d", "2h", 3.0, "info", "1h"),
    )
    # vLLM preempts requests once its KV cache is full; above 95% for a quarter of an hour
    # the engine is at capacity, not at a peak.
    kv_cache_saturation_ratio: float = 0.95
    kv_cache_saturated_for: str = "15m"
    # A queue that grows by more than one request a minute (the slope over the window) while
    # more than 5 wait, for 15 minutes: demand outruns the engine and will not catch up.
    queue_window: str = "15m"
    queue_growth_per_minute: float = 1.0
    queue_min_waiting: float = 5.0
    queue_growing_for: str = "15m"
    # One preemption a second, sustained: requests are recomputed over and over (KV cache
    # thrashing), so throughput collapses. Occasional preemptions are normal at a peak.
    preemption_window: str = "5m"
    preemption_rate_per_second: float = 1.0
    preemption_storm_for: str = "10m"
    # An engine that answered before and fails for ten minutes while its pod holds a
    # device: longer than a restart with a model load, and its pod is judged blind.
    engine_unreachable_for: str = "10m"

    # -- Alerts: the exporter ----------------------------------------------------------
    # Scrape failures for five minutes (20 scrapes at 15 s): no restart takes that long.
    exporter_down_for: str = "5m"
    # No exporter scraped anywhere: every GPU alert is blind. Longer, as a deploy or a
    # Prometheus restart empties it for a while.
    exporter_absent_for: str = "15m"
    # A source failing for 15 minutes (90 collections at 10 s) is broken, not busy; the
    # exporter's backoff reaches 60 s within a minute.
    collector_failing_for: str = "15m"
    # The API server unreachable for 15 minutes: tenants come from labels that age.
    metadata_stale_for: str = "15m"
    # Dropped series: a cap was reached; once in an hour is worth a look.
    dropped_series_window: str = "1h"

    # -- Right-sizing (mixin/rightsizing.py, docs/rightsizing.md) -----------------------
    # Advice reads this much history: a week holds the weekday and weekend peaks. A pod
    # with less history than this gets "not enough data", never advice.
    rightsizing_window: str = "7d"
    # How finely a pod's first sample is looked for in the window (a subquery step): a
    # pod counts as old enough once it has the window less one step of history.
    rightsizing_resolution: str = "1h"
    # The advice group runs this often: its windows read a week of samples per pod, and
    # advice moves over days. Under Prometheus's 5-minute lookback, so an instant query
    # always sees the latest advice.
    rightsizing_interval: str = "2m"
    # Compute need: this quantile of the SM activity over the window (a peak that is not
    # one spike), times the device's GPU fraction, plus this headroom.
    rightsizing_compute_quantile: float = 0.95
    rightsizing_compute_headroom: float = 0.2
    # Memory need: the peak estimate plus this headroom (allocator fragmentation, a
    # longer prompt than the window saw), capped at the memory of the device it ran on.
    rightsizing_memory_headroom: float = 0.2
    # The share of an engine's device memory that is KV cache. The exporter does not
    # serve the cache's size in bytes, so the estimate takes it as this share of the
    # memory the engine holds; the rest (weights, activations, CUDA graphs) is resident.
    # vLLM at gpu_memory_utilization 0.9 with an 8B model on an 80 GB GPU: ~0.7.
    rightsizing_kv_cache_share: float = 0.7
    # Hours in a month, for the monthly saving: 365 * 24 / 12.
    hours_per_month: float = 730.0

    # -- Autoscaling signals (mixin/autoscaling.py, docs/autoscaling.md) ----------------
    # Rates in the autoscaling rules: long enough to smooth a scrape, short enough that a
    # scaler reacts within a few of its 30-second polls.
    autoscaling_rate_window: str = "2m"
    # The example ScaledObject and HPA target this many requests in flight (running +
    # waiting) per replica: half of a vLLM replica's 64-request batch at full activity,
    # so a replica scales out before its queue builds.
    autoscaling_target_in_flight: float = 32.0
    # KEDA activates a scaled-to-zero deployment above this many requests in flight.
    autoscaling_activation_in_flight: float = 0.0
    # Where the examples point KEDA and prometheus-adapter at Prometheus.
    autoscaling_prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"

    # -- Routing (alerts/alertmanager.example.yml) -------------------------------------
    # The tenants with a receiver of their own: those of simulator/scenarios/mixed.yaml.
    tenants: tuple[str, ...] = ("ads", "batch", "chat", "research", "search")
    # Every example receiver is a webhook at <this>/<receiver name>: one place to rewrite.
    webhook_base_url: str = "http://127.0.0.1:9095"


CONFIG = Config()
