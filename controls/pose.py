"""Pose control: 33 MediaPipe-format landmarks per video frame -> per-token model features.

A landmark array is (33, 4) float32 [x, y (normalised image coordinates, x right, y down),
z, visibility], the layout of ``mediapipe.solutions.pose``. The model sees, for each token
and each of the 4 video frames of a latent frame, a Gaussian bump of every landmark around
the token centre, weighted by its visibility: spatially aligned, so following a pose is a
local operation for the network.
"""
from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 33
POSE_SIGMA_TOKENS = 0.6   # bump width in tokens


def pose_tokens(landmarks: np.ndarray, grid: int) -> np.ndarray:
    """(n, 33, 4) landmarks of n video frames -> (grid*grid, 33 n) float32 features."""
    lm = np.nan_to_num(np.asarray(landmarks, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    n = lm.shape[0]
    c = (np.arange(grid) + 0.5) / grid
    yy, xx = np.meshgrid(c, c, indexing="ij")
    cx, cy = xx.ravel()[:, None, None], yy.ravel()[:, None, None]       # (T, 1, 1)
    x, y = lm[None, :, :, 0], lm[None, :, :, 1]                           # (1, n, 33)
    vis = np.clip(lm[None, :, :, 3], 0.0, 1.0)
    s = POSE_SIGMA_TOKENS / grid
    bump = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s)) * vis  # (T, n, 33)
    return bump.reshape(grid * grid, n * NUM_LANDMARKS).astype(np.float32)


def clip_pose_tokens(landmarks: np.ndarray, grid: int, fpl: int = 4) -> np.ndarray:
    """(1 + k, T, 33 fpl) pose tokens of a clip of 1 + fpl k frames; latent frame 0 is zeros."""
    F = landmarks.shape[0]
    k = (F - 1) // fpl
    out = np.zeros((1 + k, grid * grid, NUM_LANDMARKS * fpl), np.float32)
    for j in range(1, 1 + k):
        out[j] = pose_tokens(landmarks[1 + fpl * (j - 1):1 + fpl * j], grid)
    return out
