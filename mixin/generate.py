"""`python -m mixin.generate [--check]`: writes every generated file of `alerts/` and
`dashboards/` from the mixin, or with `--check` says which differ from what is
committed (exit 1), as CI runs it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mixin.config import CONFIG, Config

ROOT = Path(__file__).resolve().parent.parent

# Each part of the mixin: a function of the config to {path from the repository root: text}.
Part = Callable[[Config], Mapping[str, str]]


def parts() -> list[Part]:
    from mixin import alerting, autoscaling, chart, dashboards, recording, rightsizing

    return [
        recording.files,
        rightsizing.files,
        autoscaling.files,
        alerting.files,
        dashboards.files,
        chart.files,
    ]


def generated(config: Config = CONFIG) -> dict[str, str]:
    files: dict[str, str] = {}
    for part in parts():
        for path, text in part(config).items():
            if path in files:
                raise ValueError(f"{path} is generated twice")
            files[path] = text
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixin.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    check = parser.parse_args(argv).check
    stale = []
    for path, text in sorted(generated().items()):
        target = ROOT / path
        current = target.read_text() if target.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    if check and stale:
        print("generated files differ; run `python -m mixin.generate`:", *stale,
              sep="\n  ", file=sys.stderr)  # fmt: skip
        return 1
    for path in [] if check else stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
