"""Evaluation: baselines, metrics and reports on held-out ground truth (python -m eval)."""
