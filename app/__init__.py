"""Gradio demo app: layout, wiring and the adapter from UI values to engine calls (the only package that imports gradio)."""
