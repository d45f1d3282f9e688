"""Pod and namespace objects of the API, as decoded JSON, into what the exporter keeps.

Pure functions: `pod_meta` and `namespace_meta` turn one object into a `PodMeta` or
`NamespaceMeta`, and `pod_key`/`namespace_key` name an object (a DELETED event needs no
more). Only the fields the exporter uses are kept, with tenant-controlled strings capped
(63 characters for label values, 253 for annotation values, as Kubernetes itself limits
them) so that a hostile object cannot grow the exporter. An object without its
identifying fields raises `MalformedError` (a `ValueError`); the caller counts and skips it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, TypeGuard

from exporter.model import NamespaceMeta, PodMeta
from exporter.sources.kubernetes.errors import MalformedError

ANNOTATION_PREFIX: Final = "prometheus.io/"
MAX_LABEL_VALUE: Final = 63  # Kubernetes' own limit on a label value
MAX_ANNOTATION_VALUE: Final = 253
MAX_ANNOTATIONS: Final = 16  # prometheus.io/* annotations kept per pod (sorted by key)
MAX_PORTS: Final = 64  # named container ports kept per pod


def as_object(value: object, what: str) -> Mapping[str, Any]:
    """A JSON object, or {} for null; anything else is malformed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedError(f"{what} is not an object")
    return value


def required_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedError(f"missing {key}")
    return value


def optional_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _labels(metadata: Mapping[str, Any], keys: frozenset[str]) -> Mapping[str, str]:
    labels = as_object(metadata.get("labels"), "metadata.labels")
    kept: dict[str, str] = {}
    for key in keys:  # the configured keys are few; a pod's labels may be many
        value = labels.get(key)
        if isinstance(value, str):
            kept[key] = value[:MAX_LABEL_VALUE]
    return MappingProxyType(kept)


def _annotations(metadata: Mapping[str, Any]) -> Mapping[str, str]:
    annotations = as_object(metadata.get("annotations"), "metadata.annotations")
    keys = sorted(
        k
        for k, v in annotations.items()
        if isinstance(k, str) and k.startswith(ANNOTATION_PREFIX) and isinstance(v, str)
    )
    # The same few keys on every pod: interned, one copy is kept, not one per pod.
    return MappingProxyType(
        {sys.intern(k): annotations[k][:MAX_ANNOTATION_VALUE] for k in keys[:MAX_ANNOTATIONS]}
    )


def _container_ports(spec: Mapping[str, Any]) -> tuple[Mapping[str, int], tuple[int, ...]]:
    """The named container ports, and every TCP port declared (for engine discovery)."""
    ports: dict[str, int] = {}
    declared: dict[int, None] = {}
    # Sidecars (init containers that keep running) can serve metrics too; a regular
    # container's name wins a clash.
    for section in ("initContainers", "containers"):
        containers = spec.get(section)
        if not isinstance(containers, list):
            continue
        for container in containers:
            if not isinstance(container, dict) or not isinstance(container.get("ports"), list):
                continue
            for port in container["ports"]:
                if not isinstance(port, dict):
                    continue
                name, number = port.get("name"), port.get("containerPort")
                if not _port_number(number):
                    continue
                if port.get("protocol", "TCP") == "TCP" and len(declared) < MAX_PORTS:
                    declared[number] = None
                if isinstance(name, str) and name and (name in ports or len(ports) < MAX_PORTS):
                    ports[sys.intern(name[:MAX_LABEL_VALUE])] = number  # "http", "metrics"
    return MappingProxyType(ports), tuple(declared)


def _port_number(value: object) -> TypeGuard[int]:
    """A container port number as the API server admits it: an integer, 1-65535."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _timestamp(value: object) -> float | None:
    """RFC 3339 (as the API server writes it) to unix seconds; None when absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def pod_meta(obj: Mapping[str, Any], label_keys: frozenset[str]) -> PodMeta:
    """What the exporter keeps of one pod object; raises ValueError when it is malformed."""
    metadata = as_object(obj.get("metadata"), "metadata")
    spec = as_object(obj.get("spec"), "spec")
    status = as_object(obj.get("status"), "status")
    named_ports, declared_ports = _container_ports(spec)
    return PodMeta(
        uid=required_str(metadata, "uid"),
        namespace=sys.intern(required_str(metadata, "namespace")),
        name=required_str(metadata, "name"),
        labels=_labels(metadata, label_keys),
        annotations=_annotations(metadata),
        container_ports=named_ports,
        phase=sys.intern(optional_str(status, "phase")[:MAX_LABEL_VALUE]),
        pod_ip=optional_str(status, "podIP")[:64],
        start_time=_timestamp(status.get("startTime")),
        declared_ports=declared_ports,
    )


def namespace_meta(obj: Mapping[str, Any], label_keys: frozenset[str]) -> NamespaceMeta:
    """What the exporter keeps of one namespace object; raises ValueError when malformed."""
    metadata = as_object(obj.get("metadata"), "metadata")
    return NamespaceMeta(
        name=sys.intern(required_str(metadata, "name")),
        labels=_labels(metadata, label_keys),
    )


def pod_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of a pod object."""
    metadata = as_object(obj.get("metadata"), "metadata")
    return (required_str(metadata, "namespace"), required_str(metadata, "name"))


def namespace_key(obj: Mapping[str, Any]) -> str:
    return required_str(as_object(obj.get("metadata"), "metadata"), "name")
