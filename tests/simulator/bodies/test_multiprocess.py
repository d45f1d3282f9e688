"""SGLang's and trtllm-serve's bodies: prometheus_client's multiprocess mode, its files
rewritten in place and removed with the exposition."""

from __future__ import annotations

import dataclasses
import os
import re

from simulator.bodies.exposition import EngineExposition, render_exposition
from tests.support.engine_stats import STATS


def test_multiprocess_engines_look_like_multiprocess_mode() -> None:
    sglang = render_exposition("sglang", STATS, process_start_time=1.7e9).decode()
    trtllm = render_exposition("trtllm", STATS, process_start_time=1.7e9).decode()
    for body in (sglang, trtllm):
        assert "_created" not in body and "process_" not in body and "python_" not in body
        for labels in re.findall(r"\{([^}]*)\}", body):  # sorted
            names = [pair.split("=")[0] for pair in labels.split(",")]
            assert names == sorted(names)
    assert 'sglang:num_running_reqs{engine_type="unified",model_name="acme/llama-\\"70b\\"",' \
        'moe_ep_rank="0",pp_rank="0",tp_rank="0"} 3.0' in sglang  # fmt: skip
    assert 'pid="' not in sglang  # SGLang's gauges: mode mostrecent
    assert ('trtllm_num_requests_running{engine_type="undefined",model_name="undefined",'
            'pid="1"} 3.0') in trtllm  # fmt: skip
    # histograms are re-accumulated from per-bucket counts: `_sum` first, `_count` last
    ttft = [line for line in sglang.splitlines() if "time_to_first_token" in line]
    assert [line.split("{")[0] for line in ttft[2:]] == [
        "sglang:time_to_first_token_seconds_sum",
        *["sglang:time_to_first_token_seconds_bucket"] * 3,
        "sglang:time_to_first_token_seconds_count",
    ]
    assert [float(line.rsplit(" ", 1)[1]) for line in ttft[3:]] == [10.0, 40.0, 42.0, 42.0]


def test_multiprocess_files_are_rewritten_in_place_and_removed() -> None:
    exposition = EngineExposition("sglang")
    files = exposition._files
    assert files is not None
    path = files._dir.name
    exposition.render(STATS, process_start_time=1.0)
    first = sorted(os.listdir(path))
    assert first == ["counter_1.db", "counter_97.db", "gauge_mostrecent_97.db", "histogram_1.db"]
    inodes = {name: os.stat(os.path.join(path, name)).st_ino for name in first}
    body = exposition.render(dataclasses.replace(STATS, prompt_tokens=1300.0), process_start_time=1)
    assert b"sglang:prompt_tokens_total" in body and b"} 1300.0\n" in body
    assert {name: os.stat(os.path.join(path, name)).st_ino for name in first} == inodes
    # other series: written anew, the old ones gone
    body = exposition.render(dataclasses.replace(STATS, model="other"), process_start_time=1)
    assert b"acme" not in body and b'model_name="other"' in body
    exposition.close()
    assert not os.path.exists(path)
