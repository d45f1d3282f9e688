"""gpuwork: a GPU useful-work exporter for multi-tenant Kubernetes GPU nodes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gpuwork")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
