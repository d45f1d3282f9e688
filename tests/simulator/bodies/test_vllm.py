"""vLLM's body: the reference exposition of a vLLM 0.33 V1 server, reproduced for its own
stats and served for other models, process starts and stats."""

from __future__ import annotations

from importlib import resources

from prometheus_client.parser import text_string_to_metric_families

from exporter.model import Histogram, ModelStats
from simulator.bodies.exposition import render_exposition
from simulator.bodies.vllm import VLLM_REFERENCE_FILE, VLLM_REFERENCE_MODEL
from tests.support.engine_stats import STATS
from tests.support.paths import ENGINE_FIXTURES

FIXTURE = ENGINE_FIXTURES / "vllm-0.33-v1.metrics.txt"


def reference_stats() -> tuple[ModelStats, float]:
    """The stats and process start that the reference body shows, read with
    prometheus_client's own parser."""
    families = {f.name: f for f in text_string_to_metric_families(FIXTURE.read_text())}

    def one(name: str) -> float:
        (value,) = [s.value for s in families[name].samples if not s.name.endswith("_created")]
        return value

    def histogram(name: str) -> Histogram:
        samples = families[name].samples
        buckets = tuple((float(s.labels["le"]), s.value) for s in samples if "le" in s.labels)
        (count,) = [s.value for s in samples if s.name.endswith("_count")]
        (total,) = [s.value for s in samples if s.name.endswith("_sum")]
        return Histogram(buckets=buckets, count=count, sum=total)

    finished = families["vllm:request_success"].samples
    stats = ModelStats(
        model=VLLM_REFERENCE_MODEL,
        prompt_tokens=one("vllm:prompt_tokens"),
        generation_tokens=one("vllm:generation_tokens"),
        requests_running=one("vllm:num_requests_running"),
        requests_waiting=one("vllm:num_requests_waiting"),
        requests_finished=sum(s.value for s in finished if s.name.endswith("_total")),
        kv_cache_usage_ratio=one("vllm:kv_cache_usage_perc"),
        preemptions=one("vllm:num_preemptions"),
        time_to_first_token_seconds=histogram("vllm:time_to_first_token_seconds"),
        inter_token_latency_seconds=histogram("vllm:inter_token_latency_seconds"),
    )
    return stats, one("process_start_time_seconds")


def samples(body: bytes) -> dict[str, float]:
    """Sample line without its value -> value."""
    lines = [line for line in body.decode().splitlines() if line and not line.startswith("#")]
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines}


def test_the_package_reference_is_the_test_fixture() -> None:
    packaged = resources.files("simulator").joinpath(VLLM_REFERENCE_FILE)
    assert packaged.read_bytes() == FIXTURE.read_bytes()


def test_vllm_reproduces_the_reference_for_its_own_stats() -> None:
    stats, start = reference_stats()
    body = render_exposition("vllm", stats, process_start_time=start)
    reference = FIXTURE.read_bytes()
    differ = [
        (a, b) for a, b in zip(reference.splitlines(), body.splitlines(), strict=True) if a != b
    ]
    # the reference spreads finished requests over reasons; the simulation says "stop"
    assert [(a.split(b" ")[0], b.rsplit(b" ", 1)[1]) for a, b in differ] == [
        (b'vllm:request_success_total{engine="0",finished_reason="stop",'
         b'model_name="meta-llama/Llama-3.1-8B-Instruct"}', b"140.0"),
        (b'vllm:request_success_total{engine="0",finished_reason="length",'
         b'model_name="meta-llama/Llama-3.1-8B-Instruct"}', b"0.0"),
    ]  # fmt: skip


def test_vllm_follows_model_start_and_stats() -> None:
    body = render_exposition("vllm", STATS, process_start_time=1.8e9)
    text = body.decode()
    assert VLLM_REFERENCE_MODEL not in text
    read = samples(body)
    series = '{engine="0",model_name="acme/llama-\\"70b\\""}'
    assert read["process_start_time_seconds"] == 1.8e9
    assert read[f"vllm:prompt_tokens_total{series}"] == 1200.0
    assert read[f"vllm:generation_tokens_total{series}"] == 3400.0
    assert read[f"vllm:num_preemptions_total{series}"] == 2.0
    assert read[f"vllm:kv_cache_usage_perc{series}"] == 0.25
    assert read[f"vllm:time_to_first_token_seconds_count{series}"] == 42.0
    created = [v for k, v in read.items() if "_created{" in k]
    assert len(created) > 30 and all(1.8e9 <= t < 1.8e9 + 5 for t in created)
    # families gpuwork does not read stay as in the reference, for this model
    assert read['vllm:cache_config_info{block_size="16",cache_dtype="auto",'
                'enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.92",'
                'is_attention_free="False",kv_cache_memory_bytes="None",'
                'kv_offloading_backend="native",kv_offloading_size="None",'
                'num_cpu_blocks="None",num_gpu_blocks="29127",'
                'num_gpu_blocks_override="None",prefix_caching_hash_algo="sha256",'
                'sliding_window="None"}'] == 1.0  # fmt: skip
