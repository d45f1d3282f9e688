"""mixin/alerting/: the alerts, their promtool tests and the example routing.

Checked with the real programs (promtool, amtool): the rules load, every alert's unit test
passes, the Alertmanager configuration loads and routes each kind of alert where
docs/alerts.md says. Without them: every alert has a test case, a runbook section and
the labels and annotations every alert must carry; the XID classification is whole.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mixin import xids
from mixin.alerting import model, render, routing
from mixin.alerting.rules import alerts
from mixin.config import CONFIG
from tests.support.paths import REPO
from tests.support.programs import promtool

RULES = REPO / render.RULES
TESTS = REPO / render.TESTS
ALERTMANAGER = REPO / render.ALERTMANAGER
RUNBOOKS = REPO / "docs" / "runbooks.md"
ALERTS = alerts(CONFIG)


def amtool() -> str:
    for candidate in ("/usr/bin/amtool", shutil.which("amtool")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("amtool is not installed (Debian package `prometheus-alertmanager`; `make tools`)")


def _run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def _rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


# -- with the real programs ----------------------------------------------------------------


@pytest.mark.integration
def test_promtool_accepts_the_rules() -> None:
    done = _run(promtool(), "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


@pytest.mark.integration
def test_every_alerts_unit_test_passes() -> None:
    done = _run(promtool(), "test", "rules", TESTS.name, cwd=TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.integration
def test_amtool_accepts_the_alertmanager_configuration() -> None:
    done = _run(amtool(), "check-config", str(ALERTMANAGER))
    assert done.returncode == 0, done.stdout + done.stderr


def _routed(*labels: str) -> list[str]:
    done = _run(amtool(), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("fault_domain=platform", "severity=critical", "alertname=GpuworkGpuLost"),
         routing.PAGER),
        (("fault_domain=platform", "severity=warning", "alertname=GpuworkGpuThermalThrottling"),
         routing.TICKET),
        (("fault_domain=platform", "severity=info", "alertname=GpuworkGpuXidUnclassified"),
         routing.TICKET),
        # a tenant's critical alert goes to the tenant, never to the SRE pager
        (("fault_domain=tenant", "severity=critical", "tenant=chat"),
         routing.tenant_receiver("chat")),
        (("fault_domain=tenant", "severity=warning", "tenant=unknown-team"), routing.DEFAULT),
        (("alertname=SomethingElse",), routing.DEFAULT),
    ],
)  # fmt: skip
def test_each_route_reaches_its_receiver(labels: tuple[str, ...], receiver: str) -> None:
    assert _routed(*labels) == [receiver]


@pytest.mark.integration
@pytest.mark.parametrize("tenant", CONFIG.tenants)
def test_a_tenants_alert_reaches_that_tenant_only(tenant: str) -> None:
    assert _routed("fault_domain=tenant", "severity=warning", f"tenant={tenant}") == [
        routing.tenant_receiver(tenant)
    ]


# -- without them ----------------------------------------------------------------------------


def test_every_alert_has_a_unit_test_and_each_test_checks_silence_then_firing() -> None:
    suite = yaml.safe_load(TESTS.read_text())
    tested = {}
    for case in suite["tests"]:
        checks = case["alert_rule_test"]
        assert {check["alertname"] for check in checks} == {case["name"]}
        tested[case["name"]] = checks
    assert set(tested) == {a.name for a in ALERTS}
    for a in ALERTS:
        before, due = tested[a.name][:2]
        assert before["exp_alerts"] == [], a.name
        assert due["exp_alerts"], a.name
        assert model.seconds(due["eval_time"]) - model.seconds(before["eval_time"]) == 60
        for alert in due["exp_alerts"]:
            assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}


def test_every_alert_carries_the_labels_and_annotations_it_must() -> None:
    rules = _rules()
    assert [rule["alert"] for rule in rules] == [a.name for a in ALERTS]
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"Gpuwork(?:[A-Z][a-z0-9]*)+", name), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["labels"]["fault_domain"] in {"tenant", "platform"}, name
        annotations = rule["annotations"]
        assert "{{" not in annotations["summary"], name  # static: it groups well
        assert "{{" in annotations["description"], name
        assert annotations["runbook_url"] == f"{CONFIG.runbook_base_url}#{name.lower()}"


def test_every_selector_names_the_job_and_every_aggregation_keeps_the_cluster() -> None:
    for rule in _rules():
        expr = str(rule["expr"])
        selectors = re.findall(r"\b(gpuwork_\w+|up)\{([^}]*)\}", expr)
        assert selectors, rule["alert"]
        for metric, matchers in selectors:
            assert CONFIG.job_selector in matchers, (rule["alert"], metric)
        for by in re.findall(r"\b(?:by|on) \(([^)]*)\)", expr):
            if by:  # `group_left ()` and the like have no list
                assert by.split(", ")[0] == CONFIG.cluster_label, (rule["alert"], by)


def test_tenant_alerts_carry_the_tenant_and_hardware_alerts_the_gpu() -> None:
    suite = {case["name"]: case for case in yaml.safe_load(TESTS.read_text())["tests"]}
    for a in ALERTS:
        due = suite[a.name]["alert_rule_test"][1]["exp_alerts"]
        for alert in due:
            labels = alert["exp_labels"]
            if a.fault_domain == "tenant":
                assert labels.get("tenant"), a.name
            if a.name.startswith("GpuworkGpu") and a.fault_domain == "platform":
                assert labels.get("gpu_uuid"), a.name
                assert labels.get("node"), a.name


def test_every_alert_has_a_runbook_section() -> None:
    text = RUNBOOKS.read_text()
    headings = re.findall(r"^## (\S+)\s*$", text, re.MULTILINE)
    assert set(headings) == {a.name for a in ALERTS}
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        for part in ("Meaning", "Who gets it", "First checks", "Action"):
            assert f"**{part}**" in section, (section.split()[0], part)


def test_a_lost_gpu_inhibits_its_own_xid_and_throttling_alerts() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    (rule,) = [
        r for r in config["inhibit_rules"] if 'alertname="GpuworkGpuLost"' in r["source_matchers"]
    ]
    assert "gpu_uuid" in rule["equal"]
    (target,) = rule["target_matchers"]
    pattern = re.fullmatch(r'alertname=~"(.*)"', target)
    assert pattern
    silenced = {a.name for a in ALERTS if re.fullmatch(pattern.group(1), a.name)}
    assert silenced == {
        "GpuworkGpuXidResetRequired",
        "GpuworkGpuXidInvestigate",
        "GpuworkGpuXidUnclassified",
        "GpuworkGpuXidApplication",
        "GpuworkGpuThermalThrottling",
        "GpuworkGpuPowerBrakeThrottling",
    }


def test_every_receiver_is_a_webhook_under_the_one_base_url() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        (hook,) = receiver["webhook_configs"]
        assert hook["url"] == f"{CONFIG.webhook_base_url}/{receiver['name']}"


def test_the_xid_classification_is_whole_and_as_briefed() -> None:
    assert set(xids.FAULT_DOMAIN) == {bucket for _, bucket in xids.XIDS.values()}
    tenant, platform, ignored = xids.codes("tenant"), xids.codes("platform"), xids.codes(None)
    assert not set(tenant) & set(platform)
    assert {13, 31, 45, 68, 94} <= set(tenant)
    assert {48, 62, 64, 74, 79, 95, 109, 119, 120, 140, 143} <= set(platform)
    assert {63, 92} <= set(ignored)
    assert set(xids.codes("platform", reset=True)) == {
        code for code, (_, bucket) in xids.XIDS.items() if bucket in xids.RESET_BUCKETS
    }
    assert "catalog" in xids.CATALOG.lower() and xids.CATALOG_URL.startswith("https://")
