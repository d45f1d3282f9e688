"""Tenant rules: parsing with clear errors, the label keys they read, and resolution."""

from __future__ import annotations

import pytest

from exporter.join.tenancy import (
    DEFAULT_TENANT_RULES,
    MAX_TENANT_LENGTH,
    TenantRule,
    label_keys,
    parse_tenant_rules,
    resolve_tenant,
)
from exporter.model import NamespaceMeta, PodMeta


def _pod(labels: dict[str, str]) -> PodMeta:
    return PodMeta(
        uid="1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901",
        namespace="team-a",
        name="trainer-0",
        labels=labels,
        annotations={},
        container_ports={},
        phase="Running",
        pod_ip="10.0.0.7",
        start_time=None,
    )


def _namespace(labels: dict[str, str]) -> NamespaceMeta:
    return NamespaceMeta("team-a", labels)


def test_default_rules() -> None:
    assert parse_tenant_rules(DEFAULT_TENANT_RULES) == (
        TenantRule("namespace-label", "gpuwork.io/tenant"),
        TenantRule("namespace"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("namespace", (TenantRule("namespace"),)),
        ("pod-label:team", (TenantRule("pod-label", "team"),)),
        (
            " pod-label:example.com/cost-center , namespace-label:tenant ,namespace ",
            (
                TenantRule("pod-label", "example.com/cost-center"),
                TenantRule("namespace-label", "tenant"),
                TenantRule("namespace"),
            ),
        ),
        (
            "namespace-label:tenant,pod-label:tenant",  # same key, different sources
            (TenantRule("namespace-label", "tenant"), TenantRule("pod-label", "tenant")),
        ),
        ("pod-label:A.b_c-D9", (TenantRule("pod-label", "A.b_c-D9"),)),
        ("pod-label:x", (TenantRule("pod-label", "x"),)),
        ("pod-label:" + "n" * 63, (TenantRule("pod-label", "n" * 63),)),
        ("pod-label:" + "p" * 253 + "/n", (TenantRule("pod-label", "p" * 253 + "/n"),)),
        ("pod-label:a-1.b-2.c/n", (TenantRule("pod-label", "a-1.b-2.c/n"),)),
    ],
)
def test_parses(text: str, expected: tuple[TenantRule, ...]) -> None:
    assert parse_tenant_rules(text) == expected


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("namespace,", "empty rule"),
        (",namespace", "empty rule"),
        ("namespace-label:a,,namespace", "empty rule"),
        ("label:team", "'label:team'"),
        ("Namespace", "'Namespace'"),
        ("namespace:team", "'namespace:team'"),
        ("pod-label", "'pod-label'"),
        ("pod-label:", "label key ''"),
        ("namespace-label: tenant", "label key ' tenant'"),
        ("pod-label:-team", "'-team'"),
        ("pod-label:team-", "'team-'"),
        ("pod-label:te am", "'te am'"),
        ("pod-label:" + "n" * 64, "name must be"),
        ("pod-label:/team", "prefix before '/' is empty"),
        ("pod-label:example.com/", "name must be"),
        ("pod-label:Example.com/team", "DNS subdomain"),
        ("pod-label:example..com/team", "DNS subdomain"),
        ("pod-label:-example.com/team", "DNS subdomain"),
        ("pod-label:a/b/c", "DNS subdomain"),
        ("pod-label:" + "p" * 254 + "/n", "DNS subdomain"),
        ("pod-label:team,pod-label:team", "given twice"),
        ("namespace,pod-label:team", "after 'namespace'"),
        ("namespace,namespace", "after 'namespace'"),
    ],
)
def test_rejects(text: str, names: str) -> None:
    with pytest.raises(ValueError, match="tenant rule") as error:
        parse_tenant_rules(text)
    message = str(error.value)
    assert names in message
    assert "\n" not in message


@pytest.mark.parametrize("text", ["label:team", "pod-label", "", "a,,b"])
def test_errors_name_the_allowed_forms(text: str) -> None:
    with pytest.raises(ValueError, match="namespace-label:<label key>, pod-label:<label key>"):
        parse_tenant_rules(text)


def test_label_keys() -> None:
    rules = parse_tenant_rules("pod-label:team,namespace-label:tenant,pod-label:org/unit,namespace")
    assert label_keys(rules) == (frozenset({"team", "org/unit"}), frozenset({"tenant"}))


def test_label_keys_of_the_namespace_rule_alone() -> None:
    assert label_keys(parse_tenant_rules("namespace")) == (frozenset(), frozenset())


def test_label_keys_take_any_iterable() -> None:
    rules = parse_tenant_rules("namespace-label:tenant")
    assert label_keys(iter(rules)) == (frozenset(), frozenset({"tenant"}))


DEFAULT = parse_tenant_rules(DEFAULT_TENANT_RULES)
POD_FIRST = parse_tenant_rules("pod-label:tenant,namespace-label:gpuwork.io/tenant,namespace")
LABELS_ONLY = parse_tenant_rules("namespace-label:gpuwork.io/tenant,pod-label:tenant")


@pytest.mark.parametrize(
    ("rules", "pod", "namespace", "expected"),
    [
        (DEFAULT, None, _namespace({"gpuwork.io/tenant": "acme"}), "acme"),
        (DEFAULT, None, _namespace({"other": "x"}), "team-a"),
        (DEFAULT, None, _namespace({"gpuwork.io/tenant": ""}), "team-a"),  # empty: next rule
        (DEFAULT, None, None, "team-a"),  # no metadata: label rules are skipped
        (DEFAULT, _pod({"tenant": "mallory"}), None, "team-a"),  # pod labels are opt-in
        (POD_FIRST, _pod({"tenant": "blue"}), _namespace({"gpuwork.io/tenant": "acme"}), "blue"),
        (POD_FIRST, _pod({}), _namespace({"gpuwork.io/tenant": "acme"}), "acme"),
        (POD_FIRST, None, _namespace({"gpuwork.io/tenant": "acme"}), "acme"),
        (LABELS_ONLY, _pod({}), _namespace({}), ""),  # unresolved
        (LABELS_ONLY, None, None, ""),
        (LABELS_ONLY, _pod({"tenant": "blue"}), None, "blue"),
        ((), _pod({"tenant": "blue"}), _namespace({}), ""),
    ],
)
def test_resolves(
    rules: tuple[TenantRule, ...],
    pod: PodMeta | None,
    namespace: NamespaceMeta | None,
    expected: str,
) -> None:
    assert resolve_tenant(rules, "team-a", pod, namespace) == expected


def test_tenants_are_capped() -> None:
    long = "t" * (MAX_TENANT_LENGTH + 40)
    rules = parse_tenant_rules("pod-label:tenant,namespace")
    assert resolve_tenant(rules, "ns", _pod({"tenant": long}), None) == "t" * MAX_TENANT_LENGTH
    assert resolve_tenant(rules, long, None, None) == "t" * MAX_TENANT_LENGTH


def test_empty_namespace_name_is_unresolved() -> None:
    assert resolve_tenant(parse_tenant_rules("namespace"), "", None, None) == ""


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (TenantRule("namespace"), "namespace"),
        (TenantRule("pod-label", "example.com/team"), "pod-label:example.com/team"),
    ],
)
def test_rules_print_as_written(rule: TenantRule, text: str) -> None:
    assert str(rule) == text
    assert parse_tenant_rules(str(rule)) == (rule,)
