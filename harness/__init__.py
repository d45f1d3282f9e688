"""Real programs that tests and benchmarks run beside the exporter; not part of the product."""
