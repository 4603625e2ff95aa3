"""Synthetic video worlds with exact ground truth: renderers, trajectories, shards, dataset builder."""
