"""Tests of exporter/cli.py: exit codes and one-line errors, and the real process end to end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest
import structlog
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__
from exporter.cli import load_engine_catalog, load_simulation, main, parse_args
from exporter.node import real_node
from exporter.settings import FLAGS, load_settings
from exporter.sources.engines.catalog import BUILTIN
from tests.support.paths import REPO

SCENARIOS = REPO / "simulator" / "scenarios"
READY_WITHIN_SECONDS = 15.0
EXIT_WITHIN_SECONDS = 10.0


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No GPUWORK_* variable of the caller leaks in; main's logging setup does not leak out."""
    for flag in FLAGS:
        monkeypatch.delenv(flag.env, raising=False)
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {captured.err!r}"
    assert lines[0].startswith("gpuwork-exporter: ")
    return lines[0]


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--collect.interval", "soon"], "--collect.interval"),
        (["--collect.interval", "10ms"], "--collect.interval"),
        (["--web.listen-address", "nope"], "--web.listen-address"),
        (["--log.level", "loud"], "--log.level"),
        (["--collect.interval", "1s", "--collect.timeout", "2s"], "--collect.timeout"),
    ],
)
def test_a_bad_flag_value_exits_2_with_one_line(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2

    line = one_error_line(capsys)
    assert line.startswith(f"gpuwork-exporter: invalid {names}=")


def test_a_bad_environment_variable_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GPUWORK_LOG_FORMAT", "xml")

    assert main([]) == 2

    assert one_error_line(capsys).startswith("gpuwork-exporter: invalid GPUWORK_LOG_FORMAT='xml'")


def test_an_unknown_scenario_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--simulate", "no-such-scenario"]) == 2

    line = one_error_line(capsys)
    assert "'no-such-scenario'" in line
    assert "dense-h100, mixed, small" in line


def test_a_scenario_file_that_is_not_yaml_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ngpus: [\n")

    assert main(["--simulate", str(path)]) == 2

    line = one_error_line(capsys)
    assert line.startswith(f"gpuwork-exporter: {path}: not valid YAML")
    assert "line 3" in line


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: x\ngpus: []\n", "gpus: List should have at least 1 item"),
        ("name: x\ngpus:\n  - model: Z100\n", "unknown GPU model 'Z100'"),
        ("name: x\ngpus:\n  - {model: L4, mig: [1g.10gb]}\n", "L4 has no MIG"),
        ("name: x\ngpus: [{model: L4}]\npods: [{name: p, namespace: n, tenant: t, devices: ['3']}]",
         "no GPU 3"),
        ("name: x\ngpus: [{model: L4}]\nsurprise: 1\n", "surprise: Extra inputs"),
        ("- just\n- a list\n", "scenario: Input should be a valid dictionary"),
        ("", "scenario: Input should be a valid dictionary"),
    ],
)  # fmt: skip
def test_a_scenario_file_that_fails_validation_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)

    assert main(["--simulate", str(path)]) == 2

    line = one_error_line(capsys)
    assert line.startswith(f"gpuwork-exporter: {path}: ")
    assert problem in line


def test_a_scenario_file_that_is_not_text_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00\x01 not utf-8")

    assert main(["--simulate", str(path)]) == 2

    assert str(path) in one_error_line(capsys)


def test_a_listen_address_in_use_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"

        assert main(["--simulate", "small", "--web.listen-address", address]) == 1

    line = one_error_line(capsys)
    assert line.startswith(f"gpuwork-exporter: cannot serve on {address}: ")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out == f"gpuwork-exporter {__version__}\n"


def test_help_names_every_flag_and_its_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])

    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in FLAGS:
        assert flag.name in text
        assert f"[{flag.env}]" in text


# -- the product without the simulator -------------------------------------------------------


def test_no_module_of_the_product_imports_the_simulator() -> None:
    # In a fresh interpreter: every module of exporter/, and no module of simulator/ with it.
    code = (
        "import pkgutil, importlib, sys, exporter\n"
        "for m in pkgutil.walk_packages(exporter.__path__, 'exporter.'):\n"
        "    if m.name != 'exporter.__main__':  # that one runs the exporter\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'simulator'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=REPO, timeout=60)  # fmt: skip
    assert done.stdout.strip() == "[]"


async def test_a_real_node_reads_the_real_pynvml_and_is_priced_by_the_flag_alone() -> None:
    settings = load_settings(parse_args(["--node.name", "gpu-7"]), {})
    assert load_simulation(settings) is None
    async with real_node(settings, asyncio.Event()) as node:
        assert node.nvml is pynvml and node.name == "gpu-7"
        assert node.gpu_prices == ()
        assert node.cluster is None  # not in a pod, no --kubernetes.api-url


# -- the real process --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until_ready(process: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "the exporter exited before it was ready"
        try:
            if get(f"{base}/readyz")[0] == 200:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.05)
    pytest.fail(f"/readyz did not answer 200 within {READY_WITHIN_SECONDS} s")


