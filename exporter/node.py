"""Where the sources of one node are: its NVML, kubelet socket, /proc and pod metadata.

`real_node` opens them on a GPU node; the simulator (`simulator.serving`) opens a
simulated node's with the same shape, so everything after this point runs the same
code either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pynvml
import structlog

from exporter.join.tenancy import label_keys
from exporter.settings import Settings
from exporter.sources.kubernetes.api import KubeApi, in_cluster_api
from exporter.sources.kubernetes.source import ClusterSource
from exporter.sources.kubernetes.watcher import ClusterWatcher
from exporter.sources.nvml.library import Nvml

log = structlog.get_logger(component="exporter")


@dataclass(frozen=True, slots=True)
class NodeInputs:
    name: str  # the node's name, a label of the exporter's own series
    nvml: Nvml
    kubelet_socket: str  # empty: attribution off
    proc_root: str
    cluster: ClusterSource | None  # None: tenants come from namespace names only
    gpu_prices: tuple[tuple[str, float], ...]


@contextlib.asynccontextmanager
async def real_node(settings: Settings, stop: asyncio.Event) -> AsyncIterator[NodeInputs]:
    """This node's NVML, kubelet and /proc, and a watch of its pods on the API server
    (running until `stop` or the end of the context)."""
    cluster, tasks = None, []
    api = None
    if not settings.kubelet_socket:
        log.info("attribution off: --kubelet.socket is empty")
    elif settings.kubernetes_api_url:
        api = KubeApi(settings.kubernetes_api_url, settings.kubernetes_token_file,
                      settings.kubernetes_ca_file)  # fmt: skip
    else:
        api = in_cluster_api(os.environ)
        if api is None:
            log.warning("no Kubernetes API (not in a pod, no --kubernetes.api-url): "
                        "tenants come from namespace names only")  # fmt: skip
    if api is not None:
        pod_keys, namespace_keys = label_keys(settings.tenant_rule_list)
        watcher = ClusterWatcher(api, settings.node_name, pod_label_keys=pod_keys,
                                 namespace_label_keys=namespace_keys)  # fmt: skip
        cluster = ClusterSource(watcher.view, lambda: watcher.errors)
        tasks.append(asyncio.create_task(watcher.run(stop), name="kubernetes"))
    try:
        yield NodeInputs(settings.node_name, pynvml, settings.kubelet_socket,
                         settings.proc_root, cluster, settings.gpu_prices)  # fmt: skip
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
