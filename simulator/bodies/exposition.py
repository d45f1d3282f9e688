"""The simulated engines' `/metrics` API: what a simulated engine serves for a `ModelStats`
(`render_exposition`, `serve_exposition`, `EngineExposition`), produced the way the real
engine produces it.

vLLM, SGLang and trtllm-serve expose their metrics with prometheus_client, so here
prometheus_client writes their bodies and negotiates the format (`choose_encoder` on the
`Accept` header), exactly as in the engines' servers:

- vLLM (one API server process, V1 engine; `simulator.bodies.vllm`): a registry with one
  collector. The families gpuwork reads come from the stats; every other family of the
  reference exposition (`simulator/reference/vllm-0.33-v1.metrics.txt`: process_*,
  python_*, the other vllm: families, http_*) is read from that file with
  prometheus_client's own parser and served with the model name and the process start
  time of the stats (each `_created` keeps its offset after the start, as in the
  reference).
- SGLang and trtllm-serve run prometheus_client in multiprocess mode (SGLang always,
  trtllm-serve through `set_prometheus_multiproc_dir`; `simulator.bodies.multiprocess`):
  the values are written into the engine's own multiprocess directory as the library's
  `MmapedDict` files (`counter_<pid>.db`, `gauge_<mode>_<pid>.db`, `histogram_<pid>.db`)
  and read back by `MultiProcessCollector`. So: no `_created`, no process_* families,
  labels sorted, histograms re-accumulated from per-bucket counts, trtllm's gauges (mode
  `all`) with a `pid` label, SGLang's (mode `mostrecent`) without. The collector reads
  the files in name order (the library takes the directory's order) so that a body does
  not depend on the file system.
- TGI (`simulator.bodies.tgi`): the Rust metrics-exporter-prometheus crate's text,
  written here by hand (counters without `_total`, integer counts, Rust float formatting,
  a blank line after each family). It cannot serve OpenMetrics and ignores the `Accept`
  header.
- Triton Inference Server (`simulator.bodies.triton`): prometheus-cpp's text, written here
  by hand, for a TensorRT-LLM ensemble (`ensemble`, `preprocessing`, `tensorrt_llm`,
  `postprocessing`); `streaming` (on by default) makes `postprocessing` count one
  execution per generated token. Text only, whatever the `Accept` header says.
- llama.cpp's `llama-server --metrics` (`simulator.bodies.llamacpp`): its hand-written
  text, `llamacpp:` names without labels, values as C's `%g`. Text only.
- `inhouse` (`simulator.bodies.inhouse`): a team's own server, written by prometheus_client
  in names only a user catalog file describes (`simulator/catalogs/inhouse.yaml`).

A field that is None is not served: a prometheus_client family without children (vLLM
keeps its HELP and TYPE lines; a multiprocess family without any value is absent).

`simulator.bodies.faults.corrupt` turns a served body into what a broken or hostile
engine sends (`BodyFault`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter.model import ModelStats
from simulator.bodies.inhouse import inhouse
from simulator.bodies.llamacpp import LLAMACPP_CONTENT_TYPE, llamacpp
from simulator.bodies.multiprocess import MULTIPROCESS, MultiprocessFiles
from simulator.bodies.tgi import tgi
from simulator.bodies.triton import TRITON_CONTENT_TYPE, triton
from simulator.bodies.vllm import VllmCollector

ENGINE_NAMES = ("vllm", "sglang", "tgi", "trtllm", "triton", "llamacpp", "inhouse")
# Engines whose servers write their text by hand: no OpenMetrics, `Accept` ignored.
TEXT_ONLY_ENGINES = frozenset({"tgi", "triton", "llamacpp"})
TEXT_ACCEPT = "text/plain;version=0.0.4"
OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0"
TGI_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

HTML_ERROR_PAGE = b"""<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


def render_exposition(
    engine: str, stats: ModelStats, *, process_start_time: float, openmetrics: bool = False
) -> bytes:
    """The body `engine` serves for `stats`, its process started at `process_start_time`
    (unix seconds): to `Accept: text/plain;version=0.0.4`, or with `openmetrics` to
    `Accept: application/openmetrics-text;version=1.0.0` (`TEXT_ONLY_ENGINES`: text
    either way)."""
    accept = OPENMETRICS_ACCEPT if openmetrics else TEXT_ACCEPT
    return serve_exposition(engine, stats, process_start_time=process_start_time, accept=accept)[0]


