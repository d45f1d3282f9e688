"""Inference engines: where they serve their metrics, how to read them, what they mean."""
