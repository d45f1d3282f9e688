"""llama.cpp's `/metrics` body (`llama-server --metrics`, port 8080), written by hand as
the server writes it.

Followed revision: llama.cpp `tools/server/server-context.cpp` (`handle_metrics`) of late
2025, after server.cpp was split, which has `n_tokens_max`. The server builds a JSON
object `{"counter": [...], "gauge": [...]}` (nlohmann::json keeps keys sorted: counters
first), then per metric writes `# HELP llamacpp:<name> <help>`, `# TYPE llamacpp:<name>
<type>` and `llamacpp:<name> <value>`: no labels, no blank lines, no model name, no
process start time in the body (that goes in a `Process-Start-Time-Unix` header, which
this simulator does not send). A counter's name already ends in `_total` where it does;
`n_busy_slots_per_decode` is written as a counter. Each value is a double written by a
default `std::stringstream`: precision 6 in the default float format, i.e. C's `%g`, so a
large counter moves in steps (`1.23457e+06`). Token counts and the process times in
milliseconds are cast to uint64 first; the seconds are those milliseconds / 1e3.

llama.cpp serves no finished-request counter, KV-cache ratio or latency histogram.
"""

from __future__ import annotations

import math
import struct

from exporter.model import ModelStats
from simulator.bodies.tgi import total

LLAMACPP_CONTENT_TYPE = "text/plain; version=0.0.4"  # set by handle_metrics

# The simulated server's speeds: prompt processing and generation per slot, tokens/s.
PROMPT_TOKENS_PER_SECOND = 4000.0
GENERATION_TOKENS_PER_SECOND = 45.0
BUSY_SLOTS_PER_DECODE = 4.0  # generation tokens per llama_decode() call
N_BATCH = 2048  # --batch-size default: prompt tokens per llama_decode() call at most


def cg(value: float) -> str:
    """A double as a default `std::ostream` writes it: C's `%g` (6 significant digits)."""
    return f"{value:g}"


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def llamacpp(stats: ModelStats) -> str:
    """The body of a llama.cpp server that has served `stats`."""
    prompt = float(math.floor(total(stats.prompt_tokens)))
    generated = float(math.floor(total(stats.generation_tokens)))
    prompt_ms = math.floor(prompt / PROMPT_TOKENS_PER_SECOND * 1e3)
    generation_ms = math.floor(generated / GENERATION_TOKENS_PER_SECOND * 1e3)
    prompt_decodes = math.ceil(prompt / N_BATCH)
    decodes = math.ceil(generated / BUSY_SLOTS_PER_DECODE) + prompt_decodes
    busy = generated + prompt_decodes  # slots busy, summed over the decode calls
    metrics = (
        ("prompt_tokens_total", "Number of prompt tokens processed.", "counter", prompt),
        ("prompt_seconds_total", "Prompt process time", "counter", prompt_ms / 1e3),
        (
            "tokens_predicted_total",
            "Number of generation tokens processed.",
            "counter",
            generated,
        ),
        ("tokens_predicted_seconds_total", "Predict process time", "counter", generation_ms / 1e3),
        ("n_decode_total", "Total number of llama_decode() calls", "counter", float(decodes)),
        ("n_tokens_max", "Largest observed n_tokens.", "counter", float(N_BATCH if prompt else 0)),
        (
            "n_busy_slots_per_decode",
            "Average number of busy slots per llama_decode() call",
            "counter",
            _float32(_float32(busy) / max(_float32(decodes), 1.0)),
        ),
        (
            "prompt_tokens_seconds",
            "Average prompt throughput in tokens/s.",
            "gauge",
            PROMPT_TOKENS_PER_SECOND if prompt else 0.0,
        ),
        (
            "predicted_tokens_seconds",
            "Average generation throughput in tokens/s.",
            "gauge",
            GENERATION_TOKENS_PER_SECOND if generated else 0.0,
        ),
        (
            "requests_processing",
            "Number of requests processing.",
            "gauge",
            float(math.floor(total(stats.requests_running))),
        ),
        (
            "requests_deferred",
            "Number of requests deferred.",
            "gauge",
            float(math.floor(total(stats.requests_waiting))),
        ),
    )
    return "".join(
        f"# HELP llamacpp:{name} {help_text}\n"
        f"# TYPE llamacpp:{name} {kind}\n"
        f"llamacpp:{name} {cg(value)}\n"
        for name, help_text, kind, value in metrics
    )


__all__ = [
    "BUSY_SLOTS_PER_DECODE",
    "GENERATION_TOKENS_PER_SECOND",
    "LLAMACPP_CONTENT_TYPE",
    "N_BATCH",
    "PROMPT_TOKENS_PER_SECOND",
    "cg",
    "llamacpp",
]
