"""Which tenant a pod belongs to, by rules from the configuration.

Rules are tried in order and the first that gives a non-empty value wins:

- `namespace-label:<key>`: a label on the pod's namespace;
- `pod-label:<key>`: a label on the pod itself;
- `namespace`: the namespace's own name, the usual last rule.

Pod labels are opt-in (the default reads only the namespace label, then the
namespace name): a pod's labels are written by the tenant who runs it, so with a
pod-label rule any tenant can name any tenant, and shift its GPU bill or its waste
onto someone else. Namespace labels are set by the platform team. A pod that no
rule matches has the empty tenant, which the docs call unresolved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from exporter.model import NamespaceMeta, PodMeta

Source = Literal["namespace-label", "pod-label", "namespace"]

DEFAULT_TENANT_RULES = "namespace-label:gpuwork.io/tenant,namespace"
MAX_TENANT_LENGTH = 63  # a label value's limit: tenants end up as label values

_LABEL_SOURCES: dict[str, Source] = {"namespace-label": "namespace-label", "pod-label": "pod-label"}
_FORMS = "namespace-label:<label key>, pod-label:<label key>, namespace"
# Kubernetes label keys: an optional DNS subdomain prefix and "/", then a name.
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_PREFIX = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_MAX_PREFIX = 253
_MAX_NAME = 63


@dataclass(frozen=True, slots=True)
class TenantRule:
    """One way to find a tenant: where to look, and the label key for label sources."""

    source: Source
    key: str = ""  # the label key for the *-label sources

    def __str__(self) -> str:
        return f"{self.source}:{self.key}" if self.key else self.source


def _label_key_problem(key: str) -> str | None:
    """Why `key` is not a Kubernetes label key, or None if it is one."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "its prefix before '/' is empty"
    if prefix and (len(prefix) > _MAX_PREFIX or _PREFIX.fullmatch(prefix) is None):
        return f"its prefix must be a DNS subdomain of at most {_MAX_PREFIX} characters"
    if not name or len(name) > _MAX_NAME or _NAME.fullmatch(name) is None:
        return (
            f"its name must be 1-{_MAX_NAME} characters of [A-Za-z0-9-_.], "
            "beginning and ending with a letter or digit"
        )
    return None


def _parse_rule(part: str) -> TenantRule:
    source, colon, key = part.partition(":")
    if source == "namespace" and not colon:
        return TenantRule("namespace")
    label_source = _LABEL_SOURCES.get(source)
    if label_source is None or not colon:
        raise ValueError(f"tenant rule {part!r} is not one of: {_FORMS}")
    problem = _label_key_problem(key)
    if problem is not None:
        raise ValueError(f"tenant rule {part!r}: label key {key!r} is invalid: {problem}")
    return TenantRule(label_source, key)


def parse_tenant_rules(text: str) -> tuple[TenantRule, ...]:
    """Parses comma-separated rules; raises ValueError with a one-line message."""
    if not text.strip():
        raise ValueError(f"tenant rules are empty; give one or more of: {_FORMS}")
    rules: list[TenantRule] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            raise ValueError(f"tenant rules {text!r} have an empty rule; allowed: {_FORMS}")
        rule = _parse_rule(part)
        if rules and rules[-1].source == "namespace":
            raise ValueError(
                f"tenant rule {part!r} comes after 'namespace', which always matches: "
                "it can never be used"
            )
        if rule in rules:
            raise ValueError(f"tenant rule {part!r} is given twice")
        rules.append(rule)
    return tuple(rules)


def label_keys(rules: Iterable[TenantRule]) -> tuple[frozenset[str], frozenset[str]]:
    """The (pod, namespace) label keys the rules read: all the cluster watch keeps."""
    rules = tuple(rules)
    pod = frozenset(rule.key for rule in rules if rule.source == "pod-label")
    namespace = frozenset(rule.key for rule in rules if rule.source == "namespace-label")
    return pod, namespace


def resolve_tenant(
    rules: Iterable[TenantRule],
    namespace: str,
    pod: PodMeta | None,
    namespace_meta: NamespaceMeta | None,
) -> str:
    """The first non-empty value the rules give, capped; "" when none does."""
    for rule in rules:
        if rule.source == "namespace":
            value = namespace
        elif rule.source == "namespace-label":
            value = namespace_meta.labels.get(rule.key, "") if namespace_meta else ""
        else:
            value = pod.labels.get(rule.key, "") if pod else ""
        if value:
            return value[:MAX_TENANT_LENGTH]
    return ""
