"""The real programs the tests run, found or installed, and skipped with the reason where absent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

PROMTOOL = "/usr/bin/promtool"


def promtool() -> str:
    if Path(PROMTOOL).is_file():
        return PROMTOOL
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("promtool is missing in CI: `make tools` installs Debian's prometheus package")
    pytest.skip("promtool is not installed (Debian package `prometheus`; `make tools`)")
