"""mixin/generate.py: the committed files are what the mixin generates."""

from __future__ import annotations

from mixin.generate import main


def test_the_committed_files_are_what_the_mixin_generates() -> None:
    assert main(["--check"]) == 0, "run `python -m mixin.generate` and commit the result"
