"""Benchmarks for the exporter core; `python -m bench.run_all` runs them all."""
