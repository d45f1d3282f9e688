"""The exposition: metric families from a snapshot, the bodies of /metrics, the HTTP server."""
