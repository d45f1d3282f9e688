"""Ending a child process the same way everywhere: SIGTERM, then SIGKILL."""

from __future__ import annotations

import subprocess
from typing import Any


def end_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 10 s; waits for it either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
