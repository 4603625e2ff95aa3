"""Benchmarks that print JSON (python -m bench.<name> --json)."""