def serve_exposition(
    engine: str, stats: ModelStats, *, process_start_time: float, accept: str
) -> tuple[bytes, str]:
    """(body, Content-Type) as `engine`'s server answers a request with this `Accept`."""
    return _shared(engine, stats.model).serve(
        stats, process_start_time=process_start_time, accept=accept
    )


class EngineExposition:
    """One simulated engine's `/metrics`: its registry, and for a multiprocess engine its
    own multiprocess directory, reused from one request to the next. `close()` removes the
    directory. Thread-safe. `streaming`: Triton's ensemble streams its tokens (decoupled)."""

    def __init__(self, engine: str, *, streaming: bool = True) -> None:
        if engine not in ENGINE_NAMES:
            raise ValueError(f"no renderer for engine {engine!r}")
        self.engine = engine
        self.streaming = streaming
        self._lock = threading.Lock()
        self._vllm: VllmCollector | None = None
        self._files: MultiprocessFiles | None = None
        self.registry = CollectorRegistry()
        if engine == "vllm":
            self._vllm = VllmCollector()
            self.registry.register(self._vllm)
        elif engine in MULTIPROCESS:
            self._files = MultiprocessFiles(self.registry)

    def serve(
        self, stats: ModelStats, *, process_start_time: float, accept: str
    ) -> tuple[bytes, str]:
        """(body, Content-Type) for a request with this `Accept` header."""
        if self.engine == "tgi":
            return tgi(stats).encode(), TGI_CONTENT_TYPE
        if self.engine == "triton":
            body = triton(stats, process_start_time=process_start_time, streaming=self.streaming)
            return body.encode(), TRITON_CONTENT_TYPE
        if self.engine == "llamacpp":
            return llamacpp(stats).encode(), LLAMACPP_CONTENT_TYPE
        if self.engine == "inhouse":
            return inhouse(stats, process_start_time=process_start_time, accept=accept)
        encoder, content_type = choose_encoder(accept)
        with self._lock:
            if self._vllm is not None:
                self._vllm.stats, self._vllm.start = stats, process_start_time
                return self._vllm.encode(encoder, content_type), content_type
            assert self._files is not None
            self._files.write(MULTIPROCESS[self.engine](stats))
            return encoder(self.registry), content_type

    def render(
        self, stats: ModelStats, *, process_start_time: float, openmetrics: bool = False
    ) -> bytes:
        accept = OPENMETRICS_ACCEPT if openmetrics else TEXT_ACCEPT
        return self.serve(stats, process_start_time=process_start_time, accept=accept)[0]

    def close(self) -> None:
        with self._lock:
            if self._files is not None:
                self._files.close()


_SHARED_MAX = 64
_shared_lock = threading.Lock()
_shared_expositions: OrderedDict[tuple[str, str], EngineExposition] = OrderedDict()


def _shared(engine: str, model: str) -> EngineExposition:
    """The exposition that `render_exposition` uses for this engine and model: kept for
    the next call, so that each keeps its multiprocess files (least recently used out)."""
    key = (engine, model)
    with _shared_lock:
        exposition = _shared_expositions.get(key)
        if exposition is None:
            exposition = _shared_expositions[key] = EngineExposition(engine)
            if len(_shared_expositions) > _SHARED_MAX:
                _, evicted = _shared_expositions.popitem(last=False)
                evicted.close()
        else:
            _shared_expositions.move_to_end(key)
        return exposition


__all__ = [
    "ENGINE_NAMES",
    "HTML_ERROR_PAGE",
    "LLAMACPP_CONTENT_TYPE",
    "OPENMETRICS_ACCEPT",
    "TEXT_ACCEPT",
    "TEXT_ONLY_ENGINES",
    "TGI_CONTENT_TYPE",
    "TRITON_CONTENT_TYPE",
    "EngineExposition",
    "render_exposition",
    "serve_exposition",
]
