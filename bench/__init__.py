"""Benchmarks at fleet scale, measured against the floor (see bench/RESULTS.md)."""
