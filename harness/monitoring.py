"""Debian's Prometheus, Alertmanager and VictoriaMetrics on loopback, and a webhook sink.

Each runs as a real process on free ports with its data in a scratch directory, and
stops when its context ends. `Prometheus` scrapes the given targets, loads the given
rule files and sends alerts to an Alertmanager and samples to a remote-write URL;
`Alertmanager` delivers to `WebhookSink`, which keeps every notification it receives;
`VictoriaMetrics` answers PromQL, with `extra_label` enforcing a label on every
selector as prom-label-proxy does.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from harness.kube_apiserver import free_port
from harness.processes import end_process

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name for the alertmanager binary
VICTORIA_METRICS = "victoria-metrics"
READY_SECONDS = 30.0


class ProgramMissingError(RuntimeError):
    """A program of the stack is not installed (`make tools` installs them)."""


def require(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        raise ProgramMissingError(f"not installed: {', '.join(missing)} (`make tools`)")


def get_json(url: str, params: Mapping[str, str] | None = None) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(url + query, timeout=10) as response:
        return json.load(response)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready in {READY_SECONDS} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running(argv: Sequence[str], ready_url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(ready_url, process, log)
        yield process
    finally:
        end_process(process)


@dataclass
class PromQL:
    """The HTTP query API of a Prometheus or a VictoriaMetrics."""

    base: str

    def query(self, expr: str, **params: str) -> list[dict[str, Any]]:
        answer = get_json(f"{self.base}/api/v1/query", {"query": expr, **params})
        if answer.get("status") != "success":
            raise RuntimeError(f"{expr}: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


@contextlib.contextmanager
def prometheus(
    scratch: Path,
    *,
    targets: Sequence[str],
    rule_files: Sequence[Path] = (),
    alertmanager: str | None = None,
    remote_write: str | None = None,
    interval: str = "2s",
    job: str = "gpuwork-exporter",
    external_labels: Mapping[str, str] | None = None,
) -> Iterator[PromQL]:
    require(PROMETHEUS)
    port = free_port()
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }
    if external_labels:
        config["global"]["external_labels"] = dict(external_labels)
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    if remote_write:
        config["remote_write"] = [{"url": remote_write,
                                   "queue_config": {"batch_send_deadline": "1s"}}]  # fmt: skip
    path = scratch / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    # extra-scrape-metrics: scrape_body_size_bytes, which the exporter dashboard shows
    argv = [PROMETHEUS, f"--config.file={path}", f"--storage.tsdb.path={scratch / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=extra-scrape-metrics"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(argv, f"{base}/-/ready", scratch / "prometheus.log"):
        yield PromQL(base)


@dataclass
class WebhookSink:
    """An HTTP server that keeps every Alertmanager notification, by receiver (the path)."""

    port: int = field(default_factory=free_port)
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def url(self, receiver: str) -> str:
        return f"http://127.0.0.1:{self.port}/{receiver}"

    def alerts(self, receiver: str) -> list[dict[str, Any]]:
        """Every alert delivered to `receiver` so far."""
        return [a for note in self.received.get(receiver, []) for a in note["alerts"]]

    @contextlib.contextmanager
    def serving(self) -> Iterator[WebhookSink]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.received.setdefault(self.path.strip("/"), []).append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


@contextlib.contextmanager
def alertmanager(scratch: Path, config: Mapping[str, Any]) -> Iterator[str]:
    """An Alertmanager with `config`; yields its host:port."""
    require(ALERTMANAGER)
    port, cluster = free_port(), free_port()
    path = scratch / "alertmanager.yml"
    path.write_text(yaml.safe_dump(dict(config)))
    argv = [ALERTMANAGER, f"--config.file={path}", f"--storage.path={scratch / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--cluster.listen-address=127.0.0.1:{cluster}"]  # fmt: skip
    with running(argv, f"http://127.0.0.1:{port}/-/ready", scratch / "alertmanager.log"):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def victoria_metrics(scratch: Path) -> Iterator[PromQL]:
    """A single-node VictoriaMetrics that shows samples as soon as they arrive."""
    require(VICTORIA_METRICS)
    port = free_port()
    argv = [VICTORIA_METRICS, f"-storageDataPath={scratch / 'vm'}",
            f"-httpListenAddr=127.0.0.1:{port}", "-search.latencyOffset=0s",
            "-retentionPeriod=1d"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(argv, f"{base}/health", scratch / "victoria-metrics.log"):
        yield PromQL(base)