def test_the_exporter_serves_a_simulated_node_and_stops_on_sigterm() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUWORK_")}
    argv = [sys.executable, "-m", "exporter", "--simulate", "small",
            "--collect.interval", "200ms", "--web.listen-address", f"127.0.0.1:{port}"]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_until_ready(process, base)
        assert get(f"{base}/healthz") == (200, b"ok\n")
        status, body = get(f"{base}/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}

        gpus = families["gpuwork_gpu_info"].samples
        assert len(gpus) == 2
        assert {s.labels["node"] for s in gpus} == {"sim-small"}
        assert {s.labels["gpu_index"] for s in gpus} == {"0", "1"}
        devices = families["gpuwork_device_info"].samples
        assert len(devices) == 4
        assert {s.labels["node"] for s in devices} == {"sim-small"}
        assert families["gpuwork_nvml_up"].samples[0].value == 1
        # attribution end to end: the simulated node's pods through its fake kubelet
        held = {(s.labels["pod"], s.labels["tenant"], s.value)
                for s in families["gpuwork_device_allocation"].samples}  # fmt: skip
        assert held == {("chat-0", "chat", 1.0), ("search-0", "search", 1.0),
                        ("search-1", "search", 1.0)}  # fmt: skip
        success = {s.labels["collector"]: s.value
                   for s in families["gpuwork_collector_success"].samples}  # fmt: skip
        assert success == {"nvml": 1.0, "podresources": 1.0, "processes": 1.0,
                           "kubernetes": 1.0, "engines": 1.0}  # fmt: skip
        # the scenario's prices, no flag given: each device at its GPU fraction of $4.10
        fractions = {s.labels["device"]: s.value
                     for s in families["gpuwork_device_gpu_fraction"].samples}  # fmt: skip
        costs = {s.labels["device"]: s.value
                 for s in families["gpuwork_device_hourly_cost"].samples}  # fmt: skip
        assert costs.keys() == fractions.keys()
        assert costs == pytest.approx({d: 4.10 * f for d, f in fractions.items()})
        # steady state from the first scrape: the busy pod's engine started 10 minutes ago
        generation = {s.labels["pod"]: s.value for s in families["gpuwork_tokens"].samples
                      if s.labels["type"] == "generation"}  # fmt: skip
        assert generation["chat-0"] > 0.55 * 2500 * 500
        assert "process_cpu_seconds" in families  # the full registry, not only the snapshot

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=EXIT_WITHIN_SECONDS)
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_scenario_restarts_the_exporter_and_the_mirrored_tokens_never_fall(
    tmp_path: Path,
) -> None:
    scenario = yaml.safe_load((SCENARIOS / "small.yaml").read_text())
    scenario["faults"] = [{"kind": "exporter_restart", "at": 2.5}]
    path = tmp_path / "restarting.yaml"
    path.write_text(yaml.safe_dump(scenario))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUWORK_")}
    argv = [sys.executable, "-m", "exporter", "--simulate", str(path),
            "--collect.interval", "200ms", "--web.listen-address", f"127.0.0.1:{port}"]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )

    def totals() -> tuple[float, float]:
        """(GPU-seconds in the waste ledger, generation tokens of chat-0) now."""
        families = {
            f.name: f for f in text_string_to_metric_families(get(f"{base}/metrics")[1].decode())
        }
        held = sum(s.value for s in families["gpuwork_device_state_seconds"].samples)
        (tokens,) = [s.value for s in families["gpuwork_tokens"].samples if
                     s.labels["pod"] == "chat-0" and s.labels["type"] == "generation"]  # fmt: skip
        return held, tokens

    try:
        wait_until_ready(process, base)
        seen = [totals()]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and seen[-1][0] >= max(held for held, _ in seen):
            time.sleep(0.2)
            with contextlib.suppress(KeyError, ValueError):  # between two exporter lives
                seen.append(totals())
        # the ledger's seconds, kept in memory, started anew: the exporter did restart ...
        assert seen[-1][0] < max(held for held, _ in seen)
        # ... and the tokens, the engine's own counter mirrored, never fell
        tokens = [t for _, t in seen]
        assert tokens == sorted(tokens) and tokens[-1] > tokens[0]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=EXIT_WITHIN_SECONDS)
        assert process.returncode == 0, stderr.decode()
        assert b"the scenario restarts the exporter" in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_an_engine_catalog_that_fails_validation_exits_2_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "engines.yaml"
    path.write_text("engines:\n  - name: acme\n    ports: [9100]\n    fields: {tokens: []}\n")

    assert main(["--engines.catalog", str(path)]) == 2

    line = one_error_line(capsys)
    assert line == (
        f"gpuwork-exporter: {path}:4: engines[0].fields.tokens: Extra inputs are not permitted"
    )


def test_the_engine_catalog_is_the_flags_file_else_the_scenarios(tmp_path: Path) -> None:
    mixed = load_settings(parse_args(["--simulate", "mixed"]), {})
    assert "inhouse" in load_engine_catalog(mixed, load_simulation(mixed)).names()
    mine = tmp_path / "engines.yaml"
    mine.write_text("engines:\n  - name: acme\n    ports: [9100]\n    fields: {}\n")
    flagged = load_settings(parse_args(["--simulate", "mixed", "--engines.catalog", str(mine)]), {})
    names = load_engine_catalog(flagged, load_simulation(flagged)).names()
    assert "acme" in names and "inhouse" not in names  # the flag wins over the scenario
    plain = load_settings(parse_args([]), {})
    assert load_engine_catalog(plain, None) is BUILTIN


def test_a_scenario_naming_a_bad_engine_catalog_exits_2_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "engines.yaml"
    catalog.write_text("engines:\n  - name: acme\n    ports: [0]\n    fields: {}\n")
    scenario = tmp_path / "node.yaml"
    scenario.write_text(f"name: x\ngpus: [{{model: L4}}]\nengine_catalog: {catalog}\n")

    assert main(["--simulate", str(scenario)]) == 2

    assert one_error_line(capsys) == (
        f"gpuwork-exporter: {catalog}:2: engines[0]: port 0 is not 1-65535"
    )
