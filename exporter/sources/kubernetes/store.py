"""One watched resource (pods of this node, or namespaces): what to ask for, and what is held.

`node_pods` and `namespaces` say what the exporter watches. A `Resource` is the store
one LIST+WATCH loop keeps: converted objects by key, the
resourceVersion to go on from, and whether the loop has synced or is failing. A re-list
replaces the store whole; a watch event changes one entry. Every change says whether
anything changed, so the watcher rebuilds its view only then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from exporter.model import NamespaceMeta, PodMeta
from exporter.sources.kubernetes.errors import MalformedError
from exporter.sources.kubernetes.objects import namespace_key, namespace_meta, pod_key, pod_meta

K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True)
class Resource(Generic[K, V]):
    """One LIST+WATCH loop's target and its state."""

    name: str  # "pods", "namespaces": used in logs and requests
    path: str
    params: Mapping[str, str]
    key: Callable[[Mapping[str, Any]], K]
    convert: Callable[[Mapping[str, Any]], tuple[K, V]]
    store: dict[K, V] = field(default_factory=dict)
    peak: int = 0  # the store's largest size since it was last rebuilt
    resource_version: str = ""
    synced: bool = False
    failure: str | None = None  # the kind of the last attempt's failure; None when it worked

    def replace(self, items: dict[K, V]) -> bool:
        """Swaps in a fresh store (a re-list); True when its contents changed."""
        changed = items != self.store
        self.store, self.peak = items, len(items)
        return changed

    def apply(self, kind: object, obj: Mapping[str, Any]) -> bool:
        """Applies one watch event of type `kind`; True when the store changed.

        Raises ValueError for an unknown type or an object that cannot be converted."""
        if kind in ("ADDED", "MODIFIED"):
            key, value = self.convert(obj)
            return self.put(key, value)
        if kind == "DELETED":
            return self.remove(self.key(obj))
        if kind == "BOOKMARK":
            return False
        raise MalformedError(f"unknown event type {kind!r}")

    def put(self, key: K, value: V) -> bool:
        if self.store.get(key) == value:
            return False
        self.store[key] = value
        self.peak = max(self.peak, len(self.store))
        return True

    def remove(self, key: K) -> bool:
        if self.store.pop(key, None) is None:
            return False
        # A dict never gives back its table: after a burst of pods is gone, copy it.
        if not self.store:
            self.store, self.peak = {}, 0
        elif self.peak >= 64 and len(self.store) * 4 < self.peak:
            self.store = dict(self.store)
            self.peak = len(self.store)
        return True


def node_pods(node: str, label_keys: frozenset[str]) -> Resource[tuple[str, str], PodMeta]:
    """The pods bound to `node`: a field selector, never a cluster-wide pod LIST."""

    def convert(obj: Mapping[str, Any]) -> tuple[tuple[str, str], PodMeta]:
        pod = pod_meta(obj, label_keys)
        return (pod.namespace, pod.name), pod

    params = {"fieldSelector": f"spec.nodeName={node}"}
    return Resource("pods", "/api/v1/pods", params, pod_key, convert)


def namespaces(label_keys: frozenset[str]) -> Resource[str, NamespaceMeta]:
    """Every namespace: a tenant may be named by its namespace's labels."""

    def convert(obj: Mapping[str, Any]) -> tuple[str, NamespaceMeta]:
        namespace = namespace_meta(obj, label_keys)
        return namespace.name, namespace

    return Resource("namespaces", "/api/v1/namespaces", {}, namespace_key, convert)
