"""The clip record every renderer returns and every shard stores."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Clip:
    """A rendered clip with its exact ground truth.

    frames:    (F, H, W, 3) uint8 RGB.
    controls:  (F, Dc) float32. Camera sources: controls[f] is what moved frame f-1 to frame f
               (row 0 is zero), Dc = controls.camera.CONTROL_DIM. Avatar: controls[f] is the pose
               frame f shows, its landmarks flattened (Dc = 33 * 4).
    K:         (F, 3, 3) float32 intrinsics per frame (camera sources), else None.
    w2c:       (F, 4, 4) float32 world-to-camera per frame (camera sources), else None.
    landmarks: (F, 33, 4) float32 MediaPipe-format [x, y (normalised image), z, visibility]
               (avatar), else None.
    mask:      (F, H, W) uint8 person mask (avatar), else None.
    meta:      JSON-serialisable facts (source, seed, kind, palette, ...).
    """
    frames: np.ndarray
    controls: np.ndarray
    K: Optional[np.ndarray] = None
    w2c: Optional[np.ndarray] = None
    landmarks: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        F = self.frames.shape[0]
        assert self.frames.dtype == np.uint8 and self.frames.ndim == 4 and self.frames.shape[-1] == 3
        assert self.controls.shape[0] == F, (self.controls.shape, F)
        for name in ("K", "w2c", "landmarks", "mask"):
            a = getattr(self, name)
            assert a is None or a.shape[0] == F, (name, a.shape, F)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])
