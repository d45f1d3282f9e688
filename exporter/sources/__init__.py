"""Where the exporter reads from: NVML, the kubelet, the Kubernetes API, /proc and the
inference engines, each behind one thin adapter with the `Source` shape."""
