"""The series every alert's promtool test is built from: the job's and the cluster's
labels, and a fleet of two GPUs on one node with the pods that hold their devices."""

from __future__ import annotations

import re

from mixin.alerting.model import Labels
from mixin.config import Config


def job_labels(c: Config) -> Labels:
    labels = dict(re.findall(r'(\w+)="([^"]*)"', c.job_selector))
    if re.sub(r'\s*(\w+)="[^"]*"\s*,?', "", c.job_selector):
        raise ValueError(f'job_selector {c.job_selector!r}: the tests need name="value" only')
    return labels


CLUSTER = "c1"


def series(c: Config, metric: str, **labels: str) -> str:
    base = {**job_labels(c), **({c.cluster_label: CLUSTER} if c.cluster_label else {})}
    inner = ", ".join(f'{k}="{v}"' for k, v in {**base, **labels}.items())
    return f"{metric}{{{inner}}}"


def labels(c: Config, **labels: str) -> Labels:
    """Expected labels: the cluster's (kept by every aggregation) and these."""
    return {**({c.cluster_label: CLUSTER} if c.cluster_label else {}), **labels}


def labels_job(c: Config, **extra: str) -> Labels:
    """Expected labels of an alert that does not aggregate: the job's too."""
    return labels(c, **{**job_labels(c), **extra})


# Two GPUs on node n1: GPU-0 in MIG mode (MIG-a held by research/r1, MIG-b by search/s1),
# GPU-1 whole and time-sliced between chat/c1 and ads/a1.
HOLDERS = {
    "MIG-a": [("research", "r1", "research")],
    "MIG-b": [("search", "s1", "search")],
    "GPU-1": [("chat", "c1", "chat"), ("ads", "a1", "ads")],
}
DEVICES = {"MIG-a": "GPU-0", "MIG-b": "GPU-0", "GPU-1": "GPU-1"}
PODS_ON = {
    "GPU-0": "research/r1 (research), search/s1 (search)",
    "GPU-1": "ads/a1 (ads), chat/c1 (chat)",
}


def fleet(c: Config, values: str = "1x120") -> dict[str, str]:
    out = {}
    for gpu in ("GPU-0", "GPU-1"):
        mig = "enabled" if gpu == "GPU-0" else "disabled"
        out[series(c, "gpuwork_gpu_info", gpu_uuid=gpu, node="n1", mig_mode=mig)] = "1x120"
    for device, gpu in DEVICES.items():
        out[series(c, "gpuwork_device_info", device=device, gpu_uuid=gpu, node="n1")] = values
        for namespace, pod, tenant in HOLDERS[device]:
            share = "1" if len(HOLDERS[device]) == 1 else "0.5"
            key = series(c, "gpuwork_device_allocation", device=device, namespace=namespace,
                          pod=pod, container="main", tenant=tenant)  # fmt: skip
            out[key] = values.replace("1x", f"{share}x", 1) if values.startswith("1x") else values
    return out
