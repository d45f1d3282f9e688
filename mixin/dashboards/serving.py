"""Inference serving, for whoever runs the model servers: latency (time to first token
and between tokens), throughput, queues, KV cache and preemptions, by model and engine,
from the engines the exporter scrapes in the pods that hold GPUs."""

from __future__ import annotations

from mixin.config import Config
from mixin.dashboards.panels import RATE_INTERVAL, Board, Query, Variable

MODEL = 'model=~"$model"'
ENGINE = 'engine=~"$engine"'
QUANTILES = (("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99"))


def dashboard(config: Config) -> Board:
    job = config.job_selector
    cl = config.cluster_label
    b = Board(
        config,
        name="serving",
        title="gpuwork / Inference serving",
        description="Latency (TTFT, inter-token) p50/p90/p99, throughput, queues, KV "
        "cache and preemptions of the inference engines, by model and engine.",
        tags=["serving"],
        variables=[
            Variable(
                name="model",
                label="Model",
                source=f'gpuwork_engine_requests_running{{{job}, {cl}=~"$cluster"}}',
                label_name="model",
                include_all=True,
                multi=True,
            ),
            Variable(
                name="engine",
                label="Engine",
                source=f'gpuwork_engine_up{{{job}, {cl}=~"$cluster"}}',
                label_name="engine",
                include_all=True,
                multi=True,
            ),
        ],
    )
    sel = b.raw(MODEL, ENGINE)

    # -- the engines now ------------------------------------------------------------
    b.stat(
        "Engines up",
        unit="short",
        description="Engine pods whose last scrape succeeded (gpuwork_engine_up).",
        queries=[f"sum(gpuwork_engine_up{b.raw(ENGINE)})"],
    )
    b.stat(
        "Engines failing",
        unit="short",
        description="Engine pods the exporter scrapes whose last scrape failed.",
        queries=[f"count(gpuwork_engine_up{b.raw(ENGINE)} == 0) or vector(0)"],
        red_from=1,
    )
    b.stat(
        "Tokens per second",
        unit="short",
        description="Tokens (prompt and generation) processed per second.",
        queries=[f"sum(rate(gpuwork_tokens_total{sel}[{RATE_INTERVAL}]))"],
    )
    b.stat(
        "Requests waiting",
        unit="short",
        description="Requests waiting in the engines' queues now.",
        queries=[f"sum(gpuwork_engine_requests_waiting{sel})"],
    )

    # -- latency --------------------------------------------------------------------
    for metric, what in (
        ("gpuwork_engine_time_to_first_token_seconds", "Time to first token"),
        ("gpuwork_engine_inter_token_latency_seconds", "Inter-token latency"),
    ):
        b.timeseries(
            what,
            unit="s",
            description=f"{what} p50/p90/p99 by model and engine, from the engines' own "
            f"histograms ({metric}), aggregated over their pods.",
            queries=[
                Query(
                    f"histogram_quantile({q}, sum by (model, engine, le) (rate({metric}_bucket"
                    f"{sel}[{RATE_INTERVAL}])))",
                    f"{{{{model}}}} {{{{engine}}}} {name}",
                )
                for name, q in QUANTILES
            ],
        )

    # -- throughput and queues ------------------------------------------------------
    b.timeseries(
        "Throughput",
        unit="short",
        description="Tokens per second by model, engine and type (prompt, generation).",
        queries=[
            Query(
                f"sum by (model, engine, type) (rate(gpuwork_tokens_total{sel}[{RATE_INTERVAL}]))",
                "{{model}} {{engine}} {{type}}",
            )
        ],
    )
    b.timeseries(
        "Requests finished",
        unit="reqps",
        description="Requests finished per second by model and engine.",
        queries=[
            Query(
                f"sum by (model, engine) (rate(gpuwork_engine_requests_finished_total{sel}"
                f"[{RATE_INTERVAL}]))",
                "{{model}} {{engine}}",
            )
        ],
    )
    b.timeseries(
        "Queue: running and waiting",
        unit="short",
        description="Requests running and waiting in the engines, by model and engine.",
        queries=[
            Query(
                f"sum by (model, engine) (gpuwork_engine_requests_running{sel})",
                "{{model}} {{engine}} running",
            ),
            Query(
                f"sum by (model, engine) (gpuwork_engine_requests_waiting{sel})",
                "{{model}} {{engine}} waiting",
            ),
        ],
    )
    b.timeseries(
        "KV cache usage",
        unit="percentunit",
        description="Share of the KV cache in use: the fullest pod and the mean over "
        "pods, by model and engine. A full cache means preemptions and queueing.",
        queries=[
            Query(
                f"max by (model, engine) (gpuwork_engine_kv_cache_usage_ratio{sel})",
                "{{model}} {{engine}} max",
            ),
            Query(
                f"avg by (model, engine) (gpuwork_engine_kv_cache_usage_ratio{sel})",
                "{{model}} {{engine}} mean",
            ),
        ],
        max_value=1,
    )
    b.timeseries(
        "Preemptions",
        unit="short",
        description="Requests preempted per second by model and engine (the KV cache ran out).",
        queries=[
            Query(
                f"sum by (model, engine) (rate(gpuwork_engine_preemptions_total{sel}"
                f"[{RATE_INTERVAL}]))",
                "{{model}} {{engine}}",
            )
        ],
    )
    b.timeseries(
        "Energy per 1,000 tokens",
        unit="joule",
        description="Joules per 1,000 tokens over the last hour, by engine model, by engine "
        "and by GPU model (the energy recording rules): engine pods whose devices "
        "have an energy figure; whole GPUs measured, MIG instances estimated.",
        queries=[
            Query(
                f"model:gpuwork_joules_per_1k_tokens:ratio_rate1h{b.recorded(MODEL)}",
                "{{model}}",
            ),
            Query(
                f"engine:gpuwork_joules_per_1k_tokens:ratio_rate1h{b.recorded(ENGINE)}",
                "{{engine}}",
            ),
            Query(
                f"model_name:gpuwork_joules_per_1k_tokens:ratio_rate1h{b.recorded()}",
                "{{model_name}}",
            ),
        ],
    )
    b.table(
        "Cold starts",
        unit="s",
        description="Seconds from each engine pod's start to its first generated token, "
        "as the exporter saw it (gpuwork_engine_cold_start_seconds).",
        queries=[
            Query(
                f"max by ({cl}, tenant, namespace, pod, engine) "
                f"(gpuwork_engine_cold_start_seconds{b.raw(ENGINE)})",
                column="cold start",
            )
        ],
        width=12,
    )
    return b
