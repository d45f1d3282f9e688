"""The exporter on a simulated node as a process of its own, as `--simulate` runs it,
telling the node's wall-clock start so that a test can compute the scenario's truth."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from harness.processes import end_process
from tests.support.paths import REPO

_RUN_EXPORTER = """
import asyncio, sys
from exporter.cli import load_settings, parse_args, serve
from simulator.serving import Simulation
settings = load_settings(parse_args(sys.argv[1:]), {})
simulation = Simulation(settings)
print(simulation.node.wall_start, flush=True)
asyncio.run(serve(settings, simulation))
"""


@contextlib.contextmanager
def exporter(scenario: Path, port: int, scratch: Path, *, interval: float) -> Iterator[float]:
    """The exporter on the simulated node, a process of its own, collecting every
    `interval` seconds with a 10 s state window; yields the node's wall-clock start (its
    time 0). Its log goes to `scratch/exporter.log`."""
    argv = [sys.executable, "-c", _RUN_EXPORTER, "--simulate", str(scenario),
            "--web.listen-address", f"127.0.0.1:{port}",
            "--collect.interval", f"{interval:g}s", "--state.window", "10s"]  # fmt: skip
    log = (scratch / "exporter.log").open("wb")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, cwd=REPO)
    try:
        assert process.stdout is not None
        yield float(process.stdout.readline())
    finally:
        end_process(process)
        log.close()
