"""Benchmarks: one module each, run from the repository root (`python -m benchmarks.NAME --help`); see harness.py."""
