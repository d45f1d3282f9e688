"""exporter/errors.py: one exception base, and a vocabulary of kinds the docs list."""

from __future__ import annotations

import re

from exporter.errors import ErrorKind, GpuworkError, SourceError, http_status_kind
from exporter.settings import SettingsError
from exporter.sources.engines.parser import ExpositionError
from exporter.sources.nvml.library import GpuLostError, NvmlDownError
from exporter.sources.podresources.client import KubeletUnavailable
from simulator.scenario import ScenarioError
from tests.support.paths import REPO


def test_every_kind_is_listed_in_the_metrics_doc() -> None:
    doc = (REPO / "docs" / "metrics.md").read_text()
    listed = set(re.findall(r"`([a-z0-9_]+)`", doc))
    assert {kind.value for kind in ErrorKind} - listed == set()


def test_the_errors_the_exporter_raises_share_one_base() -> None:
    for error in (SettingsError, ExpositionError, GpuLostError, NvmlDownError,
                  KubeletUnavailable, ScenarioError):  # fmt: skip
        assert issubclass(error, GpuworkError), error
    assert NvmlDownError("gone").kind == ErrorKind.NVML_DOWN
    assert KubeletUnavailable("x", kind=ErrorKind.BACKOFF).kind == "backoff"
    assert SourceError("counted already", kind=None).kind is None


def test_an_http_status_is_a_kind_of_its_own() -> None:
    assert http_status_kind(503) == "http_503"
