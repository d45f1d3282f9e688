"""Pod and namespace objects into what the exporter keeps (exporter/sources/kubernetes/objects.py).

Pure functions on plain JSON; what a real API server sends is covered by test_watcher.py.
"""

from __future__ import annotations

from exporter.sources.kubernetes.objects import pod_meta


def test_caps_apply_to_values_the_api_server_would_never_send() -> None:
    """Label values over 63 characters: a hostile or broken server; the cap still holds."""
    obj = {
        "metadata": {
            "uid": "u",
            "namespace": "n",
            "name": "p",
            "labels": {"team": "x" * 10_000, **{f"l{i}": "y" for i in range(1000)}},
            "annotations": {"prometheus.io/port": "9" * 10_000},
        },
        "spec": {
            "containers": [{"ports": [{"name": f"p{i}", "containerPort": i} for i in range(1000)]}]
        },
    }
    pod = pod_meta(obj, frozenset({"team"}))
    assert dict(pod.labels) == {"team": "x" * 63}
    assert len(pod.annotations["prometheus.io/port"]) == 253
    assert len(pod.container_ports) == 64
