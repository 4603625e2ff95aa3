"""Shipped models: found by scanning an assets folder, loaded once, shared by every session's engine.

A model is a folder ``<assets>/<name>/`` with ``autoencoder/`` and ``generator/`` (config.json +
model.safetensors each). The generator's ``control`` decides the mode ("camera" -> world,
"pose" -> avatar); ``latent_size * spatial factor`` is the resolution. Weights are read-only at
run time, so one copy serves all sessions; each session gets its own ``StreamingEngine`` (KV
cache, decoder state, noise generator) around them.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from model.autoencoder import VideoAutoencoder
from model.dit import VideoDiT
from model.engine import StreamingEngine, check_pair
from model.io import ModelFileError
from model.runtime import compute_dtype, precision_info

log = logging.getLogger(__name__)

MODES = {"camera": "world", "pose": "avatar"}      # generator control -> app mode
DEFAULT_ASSETS = Path(__file__).resolve().parent.parent / "assets"


class ModelLoadError(ModelFileError):
    """An installed model whose files cannot be loaded; the message names it (never its path)."""


@dataclass(frozen=True)
class ModelInfo:
    """One shipped model (``path`` is for loading only; it never reaches the page)."""
    name: str
    mode: str            # world | avatar
    resolution: int
    path: Path

    @property
    def label(self) -> str:
        return f"{self.name} · {self.resolution} px"


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def discover(assets: str | Path) -> list[ModelInfo]:
    """Every loadable-looking model under ``assets`` (sorted by mode, resolution, name).
    Folders without both parts, or with unreadable or unsupported configs, are skipped."""
    root = Path(assets)
    found = []
    if not root.is_dir():
        return found
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        g, a = d / "generator" / "config.json", d / "autoencoder" / "config.json"
        if not (g.is_file() and a.is_file()):
            continue
        try:
            gc, ac = _read(g), _read(a)
            mode = MODES.get(gc.get("control", "camera"))
            size = int(gc.get("latent_size", 16)) * 2 ** (len(ac.get("enc_widths", (32, 64, 128, 256))) - 1)
        except (OSError, ValueError, TypeError) as e:
            log.warning("skipping model folder %s: %s", d.name, e)
            continue
        if mode is None:
            log.warning("skipping model folder %s: control %r has no app mode", d.name, gc.get("control"))
            continue
        found.append(ModelInfo(d.name, mode, size, d))
    return sorted(found, key=lambda m: (m.mode, m.resolution, m.name))


RECYCLE = ("auto", "latent", "pixels")


class ModelStore:
    """Loads each model once (thread-safe) and hands out fresh engines around the shared weights."""

    def __init__(self, models: list[ModelInfo], dtype: str | torch.dtype = "auto", recycle: str = "auto"):
        """``recycle``: what a generator gets back as its previous frame, ``latent`` (its own last
        latent, as trained), ``pixels`` (the frames shown, encoded again: model/autoencoder.py
        PixelLoop) or ``auto``: pixels for camera models (a still world holds for the minute instead
        of collapsing; photos score better on every metric), latent for pose models (docs/training.md,
        "The reference decoder")."""
        if recycle not in RECYCLE:
            raise ValueError(f"recycle must be one of {RECYCLE}, got {recycle!r}")
        self.models = {m.label: m for m in models}
        self.dtype = compute_dtype(dtype)
        self.recycle = recycle
        info = precision_info(self.dtype)
        self.precision = f"{info['dtype']} on {info['cpu_capability']}"   # the readout's note, e.g. "float32 on AVX2"
        self._loaded: dict[str, tuple[VideoAutoencoder, VideoDiT]] = {}
        self._lock = threading.Lock()

    def for_mode(self, mode: str) -> list[ModelInfo]:
        return [m for m in self.models.values() if m.mode == mode]

    def named(self, name: str) -> ModelInfo | None:
        """The model called ``name`` (its folder name, e.g. "world-mix") or labelled so; None if none is."""
        return next((m for m in self.models.values() if name in (m.name, m.label)), None)

    def get(self, label: str | None, mode: str) -> ModelInfo | None:
        """The model with this label, or the first one of ``mode`` when the label is unknown."""
        m = self.models.get(label or "")
        if m is not None and m.mode == mode:
            return m
        options = self.for_mode(mode)
        return options[0] if options else None

    def engine(self, info: ModelInfo) -> StreamingEngine:
        with self._lock:
            if info.label not in self._loaded:
                try:
                    ae = VideoAutoencoder.from_pretrained(info.path / "autoencoder")
                    dit = VideoDiT.from_pretrained(info.path / "generator")
                except ModelFileError as e:
                    raise ModelLoadError(f"The model '{info.name}' could not be loaded: {e}.") from None
                try:
                    check_pair(ae, dit)
                except ValueError as e:
                    raise ModelLoadError(f"The model '{info.name}' could not be loaded: {e}.") from None
                self._loaded[info.label] = (ae, dit)
            ae, dit = self._loaded[info.label]
            # StreamingEngine moves/casts the shared modules in place; same device and dtype every time
            pixels = self.recycle == "pixels" or (self.recycle == "auto" and dit.config.control == "camera")
            return StreamingEngine(ae, dit, dtype=self.dtype, reencode=pixels)
