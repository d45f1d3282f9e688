"""The serving alerts (group `serving`), each with its promtool test case: time to first
token burning its SLO's error budget (multi-window burn rates, per tenant and model), and
an engine's KV cache, queue, preemptions and reachability (per pod)."""

from __future__ import annotations

from mixin.alerting.fixtures import fleet, labels, labels_job, series
from mixin.alerting.model import Alert, Case, Labels, by, minutes, num, sel
from mixin.config import Config


def _engine_labels(**extra: str) -> dict[str, str]:
    return {"namespace": "chat", "pod": "c1", "tenant": "chat", "model": "m", "engine": "vllm",
            **extra}  # fmt: skip


def alerts(c: Config) -> list[Alert]:
    out = []
    budget = 1 - c.ttft_slo_target
    bucket = "gpuwork_engine_time_to_first_token_seconds_bucket"

    def error_ratio(window: str) -> str:
        good = sel(c, bucket, f'le="{c.ttft_slo_threshold}"')
        every = sel(c, bucket, 'le="+Inf"')
        keys = by(c, "tenant", "model")
        return (
            f"(\n  1 - sum by ({keys}) (rate({good}[{window}]))\n"
            f"        / sum by ({keys}) (rate({every}[{window}]) and ignoring (le) {good})\n)"
        )

    chat = _engine_labels(series="engine=0")
    ttft = {  # 90% of first tokens slower than the threshold
        series(c, bucket, **chat, le=c.ttft_slo_threshold): "0+1x1500",
        series(c, bucket, **chat, le="+Inf"): "0+10x1500",
        series(c, bucket, **_engine_labels(tenant="ads", pod="a1", namespace="ads",
                                            series="engine=0"), le=c.ttft_slo_threshold): "0+10x1500",  # noqa: E501
        series(c, bucket, **_engine_labels(tenant="ads", pod="a1", namespace="ads",
                                            series="engine=0"), le="+Inf"): "0+10x1500",
    }  # fmt: skip
    for w in c.ttft_burn_windows:
        limit = num(w.factor * budget)
        expr = f"{error_ratio(w.long)} > {limit}\nand\n{error_ratio(w.short)} > {limit}"
        text = (
            f"of first tokens took longer than {c.ttft_slo_threshold}s over the last {w.long} "
            f"(and {w.short}); the SLO allows {num(budget * 100)}%, so the error budget "
            f"burns {num(w.factor)} times too fast or more."
        )
        out.append(Alert(
            f"GpuworkTtftSloBurn{w.name}", "serving", expr, w.for_, w.severity, "tenant",
            f"A model's time to first token burns its error budget {num(w.factor)}x too fast.",
            "Tenant {{ $labels.tenant }}, model {{ $labels.model }}: "
            "{{ $value | humanizePercentage }} " + text,
            Case(ttft, 1, [(labels(c, tenant="chat", model="m"),
                            f"Tenant chat, model m: 90% {text}")]),
        ))  # fmt: skip

    engine_who = (
        "{{ $labels.engine }} engine of pod {{ $labels.namespace }}/{{ $labels.pod }} (tenant "
        "{{ $labels.tenant }}, model {{ $labels.model }})"
    )

    def engine(**extra: str) -> Labels:
        return labels_job(c, **_engine_labels(**extra))

    kv = "gpuwork_engine_kv_cache_usage_ratio"
    out.append(Alert(
        "GpuworkEngineKvCacheSaturated", "serving",
        f"{sel(c, kv)} > {num(c.kv_cache_saturation_ratio)}", c.kv_cache_saturated_for,
        "warning", "tenant", "An engine's KV cache is full.",
        "The " + engine_who + " has had {{ $value | humanizePercentage }} of its KV cache in "
        "use for more than " + c.kv_cache_saturated_for + ": it preempts requests and cannot "
        "take more load. Add replicas or lower max-num-seqs.",
        Case(
            {series(c, kv, **_engine_labels()): "0.5x4 0.99x60",
             series(c, kv, **_engine_labels(model="n")): "0.9x60"},
            5,
            [(engine(), "The vllm engine of pod chat/c1 (tenant chat, model m) has had 99% of its "
                        f"KV cache in use for more than {c.kv_cache_saturated_for}: it preempts "
                        "requests and cannot take more load. Add replicas or lower max-num-seqs.")],
        ),
    ))  # fmt: skip

    waiting = sel(c, "gpuwork_engine_requests_waiting")
    growth = c.queue_growth_per_minute
    step = 2 * growth  # the test's queue grows twice as fast as the threshold
    onset = max(1, int(c.queue_min_waiting // step) + 1)
    out.append(Alert(
        "GpuworkEngineQueueGrowing", "serving",
        f"deriv({waiting}[{c.queue_window}]) * 60 > {num(growth)}\n"
        f"and\n{waiting} > {num(c.queue_min_waiting)}",
        c.queue_growing_for, "warning", "tenant", "An engine's queue keeps growing.",
        "The waiting queue of the " + engine_who + " has grown by "
        '{{ printf "%.1f" $value }} requests a minute for more than ' + c.queue_growing_for
        + ": demand outruns the engine. Add replicas or shed load.",
        Case(
            {series(c, "gpuwork_engine_requests_waiting", **_engine_labels()): f"0+{num(step)}x60",
             series(c, "gpuwork_engine_requests_waiting", **_engine_labels(model="n")): "50x60"},
            onset,
            [(engine(), f"The waiting queue of the vllm engine of pod chat/c1 (tenant chat, model "
                        f"m) has grown by {step:.1f} requests a minute for more than "
                        f"{c.queue_growing_for}: demand outruns the engine. Add replicas or "
                        "shed load.")],
        ),
    ))  # fmt: skip

    preemptions = sel(c, "gpuwork_engine_preemptions_total")
    rate = c.preemption_rate_per_second
    keys = by(c, "namespace", "pod", "tenant", "model", "engine")
    out.append(Alert(
        "GpuworkEnginePreemptionStorm", "serving",
        f"sum by ({keys}) (rate({preemptions}[{c.preemption_window}])) > {num(rate)}",
        c.preemption_storm_for, "warning", "tenant", "An engine preempts requests over and over.",
        "The " + engine_who + ' preempts {{ printf "%.2f" $value }} requests a second: its KV '
        "cache thrashes and throughput collapses. Lower max-num-seqs or add replicas.",
        Case(
            # the counter grows at twice the threshold from 0: over it past half the window
            {series(c, "gpuwork_engine_preemptions_total", **_engine_labels(series="engine=0")):
             f"0+{num(2 * rate * 60)}x60"},
            minutes(c.preemption_window) // 2 + 1,
            [(labels(c, **_engine_labels()),
              "The vllm engine of pod chat/c1 (tenant chat, model m) preempts "
              f"{2 * rate:.2f} requests a second: its KV cache thrashes and throughput "
              "collapses. Lower max-num-seqs or add replicas.")],
        ),
    ))  # fmt: skip

    up = sel(c, "gpuwork_engine_up")
    out.append(Alert(
        "GpuworkEngineUnreachable", "serving",
        f"({up} == 0)\n  and on ({by(c, 'namespace', 'pod')})\n"
        f"group by ({by(c, 'namespace', 'pod')}) ({sel(c, 'gpuwork_device_allocation')})",
        c.engine_unreachable_for, "warning", "tenant",
        "gpuwork cannot scrape the engine of a pod that holds a GPU.",
        "gpuwork cannot scrape the {{ $labels.engine }} engine of pod {{ $labels.namespace }}/"
        "{{ $labels.pod }} (tenant {{ $labels.tenant }}) for more than "
        + c.engine_unreachable_for + " while the pod holds a GPU device: the engine hangs or "
        "crashes, or its metrics port is closed to the exporter. Its useful work is not "
        "counted meanwhile.",
        Case(
            {
                **fleet(c),
                series(c, "gpuwork_engine_up", namespace="chat", pod="c1", tenant="chat",
                        engine="vllm"): "1x4 0x60",
                # a pod that holds no device: its engine is not this alert's business
                series(c, "gpuwork_engine_up", namespace="chat", pod="gone", tenant="chat",
                        engine="vllm"): "0x60",
            },
            5,
            [(labels_job(c, namespace="chat", pod="c1", tenant="chat", engine="vllm"),
              "gpuwork cannot scrape the vllm engine of pod chat/c1 (tenant chat) for more than "
              f"{c.engine_unreachable_for} while the pod holds a GPU device: the engine hangs "
              "or crashes, or its metrics port is closed to the exporter. Its useful work is "
              "not counted meanwhile.")],
        ),
    ))  # fmt: skip
    return out
