"""Where the repository, the recorded fixtures and the golden files are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
ENGINE_FIXTURES = TESTS / "fixtures" / "engines"  # engine bodies recorded from real servers
GOLDEN = TESTS / "golden"
