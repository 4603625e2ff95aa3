"""Camera motion recovered from video with OpenCV, against the commanded motion (RotErr, TransErr).

Between frames a and b (a few frames apart) we track corners (KLT), fit a homography with RANSAC
and read the rotation off it (R ~ K^-1 H K, projected onto SO(3): exact for rotation and distant
scenery, which dominate the world clips), and fit an essential matrix for the direction of
translation. The errors against the true relative pose are:
- RotErr: geodesic angle in degrees between the estimated and the true relative rotation;
- TransErr: distance between the unit translation directions (0..2), only where the camera
  moved more than ``min_move`` world units (direction is undefined otherwise).
The same estimator run on the ground-truth frames gives each metric's floor.
"""
from __future__ import annotations

import cv2
import numpy as np


def _so3(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    R = U @ Vt
    if np.linalg.det(R) < 0:
        R = U @ np.diag([1, 1, -1]) @ Vt
    return R


def rotation_angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0))))


def estimate_motion(a: np.ndarray, b: np.ndarray, K: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(R, t_dir) taking camera-a coordinates to camera-b coordinates, from two uint8 RGB frames;
    None where there is too little texture to tell."""
    ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    pa = cv2.goodFeaturesToTrack(ga, maxCorners=300, qualityLevel=0.005, minDistance=3, blockSize=5)
    if pa is None or len(pa) < 12:
        return None, None
    pb, st, _ = cv2.calcOpticalFlowPyrLK(ga, gb, pa, None, winSize=(15, 15), maxLevel=3)
    ok = st[:, 0] == 1
    pa, pb = pa[ok, 0], pb[ok, 0]
    if len(pa) < 12:
        return None, None
    # our K has pixel centres at i + 0.5; OpenCV's pixel i sits at coordinate i
    Kc = K.astype(np.float64).copy()
    Kc[:2, 2] -= 0.5
    H, inl = cv2.findHomography(pa, pb, cv2.RANSAC, 1.5)
    R = None
    if H is not None and inl is not None and inl.sum() >= 10:
        M = np.linalg.inv(Kc) @ H @ Kc
        R = _so3(M / np.cbrt(np.linalg.det(M)))
    t = None
    E, inl = cv2.findEssentialMat(pa, pb, Kc, cv2.RANSAC, 0.999, 1.0)
    if E is not None and E.shape == (3, 3) and inl is not None and inl.sum() >= 12:
        _, _, tt, _ = cv2.recoverPose(E, pa, pb, Kc, mask=inl)
        t = tt[:, 0] / max(np.linalg.norm(tt), 1e-9)
    return R, t


def camera_errors(frames: np.ndarray, K: np.ndarray, w2c: np.ndarray, stride: int = 4,
                  min_move: float = 0.5) -> dict:
    """Mean RotErr (degrees) and TransErr over frame pairs (f, f + stride) of a video whose
    commanded cameras are K (F, 3, 3), w2c (F, 4, 4); pairs the estimator cannot read count
    as a miss (reported as ``miss_rate``), not as an error."""
    rot, trans, miss = [], [], 0
    for f in range(0, len(frames) - stride, stride):
        rel = w2c[f + stride].astype(np.float64) @ np.linalg.inv(w2c[f].astype(np.float64))
        R_true, t_true = rel[:3, :3], rel[:3, 3]
        R, t = estimate_motion(frames[f], frames[f + stride], K[f])
        if R is None:
            miss += 1
            continue
        rot.append(rotation_angle_deg(R.T @ R_true))
        move = np.linalg.norm(t_true)
        if t is not None and move > min_move:
            trans.append(float(np.linalg.norm(t - t_true / move)))
    n = max(1, len(range(0, len(frames) - stride, stride)))
    return {"rot_err": float(np.mean(rot)) if rot else float("nan"),
            "trans_err": float(np.mean(trans)) if trans else float("nan"),
            "pairs": n, "miss_rate": miss / n}
