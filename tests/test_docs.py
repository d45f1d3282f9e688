"""The docs describe what the code does: metric names and flags, both ways."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest

from exporter.exposition.families import SnapshotCollector
from exporter.model import CollectorHealth, NodeSnapshot
from exporter.settings import FLAGS
from tests.support.paths import REPO
from tests.support.sim import make_sim, scenario_from
from tests.support.snapshots import attributed

ROOT = REPO


def served_names() -> set[str]:
    """Every gpuwork_ sample name the exporter can serve, from a run with every series."""
    faults = [{"kind": "xid", "at": 2, "gpu": 0, "xid": 13}]
    # a pod that starts with the node: its engine's cold start is seen
    pods = [
        {
            "name": "p",
            "namespace": "n",
            "tenant": "t",
            "devices": ["0"],
            "started_before_seconds": 0,
        }
    ]
    # an L4 beside the H100: samples its hardware does not have are absent, and said so;
    # an H100 in MIG mode: its instances' energy is split (estimated)
    gpus = [{"model": "H100-SXM5-80GB"}, {"model": "L4"},
            {"model": "H100-SXM5-80GB", "mig": ["3g.40gb", "1g.10gb"]}]  # fmt: skip
    sim = make_sim(scenario_from({"name": "t", "gpus": gpus, "pods": pods, "faults": faults}))
    sim.reader.start()
    first = sim.reader.read()
    sim.clock.advance(5)
    second = sim.reader.read()
    snapshot = NodeSnapshot(
        node="n",
        nvml_up=True,
        nvml=second,
        collectors={"nvml": CollectorHealth(True, 0.1, 1.0)},
        errors_total={("nvml", "timeout"): 1},
        dropped_series_total={"xid_cap": 1},
        **attributed(sim, first, second),
    )
    collector = SnapshotCollector()
    collector.update(snapshot)
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    names = set(re.findall(r"^(gpuwork_\w+)", text, re.MULTILINE))
    # a histogram is documented by its family name, not its _bucket/_sum/_count samples
    histograms = set(re.findall(r"^# TYPE (gpuwork_\w+) histogram", text, re.MULTILINE))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.rsplit("_", 1)[0] in histograms else n
            for n in names}  # fmt: skip


def test_every_served_metric_is_documented_and_every_documented_one_served() -> None:
    documented = set(re.findall(r"`(gpuwork_\w+)`", (ROOT / "docs/metrics.md").read_text()))
    assert served_names() == documented


def test_readme_lists_every_flag_with_its_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(--[\w.-]+)` \| `(GPUWORK_\w+)` \|", readme, re.MULTILINE)
    assert sorted(rows) == sorted((flag.name, flag.env) for flag in FLAGS)


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci/run").read_text()
