"""Hostile bodies: `corrupt` turns a body that a simulated engine served into what a
broken or hostile engine sends (`BodyFault`)."""

from __future__ import annotations

import re

from simulator.bodies.exposition import HTML_ERROR_PAGE
from simulator.bodies.llamacpp import cg
from simulator.bodies.tgi import rust
from simulator.bodies.triton import cpp
from simulator.bodies.vllm import go
from simulator.scenario import BodyFault  # the scenario's word for a hostile body

# engine -> (the sample that shows prompt tokens, the one that shows generation tokens)
TOKEN_SAMPLES = {
    "vllm": ("vllm:prompt_tokens_total", "vllm:generation_tokens_total"),
    "sglang": ("sglang:prompt_tokens_total", "sglang:generation_tokens_total"),
    "trtllm": ("trtllm_prompt_tokens_total", "trtllm_generation_tokens_total"),
    "tgi": ("tgi_request_input_length_sum", "tgi_request_generated_tokens_sum"),
    "triton": ("nv_llm_input_token_len_sum", "nv_llm_output_token_len_sum"),
    "llamacpp": ("llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total"),
    "inhouse": ("inhouse_prompt_tokens_total", "inhouse_output_tokens_total"),
}
# engine -> how it writes a number (the others: prometheus_client's Go-like format)
_FORMATS = {"tgi": rust, "triton": cpp, "llamacpp": cg}
INVALID_UTF8 = b"\xff\xfe"
COUNTER_DIP_RATIO = 0.9
_PAIR = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def corrupt(body: bytes, fault: BodyFault, engine: str) -> bytes:
    """`body`, served by `engine`, as the fault makes it (text or OpenMetrics alike). A
    fault on a sample the body does not hold leaves the body as it is."""
    if engine not in TOKEN_SAMPLES:
        raise ValueError(f"no renderer for engine {engine!r}")
    prompt, generation = TOKEN_SAMPLES[engine]
    if fault is BodyFault.HTML_200:
        return HTML_ERROR_PAGE
    if fault is BodyFault.TRUNCATED:
        return _truncated(body)
    target = prompt if fault in (BodyFault.INVALID_UTF8, BodyFault.NEGATIVE_VALUE) else generation
    found = _find_sample(body, target)
    if found is None:
        return body
    start, end = found
    line = body[start:end]
    head, _, value_text = line.rpartition(b" ")
    value = float(value_text)
    if fault is BodyFault.INVALID_UTF8:
        return _invalid_utf8(body, start, end, target)
    if fault is BodyFault.DUPLICATE_SERIES:
        twin = _reordered(head) + b" " + _format(engine, 2 * value)
        return body[:end] + b"\n" + twin + body[end:]
    if fault is BodyFault.NAN_VALUE:
        new = b"NaN"
    elif fault is BodyFault.NEGATIVE_VALUE:
        new = _format(engine, -value if value > 0 else -5.0)
    else:  # COUNTER_DIP
        new = _format(engine, value * COUNTER_DIP_RATIO)
    return body[:start] + head + b" " + new + body[end:]


def _find_sample(body: bytes, name: str) -> tuple[int, int] | None:
    """(start, end) of the first sample line of `name`, its newline excluded; the name as
    written, or as OpenMetrics escapes it (`:` as `_`)."""
    for written in dict.fromkeys((name, name.replace(":", "_"))):
        for follow in (b"{", b" "):
            prefix = written.encode() + follow
            if body.startswith(prefix):
                start = 0
            else:
                at = body.find(b"\n" + prefix)
                if at < 0:
                    continue
                start = at + 1
            end = body.find(b"\n", start)
            return start, len(body) if end < 0 else end
    return None


def _format(engine: str, value: float) -> bytes:
    return _FORMATS.get(engine, go)(value).encode()


def _reordered(head: bytes) -> bytes:
    """A sample's name and labels with the labels in reverse order."""
    name, brace, rest = head.partition(b"{")
    if not brace:
        return head
    pairs = _PAIR.findall(rest)
    return name + b"{" + b",".join(k + b'="' + v + b'"' for k, v in reversed(pairs)) + b"}"


def _invalid_utf8(body: bytes, start: int, end: int, name: str) -> bytes:
    """The bytes in the middle of the line's model label value; a sample without one
    (TGI, llama.cpp) gets them in its family's HELP text instead."""
    line = body[start:end]
    for label in (b'model_name="', b'model="', b'served_model="'):
        at = line.find(label)
        if at >= 0:
            value_start = at + len(label)
            value_end = line.find(b'"', value_start)
            middle = start + (value_start + max(value_end, value_start)) // 2
            return body[:middle] + INVALID_UTF8 + body[middle:]
    family = name.removesuffix("_sum").encode()
    help_line = body.find(b"# HELP " + family + b" ")
    if help_line < 0:
        return body[:start] + INVALID_UTF8 + body[start:]
    middle = help_line + len(b"# HELP ") + len(family) + 1
    return body[:middle] + INVALID_UTF8 + body[middle:]


def _truncated(body: bytes) -> bytes:
    """The body cut in the middle of a line that starts in its second half (never the
    `# EOF` line, which is then gone too): no final newline."""
    half = len(body) // 2
    start = 0
    fallback: tuple[int, int] | None = None
    for line in body.split(b"\n"):
        end = start + len(line)
        if len(line) >= 2 and line != b"# EOF":
            if start >= half:
                return body[: start + len(line) // 2]
            fallback = (start, end)
        start = end + 1
    if fallback is None:
        return body[:half]
    return body[: fallback[0] + (fallback[1] - fallback[0]) // 2]


__all__ = ["COUNTER_DIP_RATIO", "INVALID_UTF8", "TOKEN_SAMPLES", "BodyFault", "corrupt"]
