"""Renders what an engine serves on `/metrics` from a `ModelStats`: the simulated engines'
bodies, in each engine's real exposition format.

- vLLM: the whole reference exposition of a vLLM 0.33 V1 server (`_VLLM_REFERENCE`, the
  file /work/shared/reference/vllm-0.33-v1-engine.metrics.txt verbatim, ~600 lines) is
  the template. The samples gpuwork reads are rendered from the stats, the model name
  and the start time (`process_start_time_seconds`, every `_created`) are substituted,
  and every other sample is kept as it is. OpenMetrics is derived from the same lines
  the way prometheus_client writes it (counter families without `_total`, `_created`
  samples inside their family, `# EOF`).
- SGLang and trtllm-serve: prometheus_client in multiprocess mode (labels sorted, no
  `_created`, no process_* families; trtllm's gauges carry a `pid` label), with each
  engine's own families from its collector; the ones gpuwork does not read get values
  derived from the stats.
- TGI: the metrics-exporter-prometheus crate's text (counters without `_total`, integer
  counts, Rust float formatting, a blank line after each family), a subset of the
  router's families. TGI cannot serve OpenMetrics: `openmetrics` is ignored.

A field that is None is not served (the family keeps its HELP and TYPE lines, as
prometheus_client does for a labelled metric without children). Rendering is cheap:
vLLM's template is compiled once per format into one `str.format` call.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from exporter.model import Histogram, ModelStats

VLLM_REFERENCE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"

# The reference exposition, verbatim: tests/fixtures/engines/vllm-0.33-v1.metrics.txt.
_VLLM_REFERENCE = r"""
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
process_virtual_memory_bytes 2.9749248e+07
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.4428544e+07
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.79552220515e+09
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 0.13
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
process_open_fds 6.0
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
process_max_fds 20000.0
# HELP python_info Python platform information
# TYPE python_info gauge
python_info{implementation="CPython",major="3",minor="11",patchlevel="7",version="3.11.7"} 1.0
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 192.0
python_gc_objects_collected_total{generation="1"} 341.0
python_gc_objects_collected_total{generation="2"} 0.0
# HELP python_gc_objects_uncollectable_total Uncollectable objects found during GC
# TYPE python_gc_objects_uncollectable_total counter
python_gc_objects_uncollectable_total{generation="0"} 0.0
python_gc_objects_uncollectable_total{generation="1"} 0.0
python_gc_objects_uncollectable_total{generation="2"} 0.0
# HELP python_gc_collections_total Number of times this generation was collected
# TYPE python_gc_collections_total counter
python_gc_collections_total{generation="0"} 44.0
python_gc_collections_total{generation="1"} 3.0
python_gc_collections_total{generation="2"} 0.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 8.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
# HELP vllm:num_requests_waiting_by_reason Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.
# TYPE vllm:num_requests_waiting_by_reason gauge
vllm:num_requests_waiting_by_reason{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",reason="capacity"} 2.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",reason="deferred"} 0.0
# HELP vllm:engine_sleep_state Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.
# TYPE vllm:engine_sleep_state gauge
vllm:engine_sleep_state{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",sleep_state="awake"} 1.0
vllm:engine_sleep_state{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",sleep_state="weights_offloaded"} 0.0
vllm:engine_sleep_state{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",sleep_state="discard_all"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.3468
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 214975.0
# HELP vllm:prefix_cache_queries_created Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_created gauge
vllm:prefix_cache_queries_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058827636e+09
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 75054.0
# HELP vllm:prefix_cache_hits_created Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_created gauge
vllm:prefix_cache_hits_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058827784e+09
# HELP vllm:external_prefix_cache_queries_total External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.
# TYPE vllm:external_prefix_cache_queries_total counter
vllm:external_prefix_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:external_prefix_cache_queries_created External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.
# TYPE vllm:external_prefix_cache_queries_created gauge
vllm:external_prefix_cache_queries_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.795522205882789e+09
# HELP vllm:external_prefix_cache_hits_total External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.
# TYPE vllm:external_prefix_cache_hits_total counter
vllm:external_prefix_cache_hits_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:external_prefix_cache_hits_created External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.
# TYPE vllm:external_prefix_cache_hits_created gauge
vllm:external_prefix_cache_hits_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.795522205882802e+09
# HELP vllm:mm_cache_queries_total Multi-modal cache queries, in terms of number of queried items.
# TYPE vllm:mm_cache_queries_total counter
vllm:mm_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:mm_cache_queries_created Multi-modal cache queries, in terms of number of queried items.
# TYPE vllm:mm_cache_queries_created gauge
vllm:mm_cache_queries_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058828115e+09
# HELP vllm:mm_cache_hits_total Multi-modal cache hits, in terms of number of cached items.
# TYPE vllm:mm_cache_hits_total counter
vllm:mm_cache_hits_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:mm_cache_hits_created Multi-modal cache hits, in terms of number of cached items.
# TYPE vllm:mm_cache_hits_created gauge
vllm:mm_cache_hits_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.795522205882821e+09
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:num_preemptions_created Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_created gauge
vllm:num_preemptions_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058828301e+09
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 214975.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.795522205882615e+09
# HELP vllm:prompt_tokens_by_source_total Number of prompt tokens by source.
# TYPE vllm:prompt_tokens_by_source_total counter
vllm:prompt_tokens_by_source_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="local_compute"} 139921.0
vllm:prompt_tokens_by_source_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="local_cache_hit"} 75054.0
vllm:prompt_tokens_by_source_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="external_kv_transfer"} 0.0
# HELP vllm:prompt_tokens_by_source_created Number of prompt tokens by source.
# TYPE vllm:prompt_tokens_by_source_created gauge
vllm:prompt_tokens_by_source_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="local_compute"} 1.7955222058826444e+09
vllm:prompt_tokens_by_source_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="local_cache_hit"} 1.7955222058826542e+09
vllm:prompt_tokens_by_source_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="external_kv_transfer"} 1.795522205882664e+09
# HELP vllm:prompt_tokens_cached_total Number of cached prompt tokens (local + external).
# TYPE vllm:prompt_tokens_cached_total counter
vllm:prompt_tokens_cached_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 75054.0
# HELP vllm:prompt_tokens_cached_created Number of cached prompt tokens (local + external).
# TYPE vllm:prompt_tokens_cached_created gauge
vllm:prompt_tokens_cached_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058826733e+09
# HELP vllm:prompt_tokens_cached_by_source_total Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.
# TYPE vllm:prompt_tokens_cached_by_source_total counter
vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="device"} 75054.0
vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="host"} 0.0
vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="p2p"} 0.0
vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="disk"} 0.0
vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="external_unspecified"} 0.0
# HELP vllm:prompt_tokens_cached_by_source_created Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.
# TYPE vllm:prompt_tokens_cached_by_source_created gauge
vllm:prompt_tokens_cached_by_source_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="device"} 1.7955222058826833e+09
vllm:prompt_tokens_cached_by_source_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="host"} 1.7955222058826945e+09
vllm:prompt_tokens_cached_by_source_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="p2p"} 1.7955222058827047e+09
vllm:prompt_tokens_cached_by_source_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="disk"} 1.7955222058827128e+09
vllm:prompt_tokens_cached_by_source_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",source="external_unspecified"} 1.7955222058827207e+09
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 51123.0
# HELP vllm:generation_tokens_created Number of generation tokens processed.
# TYPE vllm:generation_tokens_created gauge
vllm:generation_tokens_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058826318e+09
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="meta-llama/Llama-3.1-8B-Instruct"} 131.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="meta-llama/Llama-3.1-8B-Instruct"} 9.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_success_total{engine="0",finished_reason="error",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_success_total{engine="0",finished_reason="repetition",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:request_success_created Count of successfully processed requests.
# TYPE vllm:request_success_created gauge
vllm:request_success_created{engine="0",finished_reason="stop",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058828409e+09
vllm:request_success_created{engine="0",finished_reason="length",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.79552220588285e+09
vllm:request_success_created{engine="0",finished_reason="abort",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058828588e+09
vllm:request_success_created{engine="0",finished_reason="error",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058828676e+09
vllm:request_success_created{engine="0",finished_reason="repetition",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058828762e+09
# HELP vllm:admission_rejections_total Number of admission attempts rejected by a queue limit, by reason.
# TYPE vllm:admission_rejections_total counter
vllm:admission_rejections_total{model_name="meta-llama/Llama-3.1-8B-Instruct",reason="max_num_queued_reqs"} 0.0
vllm:admission_rejections_total{model_name="meta-llama/Llama-3.1-8B-Instruct",reason="max_num_queued_tokens"} 0.0
# HELP vllm:admission_rejections_created Number of admission attempts rejected by a queue limit, by reason.
# TYPE vllm:admission_rejections_created gauge
vllm:admission_rejections_created{model_name="meta-llama/Llama-3.1-8B-Instruct",reason="max_num_queued_reqs"} 1.7955222058828933e+09
vllm:admission_rejections_created{model_name="meta-llama/Llama-3.1-8B-Instruct",reason="max_num_queued_tokens"} 1.795522205882902e+09
# HELP vllm:request_prompt_tokens Number of prefill tokens processed.
# TYPE vllm:request_prompt_tokens histogram
vllm:request_prompt_tokens_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_prompt_tokens_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_prompt_tokens_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_prompt_tokens_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_prompt_tokens_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_prompt_tokens_bucket{engine="0",le="50.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_prompt_tokens_bucket{engine="0",le="100.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:request_prompt_tokens_bucket{engine="0",le="200.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6.0
vllm:request_prompt_tokens_bucket{engine="0",le="500.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 22.0
vllm:request_prompt_tokens_bucket{engine="0",le="1000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 48.0
vllm:request_prompt_tokens_bucket{engine="0",le="2000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 88.0
vllm:request_prompt_tokens_bucket{engine="0",le="5000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prompt_tokens_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prompt_tokens_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prompt_tokens_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 214975.0
# HELP vllm:request_prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:request_prompt_tokens_created gauge
vllm:request_prompt_tokens_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058402097e+09
# HELP vllm:request_generation_tokens Number of generation tokens processed.
# TYPE vllm:request_generation_tokens histogram
vllm:request_generation_tokens_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_generation_tokens_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_generation_tokens_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_generation_tokens_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_generation_tokens_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_generation_tokens_bucket{engine="0",le="50.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
vllm:request_generation_tokens_bucket{engine="0",le="100.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 16.0
vllm:request_generation_tokens_bucket{engine="0",le="200.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 36.0
vllm:request_generation_tokens_bucket{engine="0",le="500.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 96.0
vllm:request_generation_tokens_bucket{engine="0",le="1000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_generation_tokens_bucket{engine="0",le="2000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_generation_tokens_bucket{engine="0",le="5000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_generation_tokens_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_generation_tokens_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_generation_tokens_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 51123.0
# HELP vllm:request_generation_tokens_created Number of generation tokens processed.
# TYPE vllm:request_generation_tokens_created gauge
vllm:request_generation_tokens_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.795522205840272e+09
# HELP vllm:iteration_tokens_total Histogram of number of tokens per engine_step.
# TYPE vllm:iteration_tokens_total histogram
vllm:iteration_tokens_total_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:iteration_tokens_total_bucket{engine="0",le="8.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 165.0
vllm:iteration_tokens_total_bucket{engine="0",le="16.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 308.0
vllm:iteration_tokens_total_bucket{engine="0",le="32.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 458.0
vllm:iteration_tokens_total_bucket{engine="0",le="64.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 606.0
vllm:iteration_tokens_total_bucket{engine="0",le="128.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 606.0
vllm:iteration_tokens_total_bucket{engine="0",le="256.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 606.0
vllm:iteration_tokens_total_bucket{engine="0",le="512.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 774.0
vllm:iteration_tokens_total_bucket{engine="0",le="1024.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 774.0
vllm:iteration_tokens_total_bucket{engine="0",le="2048.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 900.0
vllm:iteration_tokens_total_bucket{engine="0",le="4096.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 900.0
vllm:iteration_tokens_total_bucket{engine="0",le="8192.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 900.0
vllm:iteration_tokens_total_bucket{engine="0",le="16384.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 900.0
vllm:iteration_tokens_total_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 900.0
vllm:iteration_tokens_total_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 900.0
vllm:iteration_tokens_total_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 357192.0
# HELP vllm:iteration_tokens_total_created Histogram of number of tokens per engine_step.
# TYPE vllm:iteration_tokens_total_created gauge
vllm:iteration_tokens_total_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058785248e+09
# HELP vllm:request_max_num_generation_tokens Histogram of maximum number of requested generation tokens.
# TYPE vllm:request_max_num_generation_tokens histogram
vllm:request_max_num_generation_tokens_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="50.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="100.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 16.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="200.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 36.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="500.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 96.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="1000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="2000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="5000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_max_num_generation_tokens_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_max_num_generation_tokens_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_max_num_generation_tokens_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 51123.0
# HELP vllm:request_max_num_generation_tokens_created Histogram of maximum number of requested generation tokens.
# TYPE vllm:request_max_num_generation_tokens_created gauge
vllm:request_max_num_generation_tokens_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058404095e+09
# HELP vllm:request_params_n Histogram of the n request parameter.
# TYPE vllm:request_params_n histogram
vllm:request_params_n_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_n_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_n_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_n_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_n_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_n_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_n_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_n_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
# HELP vllm:request_params_n_created Histogram of the n request parameter.
# TYPE vllm:request_params_n_created gauge
vllm:request_params_n_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058404427e+09
# HELP vllm:request_params_max_tokens Histogram of the max_tokens request parameter.
# TYPE vllm:request_params_max_tokens histogram
vllm:request_params_max_tokens_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_params_max_tokens_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_params_max_tokens_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_params_max_tokens_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_params_max_tokens_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_params_max_tokens_bucket{engine="0",le="50.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_params_max_tokens_bucket{engine="0",le="100.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_params_max_tokens_bucket{engine="0",le="200.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_params_max_tokens_bucket{engine="0",le="500.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_params_max_tokens_bucket{engine="0",le="1000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_params_max_tokens_bucket{engine="0",le="2000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_max_tokens_bucket{engine="0",le="5000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_max_tokens_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_max_tokens_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_params_max_tokens_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 143360.0
# HELP vllm:request_params_max_tokens_created Histogram of the max_tokens request parameter.
# TYPE vllm:request_params_max_tokens_created gauge
vllm:request_params_max_tokens_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058404713e+09
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.005",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.01",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.02",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.04",model_name="meta-llama/Llama-3.1-8B-Instruct"} 11.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.06",model_name="meta-llama/Llama-3.1-8B-Instruct"} 17.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.08",model_name="meta-llama/Llama-3.1-8B-Instruct"} 22.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 30.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.25",model_name="meta-llama/Llama-3.1-8B-Instruct"} 96.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.75",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="2.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="7.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="40.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="80.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="160.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="640.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="2560.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 26.76893601608173
# HELP vllm:time_to_first_token_seconds_created Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds_created gauge
vllm:time_to_first_token_seconds_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058405466e+09
# HELP vllm:inter_token_latency_seconds Histogram of inter-token latency in seconds.
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.01",model_name="meta-llama/Llama-3.1-8B-Instruct"} 60.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.025",model_name="meta-llama/Llama-3.1-8B-Instruct"} 5111.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.05",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.075",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.15",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.2",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.3",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.4",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.75",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="2.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="7.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="40.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="80.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6885.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.53473267921993
# HELP vllm:inter_token_latency_seconds_created Histogram of inter-token latency in seconds.
# TYPE vllm:inter_token_latency_seconds_created gauge
vllm:inter_token_latency_seconds_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058406053e+09
# HELP vllm:request_time_per_output_token_seconds Histogram of time_per_output_token_seconds per request.
# TYPE vllm:request_time_per_output_token_seconds histogram
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.01",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.025",model_name="meta-llama/Llama-3.1-8B-Instruct"} 104.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.05",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.075",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.15",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.2",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.3",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.4",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.75",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="2.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="7.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="40.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="80.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_time_per_output_token_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.8569250604103296
# HELP vllm:request_time_per_output_token_seconds_created Histogram of time_per_output_token_seconds per request.
# TYPE vllm:request_time_per_output_token_seconds_created gauge
vllm:request_time_per_output_token_seconds_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058409138e+09
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.8",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="1.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 17.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="2.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 22.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 48.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 100.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="15.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 130.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="30.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="40.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="50.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="60.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="120.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="240.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="480.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="960.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="1920.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="7680.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1057.4103452699171
# HELP vllm:e2e_request_latency_seconds_created Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds_created gauge
vllm:e2e_request_latency_seconds_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.79552220584115e+09
# HELP vllm:request_queue_time_seconds Histogram of time spent in WAITING phase for request.
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{engine="0",le="0.3",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="0.8",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="1.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="2.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="15.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="30.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="40.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="50.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="60.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="120.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="240.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="480.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="960.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="1920.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="7680.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 14.181155071668389
# HELP vllm:request_queue_time_seconds_created Histogram of time spent in WAITING phase for request.
# TYPE vllm:request_queue_time_seconds_created gauge
vllm:request_queue_time_seconds_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058409624e+09
# HELP vllm:request_inference_time_seconds Histogram of time spent in RUNNING phase for request.
# TYPE vllm:request_inference_time_seconds histogram
vllm:request_inference_time_seconds_bucket{engine="0",le="0.3",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_inference_time_seconds_bucket{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
vllm:request_inference_time_seconds_bucket{engine="0",le="0.8",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
vllm:request_inference_time_seconds_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
vllm:request_inference_time_seconds_bucket{engine="0",le="1.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
vllm:request_inference_time_seconds_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 17.0
vllm:request_inference_time_seconds_bucket{engine="0",le="2.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 22.0
vllm:request_inference_time_seconds_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 48.0
vllm:request_inference_time_seconds_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 100.0
vllm:request_inference_time_seconds_bucket{engine="0",le="15.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 131.0
vllm:request_inference_time_seconds_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="30.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="40.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="50.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="60.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="120.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="240.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="480.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="960.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="1920.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="7680.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_inference_time_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1047.7446213995
# HELP vllm:request_inference_time_seconds_created Histogram of time spent in RUNNING phase for request.
# TYPE vllm:request_inference_time_seconds_created gauge
vllm:request_inference_time_seconds_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.795522205841103e+09
# HELP vllm:request_prefill_time_seconds Histogram of time spent in PREFILL phase for request.
# TYPE vllm:request_prefill_time_seconds histogram
vllm:request_prefill_time_seconds_bucket{engine="0",le="0.3",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="0.8",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="1.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="2.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="15.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="30.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="40.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="50.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="60.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="120.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="240.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="480.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="960.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="1920.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="7680.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_time_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 17.10321214566508
# HELP vllm:request_prefill_time_seconds_created Histogram of time spent in PREFILL phase for request.
# TYPE vllm:request_prefill_time_seconds_created gauge
vllm:request_prefill_time_seconds_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058410132e+09
# HELP vllm:request_decode_time_seconds Histogram of time spent in DECODE phase for request.
# TYPE vllm:request_decode_time_seconds histogram
vllm:request_decode_time_seconds_bucket{engine="0",le="0.3",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
vllm:request_decode_time_seconds_bucket{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
vllm:request_decode_time_seconds_bucket{engine="0",le="0.8",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
vllm:request_decode_time_seconds_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
vllm:request_decode_time_seconds_bucket{engine="0",le="1.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 14.0
vllm:request_decode_time_seconds_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 19.0
vllm:request_decode_time_seconds_bucket{engine="0",le="2.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 23.0
vllm:request_decode_time_seconds_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 49.0
vllm:request_decode_time_seconds_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 101.0
vllm:request_decode_time_seconds_bucket{engine="0",le="15.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 132.0
vllm:request_decode_time_seconds_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="30.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="40.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="50.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="60.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="120.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="240.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="480.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="960.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="1920.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="7680.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_decode_time_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1030.6414092538346
# HELP vllm:request_decode_time_seconds_created Histogram of time spent in DECODE phase for request.
# TYPE vllm:request_decode_time_seconds_created gauge
vllm:request_decode_time_seconds_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058410602e+09
# HELP vllm:request_num_preemptions Histogram of the number of times a request was preempted.
# TYPE vllm:request_num_preemptions histogram
vllm:request_num_preemptions_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_num_preemptions_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_num_preemptions_bucket{engine="0",le="3.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_num_preemptions_bucket{engine="0",le="4.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_num_preemptions_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_num_preemptions_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_num_preemptions_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_num_preemptions_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_num_preemptions_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_num_preemptions_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:request_num_preemptions_created Histogram of the number of times a request was preempted.
# TYPE vllm:request_num_preemptions_created gauge
vllm:request_num_preemptions_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058412056e+09
# HELP vllm:request_prefill_kv_computed_tokens Histogram of new KV tokens computed during prefill (excluding cached tokens).
# TYPE vllm:request_prefill_kv_computed_tokens histogram
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="2.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 8.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 21.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 35.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 47.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="50.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 47.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="100.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 50.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="200.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 53.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="500.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 64.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="1000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 80.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="2000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 105.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="5000.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_kv_computed_tokens_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_kv_computed_tokens_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0
vllm:request_prefill_kv_computed_tokens_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 139921.0
# HELP vllm:request_prefill_kv_computed_tokens_created Histogram of new KV tokens computed during prefill (excluding cached tokens).
# TYPE vllm:request_prefill_kv_computed_tokens_created gauge
vllm:request_prefill_kv_computed_tokens_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7955222058405037e+09
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.92",is_attention_free="False",kv_cache_memory_bytes="None",kv_offloading_backend="native",kv_offloading_size="None",num_cpu_blocks="None",num_gpu_blocks="29127",num_gpu_blocks_override="None",prefix_caching_hash_algo="sha256",sliding_window="None"} 1.0
# HELP http_requests_total Total number of requests by method, status and handler.
# TYPE http_requests_total counter
http_requests_total{handler="/v1/chat/completions",method="POST",status="2xx"} 140.0
http_requests_total{handler="/v1/models",method="GET",status="2xx"} 3.0
# HELP http_requests_created Total number of requests by method, status and handler.
# TYPE http_requests_created gauge
http_requests_created{handler="/v1/chat/completions",method="POST",status="2xx"} 1.7955222058829694e+09
http_requests_created{handler="/v1/models",method="GET",status="2xx"} 1.7955222058829792e+09
# HELP http_request_duration_highr_seconds Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. 
# TYPE http_request_duration_highr_seconds histogram
http_request_duration_highr_seconds_bucket{le="0.01"} 0.0
http_request_duration_highr_seconds_bucket{le="0.025"} 0.0
http_request_duration_highr_seconds_bucket{le="0.05"} 0.0
http_request_duration_highr_seconds_bucket{le="0.075"} 0.0
http_request_duration_highr_seconds_bucket{le="0.1"} 0.0
http_request_duration_highr_seconds_bucket{le="0.25"} 0.0
http_request_duration_highr_seconds_bucket{le="0.5"} 0.0
http_request_duration_highr_seconds_bucket{le="0.75"} 0.0
http_request_duration_highr_seconds_bucket{le="1.0"} 0.0
http_request_duration_highr_seconds_bucket{le="1.5"} 9.0
http_request_duration_highr_seconds_bucket{le="2.0"} 16.0
http_request_duration_highr_seconds_bucket{le="2.5"} 21.0
http_request_duration_highr_seconds_bucket{le="3.0"} 28.0
http_request_duration_highr_seconds_bucket{le="3.5"} 35.0
http_request_duration_highr_seconds_bucket{le="4.0"} 40.0
http_request_duration_highr_seconds_bucket{le="4.5"} 48.0
http_request_duration_highr_seconds_bucket{le="5.0"} 50.0
http_request_duration_highr_seconds_bucket{le="7.5"} 71.0
http_request_duration_highr_seconds_bucket{le="10.0"} 94.0
http_request_duration_highr_seconds_bucket{le="30.0"} 140.0
http_request_duration_highr_seconds_bucket{le="60.0"} 140.0
http_request_duration_highr_seconds_bucket{le="+Inf"} 140.0
http_request_duration_highr_seconds_count 140.0
http_request_duration_highr_seconds_sum 1012.8003779149684
# HELP http_request_duration_highr_seconds_created Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. 
# TYPE http_request_duration_highr_seconds_created gauge
http_request_duration_highr_seconds_created 1.7955222058829942e+09
# HELP http_request_duration_seconds Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. 
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{handler="/v1/chat/completions",le="0.1",method="POST"} 0.0
http_request_duration_seconds_bucket{handler="/v1/chat/completions",le="0.5",method="POST"} 0.0
http_request_duration_seconds_bucket{handler="/v1/chat/completions",le="1.0",method="POST"} 0.0
http_request_duration_seconds_bucket{handler="/v1/chat/completions",le="+Inf",method="POST"} 140.0
http_request_duration_seconds_count{handler="/v1/chat/completions",method="POST"} 140.0
http_request_duration_seconds_sum{handler="/v1/chat/completions",method="POST"} 1012.8003779149684
# HELP http_request_duration_seconds_created Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. 
# TYPE http_request_duration_seconds_created gauge
http_request_duration_seconds_created{handler="/v1/chat/completions",method="POST"} 1.7955222058831217e+09
"""[1:]  # noqa: E501, W291


def render_exposition(
    engine: str, stats: ModelStats, *, process_start_time: float, openmetrics: bool = False
) -> bytes:
    """The body `engine` would serve for `stats`, its process started at
    `process_start_time` (unix seconds)."""
    render = _RENDERERS.get(engine)
    if render is None:
        raise ValueError(f"no renderer for engine {engine!r}")
    return render(stats, process_start_time, openmetrics).encode()


# ---------------------------------------------------------------- formatting helpers


def _escape(value: str) -> str:
    """A label value as the text format writes it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _go(value: float) -> str:
    """A value as prometheus_client writes it (Go's float formatting)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _rust(value: float) -> str:
    """An f64 as Rust's `Display` writes it: integral values without a fraction."""
    if value == math.inf:
        return "inf"
    if math.isfinite(value) and value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return f"{{{inner}}}" if inner else ""


# ---------------------------------------------------------------------------- vLLM

_SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

# Sample name -> the ModelStats field it shows, for the samples rendered from the stats.
_VLLM_SCALARS = {
    "vllm:num_requests_running": "requests_running",
    "vllm:num_requests_waiting": "requests_waiting",
    "vllm:kv_cache_usage_perc": "kv_cache_usage_ratio",
    "vllm:num_preemptions_total": "preemptions",
    "vllm:prompt_tokens_total": "prompt_tokens",
    "vllm:generation_tokens_total": "generation_tokens",
    "vllm:request_success_total": "requests_finished",  # all of it as finished_reason="stop"
}
_VLLM_HISTOGRAMS = {
    "vllm:time_to_first_token_seconds": "time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds": "inter_token_latency_seconds",
}
# `_created` sample -> the field whose presence it follows
_VLLM_CREATED = {
    **{name.removesuffix("_total") + "_created": field for name, field in _VLLM_SCALARS.items()},
    **{name + "_created": field for name, field in _VLLM_HISTOGRAMS.items()},
}
_LE = "\x00"  # where a bucket's `le` goes in a line prefix


@dataclass(frozen=True, slots=True)
class _Line:
    """A reference sample line whose value or presence changes."""

    name: str
    labels: tuple[tuple[str, str], ...]  # as in the reference

    def prefix(self, model: str) -> str:
        """The line up to its value, with this (escaped) model name and `le` as `_LE`."""
        pairs = ",".join(
            f'{k}="{model if k == "model_name" else _LE if k == "le" else v}"'
            for k, v in self.labels
        )
        return f"{self.name}{{{pairs}}} " if pairs else f"{self.name} "


@dataclass(frozen=True, slots=True)
class _Scalar:
    line: _Line
    field: str
    share: bool  # False: a series that stays 0 (request_success of other reasons)


@dataclass(frozen=True, slots=True)
class _Created:
    line: _Line
    field: str | None  # served only while this field is
    offset: float  # after the process start, as in the reference


@dataclass(frozen=True, slots=True)
class _Buckets:
    bucket: _Line  # the family's first bucket line
    field: str


_Item = str | _Line | _Scalar | _Created | _Buckets  # a _Line alone: the start time
# One part of a body that follows the stats, rendered from them.
_Slot = Callable[[ModelStats], str]


@functools.cache
def _vllm_items(openmetrics: bool) -> tuple[_Item, ...]:
    """The reference exposition as static text and the samples that change."""
    lines = _VLLM_REFERENCE.splitlines()
    types = {}
    start = 0.0
    for line in lines:
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            types[family] = kind
        elif line.startswith("process_start_time_seconds "):
            start = float(line.split(" ")[1])
    # OpenMetrics puts each series' `_created` right after the series' other samples:
    # every sample goes into a group, keyed by its series, that its `_created` joins.
    groups: list[list[_Item]] = []
    series: dict[tuple[str, tuple[tuple[str, str], ...]], list[_Item]] = {}
    skipping: str | None = None  # a histogram whose samples a `_Buckets` renders
    for line in lines:
        if line.startswith("#"):
            _, keyword, family, *rest = line.split(" ", 3)
            if openmetrics:
                if family.endswith("_created") and types.get(family) == "gauge":
                    continue  # OpenMetrics: `_created` is a sample of its family
                if types.get(family) == "counter":
                    line = " ".join(["#", keyword, family.removesuffix("_total"), *rest])
            groups.append([line + "\n"])
            continue
        match = _SAMPLE_LINE.match(line)
        if match is None:
            groups.append([line + "\n"])
            continue
        name, labels, value = match.groups()
        if skipping is not None and name in (
            f"{skipping}_bucket",
            f"{skipping}_count",
            f"{skipping}_sum",
        ):
            continue
        skipping = None
        sample = _Line(name, tuple(_PAIR.findall(labels or "")))
        base = name.removesuffix("_bucket")
        item: _Item
        if name == "process_start_time_seconds":
            item = sample
        elif name in _VLLM_SCALARS:
            share = name != "vllm:request_success_total" or ("finished_reason", "stop") in (
                sample.labels
            )
            item = _Scalar(sample, _VLLM_SCALARS[name], share)
        elif name.endswith("_bucket") and base in _VLLM_HISTOGRAMS:
            item = _Buckets(sample, _VLLM_HISTOGRAMS[base])
            skipping = base
        elif name.endswith("_created"):
            item = _Created(sample, _VLLM_CREATED.get(name), float(value) - start)
        else:
            item = line + "\n"
        key = (_family(name), tuple(p for p in sample.labels if p[0] != "le"))
        if openmetrics and name.endswith("_created") and key in series:
            series[key].append(item)
            continue
        group = [item]
        groups.append(group)
        series[key] = group
    items = [item for group in groups for item in group]
    if openmetrics:
        items.append("# EOF\n")
    return tuple(items)


def _family(name: str) -> str:
    """The family a sample belongs to, as OpenMetrics names it."""
    for suffix in ("_total", "_created", "_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


@functools.lru_cache(maxsize=128)
def _vllm_body(
    openmetrics: bool, model: str, start: float
) -> tuple[tuple[str, ...], tuple[_Slot, ...]]:
    """One engine process's body as text chunks between the slots that follow its stats:
    chunks[0] + slots[0](stats) + chunks[1] + ... (cached per process: model, start)."""
    reference_model = f'model_name="{VLLM_REFERENCE_MODEL}"'
    our_model = f'model_name="{model}"'
    chunks: list[str] = []
    slots: list[_Slot] = []
    text: list[str] = []
    for item in _vllm_items(openmetrics):
        if isinstance(item, str):
            text.append(item.replace(reference_model, our_model))
            continue
        if isinstance(item, _Line):
            text.append(f"{item.prefix(model)}{_go(start)}\n")
            continue
        if isinstance(item, _Created) and item.field is None:
            text.append(f"{item.line.prefix(model)}{_go(start + item.offset)}\n")
            continue
        chunks.append("".join(text))
        text = []
        slots.append(_vllm_slot(item, model, start))
    chunks.append("".join(text))
    return tuple(chunks), tuple(slots)


def _vllm_slot(item: _Scalar | _Created | _Buckets, model: str, start: float) -> _Slot:
    if isinstance(item, _Created):
        line = f"{item.line.prefix(model)}{_go(start + item.offset)}\n"
        follows = str(item.field)  # a `_Created` without a field is static text
        return lambda stats: "" if getattr(stats, follows) is None else line
    if isinstance(item, _Scalar):
        prefix, field, share = item.line.prefix(model), item.field, item.share
        zero = f"{prefix}0.0\n"

        def scalar(stats: ModelStats) -> str:
            value = getattr(stats, field)
            if value is None:
                return ""
            return f"{prefix}{_go(value)}\n" if share else zero

        return scalar
    head, _, tail = item.bucket.prefix(model).partition(_LE)
    base = item.bucket.name.removesuffix("_bucket")
    series = _Line(base, tuple(p for p in item.bucket.labels if p[0] != "le"))
    count_prefix = series.prefix(model).replace(base, f"{base}_count", 1)
    sum_prefix = series.prefix(model).replace(base, f"{base}_sum", 1)
    field = item.field

    def buckets(stats: ModelStats) -> str:
        histogram: Histogram | None = getattr(stats, field)
        if histogram is None:
            return ""
        lines = [f"{head}{_go(le)}{tail}{_go(n)}\n" for le, n in histogram.buckets]
        lines.append(f"{count_prefix}{_go(histogram.count)}\n{sum_prefix}{_go(histogram.sum)}\n")
        return "".join(lines)

    return buckets


def _vllm(stats: ModelStats, start: float, openmetrics: bool) -> str:
    chunks, slots = _vllm_body(openmetrics, _escape(stats.model), start)
    parts = [chunks[0]]
    for slot, chunk in zip(slots, chunks[1:], strict=True):
        parts.append(slot(stats))
        parts.append(chunk)
    return "".join(parts)


# ------------------------------------------------- prometheus_client, multiprocess mode


@functools.lru_cache(maxsize=2048)
def _sorted_labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return _labels(sorted(pairs))


@functools.lru_cache(maxsize=1024)
def _bucket_heads(
    name: str, pairs: tuple[tuple[str, str], ...], bounds: tuple[float, ...]
) -> tuple[str, ...]:
    """Each bucket line up to its count, labels sorted with `le` among them."""
    return tuple(f"{name}_bucket{_sorted_labels((*pairs, ('le', _go(le))))} " for le in bounds)


class _Writer:
    """Families as prometheus_client's MultiProcessCollector writes them: labels sorted,
    a histogram's `_sum` before its buckets, no `_created`."""

    def __init__(self, openmetrics: bool) -> None:
        self.openmetrics = openmetrics
        self.parts: list[str] = []

    def _head(self, family: str, kind: str, help_text: str) -> None:
        self.parts.append(f"# HELP {family} {help_text}\n# TYPE {family} {kind}\n")

    def _sample(self, name: str, labels: dict[str, str], value: float) -> None:
        self.parts.append(f"{name}{_sorted_labels(tuple(labels.items()))} {_go(value)}\n")

    def counter(
        self, name: str, help_text: str, series: Sequence[tuple[dict[str, str], float | None]]
    ) -> None:
        """`name` without `_total`."""
        self._head(name if self.openmetrics else f"{name}_total", "counter", help_text)
        for labels, value in series:
            if value is not None:
                self._sample(f"{name}_total", labels, value)

    def gauge(
        self, name: str, help_text: str, series: Sequence[tuple[dict[str, str], float | None]]
    ) -> None:
        self._head(name, "gauge", help_text)
        for labels, value in series:
            if value is not None:
                self._sample(name, labels, value)

    def histogram(
        self, name: str, help_text: str, series: Sequence[tuple[dict[str, str], Histogram | None]]
    ) -> None:
        self._head(name, "histogram", help_text)
        for labels, histogram in series:
            if histogram is None:
                continue
            pairs = tuple(labels.items())
            bounds = tuple(le for le, _ in histogram.buckets)
            self._sample(f"{name}_sum", labels, histogram.sum)
            heads = _bucket_heads(name, pairs, bounds)
            self.parts.extend(
                f"{head}{_go(n)}\n" for head, (_, n) in zip(heads, histogram.buckets, strict=True)
            )
            self._sample(f"{name}_count", labels, histogram.count)

    def text(self) -> str:
        if self.openmetrics:
            self.parts.append("# EOF\n")
        return "".join(self.parts)


def _spread(bounds: Sequence[float], count: float, mean: float) -> Histogram:
    """A plausible histogram of `count` observations around `mean`: a quarter at or
    below half the mean, the rest at or below twice it."""
    low = bisect.bisect_left(bounds, mean / 2)
    high = bisect.bisect_left(bounds, 2 * mean)
    counts = [0.0] * low + [float(math.floor(count / 4))] * (high - low)
    counts += [count] * (len(bounds) - high)
    buckets = (*zip(bounds, counts, strict=True), (math.inf, count))
    return Histogram(buckets=buckets, count=count, sum=count * mean)


def _total(*values: float | None) -> float:
    return sum(v for v in values if v is not None)


# SGLang: python/sglang/srt/metrics/collector.py (TokenizerMetricsCollector: prompt,
# generation, cached tokens, requests, TTFT, ITL, e2e; SchedulerMetricsCollector: the
# gauges and the retraction counter), labels from tokenizer_manager.py and the scheduler.
_SGLANG_E2E_BUCKETS = (
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0,
    200.0, 400.0, 600.0, 1200.0, 1800.0, 2400.0,
)  # fmt: skip
_SGLANG_MAX_TOTAL_TOKENS = 487_000.0


def _sglang(stats: ModelStats, start: float, openmetrics: bool) -> str:
    tokenizer = {"engine_type": "unified", "model_name": stats.model}
    scheduler = {**tokenizer, "moe_ep_rank": "0", "pp_rank": "0", "tp_rank": "0"}
    finished = stats.requests_finished
    running = stats.requests_running or 0.0
    usage = stats.kv_cache_usage_ratio or 0.0
    w = _Writer(openmetrics)
    w.counter(
        "sglang:prompt_tokens",
        "Number of prefill tokens processed.",
        [(tokenizer, stats.prompt_tokens)],
    )
    w.counter(
        "sglang:generation_tokens",
        "Number of generation tokens processed.",
        [(tokenizer, stats.generation_tokens)],
    )
    w.counter(
        "sglang:cached_tokens",
        "Number of cached prompt tokens.",
        [(tokenizer, math.floor(_total(stats.prompt_tokens) * 0.3))],
    )
    w.counter("sglang:num_requests", "Number of requests processed.", [(tokenizer, finished)])
    w.counter(
        "sglang:num_so_requests",
        "Number of structured output requests processed.",
        [(tokenizer, 0.0)],
    )
    w.counter("sglang:num_aborted_requests", "Number of requests aborted.", [(tokenizer, 0.0)])
    w.histogram(
        "sglang:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        [(tokenizer, stats.time_to_first_token_seconds)],
    )
    w.histogram(
        "sglang:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        [(tokenizer, stats.inter_token_latency_seconds)],
    )
    w.histogram(
        "sglang:e2e_request_latency_seconds",
        "Histogram of End-to-end request latency in seconds",
        [(tokenizer, _spread(_SGLANG_E2E_BUCKETS, math.floor(_total(finished)), 6.0))],
    )
    w.gauge(
        "sglang:num_running_reqs",
        "The number of running requests.",
        [(scheduler, stats.requests_running)],
    )
    w.gauge(
        "sglang:num_used_tokens",
        "The number of used tokens.",
        [(scheduler, float(round(usage * _SGLANG_MAX_TOTAL_TOKENS)))],
    )
    w.gauge("sglang:token_usage", "The token usage.", [(scheduler, stats.kv_cache_usage_ratio)])
    w.gauge(
        "sglang:gen_throughput",
        "The generation throughput (token/s).",
        [(scheduler, running * 31.5)],
    )
    w.gauge(
        "sglang:num_queue_reqs",
        "The number of requests in the waiting queue.",
        [(scheduler, stats.requests_waiting)],
    )
    w.gauge(
        "sglang:num_grammar_queue_reqs",
        "The number of requests in the grammar waiting queue.",
        [(scheduler, 0.0)],
    )
    w.gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", [(scheduler, 0.3)])
    w.gauge(
        "sglang:max_total_num_tokens",
        "Maximum total number of tokens in the KV cache pool.",
        [(scheduler, _SGLANG_MAX_TOTAL_TOKENS)],
    )
    w.gauge("sglang:num_retracted_reqs", "The number of retracted requests.", [(scheduler, 0.0)])
    w.counter(
        "sglang:num_retracted_requests",
        "Total number of retracted requests.",
        [(scheduler, stats.preemptions)],
    )
    w.gauge("sglang:utilization", "The utilization.", [(scheduler, min(running / 64, 1.0))])
    w.gauge(
        "sglang:engine_startup_time",
        "The time taken for the engine to start up.",
        [(scheduler, 41.7)],
    )
    w.gauge("sglang:is_cuda_graph", "Whether the batch is using CUDA graph.", [(scheduler, 1.0)])
    return w.text()


# trtllm-serve: tensorrt_llm/metrics/collector.py (MetricsCollector); labels
# model_name="undefined", engine_type="undefined" (tensorrt_llm/serve/openai_server.py).
_TRTLLM_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
_TRTLLM_PID = "1"  # trtllm-serve as the container's first process
_TRTLLM_MAX_BLOCKS = 30_000.0


def _trtllm(stats: ModelStats, start: float, openmetrics: bool) -> str:
    labels = {"engine_type": "undefined", "model_name": "undefined"}
    per_pid = {**labels, "pid": _TRTLLM_PID}  # gauges in multiprocess "all" mode
    finished = stats.requests_finished
    usage = stats.kv_cache_usage_ratio
    count = math.floor(_total(finished))
    w = _Writer(openmetrics)
    w.counter(
        "trtllm_request_success",
        "Count of successfully processed requests.",
        [
            ({**labels, "finished_reason": "stop"}, finished),
            ({**labels, "finished_reason": "length"}, None if finished is None else 0.0),
        ],
    )
    w.histogram(
        "trtllm_e2e_request_latency_seconds",
        "Histogram of end to end request latency in seconds.",
        [(labels, _spread(_TRTLLM_LATENCY_BUCKETS, count, 6.0))],
    )
    w.histogram(
        "trtllm_time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        [(labels, stats.time_to_first_token_seconds)],
    )
    w.histogram(
        "trtllm_time_per_output_token_seconds",
        "Histogram of time per output token in seconds.",
        [(labels, stats.inter_token_latency_seconds)],
    )
    w.histogram(
        "trtllm_request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        [(labels, _spread(_TRTLLM_LATENCY_BUCKETS, count, 0.4))],
    )
    w.counter(
        "trtllm_prompt_tokens",
        "Cumulative number of prompt (input) tokens processed.",
        [(labels, stats.prompt_tokens)],
    )
    w.counter(
        "trtllm_generation_tokens",
        "Cumulative number of generation (output) tokens produced.",
        [(labels, stats.generation_tokens)],
    )
    w.gauge("trtllm_kv_cache_hit_rate", "KV cache hit rate", [(per_pid, 0.25)])
    w.gauge("trtllm_kv_cache_utilization", "KV cache utilization", [(per_pid, usage)])
    w.gauge(
        "trtllm_num_requests_running",
        "Number of active requests",
        [(per_pid, stats.requests_running)],
    )
    w.gauge(
        "trtllm_num_requests_waiting",
        "Number of queued requests",
        [(per_pid, stats.requests_waiting)],
    )
    w.counter(
        "trtllm_num_requests_completed",
        "Total number of completed requests across iterations",
        [(labels, finished)],
    )
    w.gauge(
        "trtllm_max_num_active_requests", "Maximum number of active requests", [(per_pid, 2048.0)]
    )
    w.gauge(
        "trtllm_kv_cache_max_blocks",
        "Maximum number of KV cache blocks",
        [(per_pid, _TRTLLM_MAX_BLOCKS)],
    )
    w.gauge(
        "trtllm_kv_cache_used_blocks",
        "Number of used KV cache blocks",
        [(per_pid, float(round((usage or 0.0) * _TRTLLM_MAX_BLOCKS)))],
    )
    return w.text()


# --------------------------------------------------------------------------------- TGI

# router/src/server.rs: the duration buckets (35, geometric from 0.0001 * 1.5), the
# token-count buckets (100, multiples of max_input_tokens / 100 and max_total_tokens / 100);
# the launcher's defaults: max_input_tokens 4095, max_total_tokens 4096.
_TGI_DURATION_BUCKETS = tuple(0.0001 * 1.5**i for i in range(1, 36))
_TGI_INPUT_BUCKETS = tuple((4095 / 100) * (i + 1) for i in range(100))
_TGI_TOTAL_BUCKETS = tuple((4096 / 100) * (i + 1) for i in range(100))
_TGI_HELP = {
    "tgi_request_success": "Number of successful requests",
    "tgi_request_count": "Total number of requests",
    "tgi_queue_size": "Current queue size",
    "tgi_batch_current_size": "Current batch size",
    "tgi_batch_current_max_tokens": "Maximum tokens for the current batch",
    "tgi_request_input_length": "Input token length per request",
    "tgi_request_generated_tokens": "Generated tokens per request",
    "tgi_request_max_new_tokens": "Maximum new tokens per request",
    "tgi_request_duration": "Total time spent processing the request",
    "tgi_request_queue_duration": "Time spent in the queue per request",
    "tgi_request_mean_time_per_token_duration": "Mean time per token per request",
}


@functools.lru_cache(maxsize=256)
def _rust_bucket_heads(name: str, bounds: tuple[float, ...]) -> tuple[str, ...]:
    return tuple(
        f'{name}_bucket{{le="{"+Inf" if le == math.inf else _rust(le)}"}} ' for le in bounds
    )


class _RustWriter:
    """Families as the metrics-exporter-prometheus crate writes them."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def _head(self, name: str, kind: str) -> None:
        help_text = _TGI_HELP.get(name)
        if help_text is not None:
            self.parts.append(f"# HELP {name} {help_text}\n")
        self.parts.append(f"# TYPE {name} {kind}\n")

    def scalar(self, name: str, kind: str, value: float | None) -> None:
        if value is None:
            return
        self._head(name, kind)
        shown = str(math.floor(value)) if kind == "counter" else _rust(value)
        self.parts.append(f"{name} {shown}\n\n")

    def histogram(self, name: str, histogram: Histogram | None) -> None:
        if histogram is None:
            return
        self._head(name, "histogram")
        heads = _rust_bucket_heads(name, tuple(le for le, _ in histogram.buckets))
        self.parts.extend(
            f"{head}{math.floor(n)}\n"
            for head, (_, n) in zip(heads, histogram.buckets, strict=True)
        )
        self.parts.append(f"{name}_sum {_rust(histogram.sum)}\n")
        self.parts.append(f"{name}_count {math.floor(histogram.count)}\n\n")

    def text(self) -> str:
        return "".join(self.parts)


def _tgi(stats: ModelStats, start: float, openmetrics: bool) -> str:
    finished = math.floor(_total(stats.requests_finished))
    seen = finished + math.floor(_total(stats.requests_running, stats.requests_waiting))
    w = _RustWriter()
    w.scalar("tgi_request_count", "counter", float(seen))
    w.scalar("tgi_request_success", "counter", stats.requests_finished)
    w.scalar("tgi_queue_size", "gauge", stats.requests_waiting)
    w.scalar("tgi_batch_current_size", "gauge", stats.requests_running)
    w.scalar("tgi_batch_current_max_tokens", "gauge", _total(stats.requests_running) * 1024)
    w.scalar("tgi_batch_max_total_tokens", "gauge", 65536.0)
    if stats.prompt_tokens is not None:
        mean = stats.prompt_tokens / seen if seen else 0.0
        shape = _spread(_TGI_INPUT_BUCKETS, float(seen), mean)
        w.histogram("tgi_request_input_length", _with_sum(shape, stats.prompt_tokens))
    if stats.generation_tokens is not None:
        mean = stats.generation_tokens / finished if finished else 0.0
        shape = _spread(_TGI_TOTAL_BUCKETS, float(finished), mean)
        w.histogram("tgi_request_generated_tokens", _with_sum(shape, stats.generation_tokens))
    w.histogram("tgi_request_max_new_tokens", _spread(_TGI_TOTAL_BUCKETS, float(seen), 512.0))
    w.histogram("tgi_request_duration", _spread(_TGI_DURATION_BUCKETS, float(finished), 6.0))
    w.histogram("tgi_request_queue_duration", _spread(_TGI_DURATION_BUCKETS, float(finished), 0.2))
    w.histogram("tgi_request_mean_time_per_token_duration", stats.inter_token_latency_seconds)
    return w.text()


def _with_sum(histogram: Histogram, total: float) -> Histogram:
    return Histogram(buckets=histogram.buckets, count=histogram.count, sum=total)


_RENDERERS: dict[str, Callable[[ModelStats, float, bool], str]] = {
    "vllm": _vllm,
    "sglang": _sglang,
    "tgi": _tgi,
    "trtllm": _trtllm,
}

__all__ = ["VLLM_REFERENCE_MODEL", "render_exposition"]
