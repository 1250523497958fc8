"""Benchmarks for the risk engine: quality against baselines, and speed (scripts, not tests)."""
