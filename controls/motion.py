"""Recorded motions: landmark sequences that drive an avatar without a webcam.

A motion file is an ``.npz`` with ``landmarks`` (F, 33, 4) [x, y, z, visibility] in normalised
square-image coordinates and ``fps``; it loops seamlessly when its last frame meets its first.
The shipped ones (``assets/examples/motions/``) are motion-capture clips projected to the 33
landmarks (``python -m app.examples``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from controls.landmarks import sanitize
from controls.pose import NUM_LANDMARKS


class RecordedMotion:
    """A looping landmark sequence."""

    def __init__(self, landmarks: np.ndarray, fps: float = 24.0, name: str = "motion"):
        lm = np.asarray(landmarks, dtype=np.float32)
        if lm.ndim != 3 or lm.shape[1:] != (NUM_LANDMARKS, 4) or len(lm) < 1:
            raise ValueError(f"a motion needs landmarks of shape (F, 33, 4), got {lm.shape}")
        self.landmarks = np.stack([sanitize(f) for f in lm])
        self.fps = float(fps) if np.isfinite(fps) and fps > 0 else 24.0
        self.name = name

    def __len__(self) -> int:
        return len(self.landmarks)

    @property
    def seconds(self) -> float:
        return len(self) / self.fps

    def frames(self, start: int, n: int) -> np.ndarray:
        """(n, 33, 4) frames start .. start + n - 1, wrapping around."""
        idx = (int(start) + np.arange(n)) % len(self)
        return self.landmarks[idx].copy()

    @classmethod
    def load(cls, path: str | Path) -> "RecordedMotion":
        p = Path(path)
        with np.load(p, allow_pickle=False) as z:
            return cls(z["landmarks"], float(z["fps"]) if "fps" in z else 24.0, p.stem)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, landmarks=self.landmarks.astype(np.float16), fps=np.float32(self.fps))


def list_motions(directory: str | Path) -> dict[str, Path]:
    """name -> file of every motion in a folder (sorted; none if the folder is missing)."""
    d = Path(directory)
    return {p.stem: p for p in sorted(d.glob("*.npz"))} if d.is_dir() else {}
