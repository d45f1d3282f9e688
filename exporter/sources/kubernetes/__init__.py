"""The Kubernetes API: this node's pods and the namespaces, kept by LIST + WATCH.

A thin client on aiohttp. We deliberately do not use the `kubernetes` client package:
importing it alone costs tens of MB of RSS (generated models for every API group), and
the exporter runs in an 80 MB memory budget on every GPU node. The exporter needs two
read-only watches and a handful of fields, which plain HTTP and JSON do well.

- `api`: where the API server is, its token, what its error answers mean
- `objects`: pod and namespace JSON into `PodMeta` and `NamespaceMeta` (pure)
- `store`: one watched resource and the objects held for it
- `stream`: watch lines, and LIST answers decoded item by item as they arrive
- `health`: error counts and the log lines about failing and recovering
- `watcher`: `ClusterWatcher`, the LIST+WATCH loops and the view they keep
"""
