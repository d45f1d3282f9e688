"""The Kubernetes API: this node's pods and the namespaces, kept by LIST + WATCH."""
