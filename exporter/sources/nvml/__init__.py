"""NVML: every GPU and MIG instance on the node."""
