"""Landmark smoothing: the One Euro filter, and a smoother that knows what to do when nobody is in view.

The One Euro filter (Casiez, Roussel & Vogel, CHI 2012) is a low-pass filter whose cutoff rises
with speed: still poses lose their jitter, fast moves keep little lag.
``LandmarkSmoother`` runs it on the 33 landmarks; when the detector finds nobody it holds the
last pose for ``hold_s`` and then relaxes towards a neutral pose with time constant ``relax_s``,
so the avatar never jumps, freezes on a half-detected pose or collapses to zeros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controls.landmarks import anyone_visible, neutral_pose, sanitize


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass filter with this cutoff (Hz) at time step dt (s)."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Elementwise One Euro filter over arrays of any fixed shape (times in seconds)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("One Euro filter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self, value: np.ndarray | None = None, t: float | None = None) -> None:
        """Forget the past (or start from ``value`` at time ``t``, at rest)."""
        self.x = None if value is None else np.array(value, dtype=np.float64)
        self.dx = None if value is None else np.zeros_like(self.x)
        self.t = t

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.x is None or self.t is None:
            self.reset(x, t)
            return x.copy()
        dt = t - self.t
        if not dt > 0:                      # same or earlier time stamp: nothing new to integrate
            dt = 1e-3
        dx = (x - self.x) / dt
        self.dx = self.dx + _alpha(self.d_cutoff, dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + _alpha(cutoff, dt) * (x - self.x)
        self.t = t
        return self.x.copy()


@dataclass
class SmootherConfig:
    """Landmark smoothing and missing-person behaviour."""
    min_cutoff: float = 1.5      # Hz: jitter of a still pose
    beta: float = 0.3            # cutoff rise per (image widths / s): lag of fast moves
    d_cutoff: float = 1.0
    hold_s: float = 0.5          # keep the last pose this long after the person is lost
    relax_s: float = 0.8         # then approach the neutral pose with this time constant


class LandmarkSmoother:
    """Per-stream landmark smoothing with hold-then-relax when nobody is detected."""

    def __init__(self, config: SmootherConfig | None = None, neutral: np.ndarray | None = None):
        self.config = config or SmootherConfig()
        self.neutral = sanitize(neutral if neutral is not None else neutral_pose())
        self.filter = OneEuroFilter(self.config.min_cutoff, self.config.beta, self.config.d_cutoff)
        self.reset()

    def reset(self) -> None:
        self.filter.reset()
        self.pose = self.neutral.copy()
        self.last_seen: float | None = None
        self.last_t: float | None = None
        self.status = "neutral"       # tracking | holding | relaxing | neutral

    def update(self, landmarks: np.ndarray | None, t: float) -> np.ndarray:
        """Feed one detection (None, or no landmark visible: nobody in view) at time ``t`` (s); returns
        the (33, 4) pose to use."""
        cfg = self.config
        lm = None if landmarks is None else sanitize(landmarks)
        if lm is not None and not anyone_visible(lm):
            lm = None                  # nothing visible (or nothing finite): nobody in view, not a pose at 0, 0
        if lm is not None:
            if self.status != "tracking":
                # (re)appearing: glide from where the avatar is now instead of jumping
                self.filter.reset(self.pose[:, :3], self.last_t if self.last_t is not None else t - 1 / 30)
            xyz = self.filter(lm[:, :3], t)
            self.pose = np.concatenate([xyz, lm[:, 3:]], 1).astype(np.float32)
            self.last_seen = t
            self.status = "tracking"
        else:
            since = math.inf if self.last_seen is None else t - self.last_seen
            if since <= cfg.hold_s:
                self.status = "holding"
            else:
                dt = max(0.0, t - (self.last_t if self.last_t is not None else t))
                w = 1.0 - math.exp(-dt / cfg.relax_s) if cfg.relax_s > 0 else 1.0
                self.pose = (self.pose + w * (self.neutral - self.pose)).astype(np.float32)
                close = float(np.abs(self.pose[:, :2] - self.neutral[:, :2]).max()) < 1e-3
                self.status = "neutral" if close else "relaxing"
                if close:
                    self.pose = self.neutral.copy()
        self.last_t = t
        return self.pose.copy()
