"""The AAPT training recipe: presets, losses, stages and one training loop (python -m train)."""
