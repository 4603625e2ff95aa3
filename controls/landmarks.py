"""The 33-landmark body layout of MediaPipe Pose: names, skeleton edges, a neutral pose, geometry, drawing.

A landmark array is (33, 4) float32 [x, y, z, visibility] with x, y in normalised image
coordinates (x right, y down, 0..1 across the image), the layout of ``controls/pose.py``.
"""
from __future__ import annotations

import numpy as np

from controls.pose import NUM_LANDMARKS

NAMES = ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
         "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
         "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
         "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
         "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
         "left_foot_index", "right_foot_index")
INDEX = {n: i for i, n in enumerate(NAMES)}
# skeleton edges (MediaPipe's POSE_CONNECTIONS)
CONNECTIONS = ((0, 1), (0, 4), (1, 2), (2, 3), (3, 7), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13),
               (11, 23), (12, 14), (12, 24), (13, 15), (14, 16), (15, 17), (15, 19), (15, 21), (16, 18),
               (16, 20), (16, 22), (17, 19), (18, 20), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
               (27, 29), (27, 31), (28, 30), (28, 32), (29, 31), (30, 32))
# index of each landmark's mirror twin (left <-> right)
MIRROR = tuple(INDEX[n.replace("left", "@").replace("right", "left").replace("@", "right")] for n in NAMES)
assert len(NAMES) == NUM_LANDMARKS

# A person standing upright facing the camera, arms relaxed at the sides, filling most of the
# frame height (the subject's left side on the image's right, as MediaPipe reports it).
_NEUTRAL_XY = {
    "nose": (0.500, 0.160), "left_eye_inner": (0.512, 0.145), "left_eye": (0.522, 0.144),
    "left_eye_outer": (0.531, 0.145), "right_eye_inner": (0.488, 0.145), "right_eye": (0.478, 0.144),
    "right_eye_outer": (0.469, 0.145), "left_ear": (0.545, 0.155), "right_ear": (0.455, 0.155),
    "mouth_left": (0.512, 0.180), "mouth_right": (0.488, 0.180),
    "left_shoulder": (0.590, 0.270), "right_shoulder": (0.410, 0.270),
    "left_elbow": (0.620, 0.410), "right_elbow": (0.380, 0.410),
    "left_wrist": (0.625, 0.535), "right_wrist": (0.375, 0.535),
    "left_pinky": (0.628, 0.565), "right_pinky": (0.372, 0.565),
    "left_index": (0.622, 0.570), "right_index": (0.378, 0.570),
    "left_thumb": (0.612, 0.555), "right_thumb": (0.388, 0.555),
    "left_hip": (0.555, 0.540), "right_hip": (0.445, 0.540),
    "left_knee": (0.560, 0.710), "right_knee": (0.440, 0.710),
    "left_ankle": (0.562, 0.870), "right_ankle": (0.438, 0.870),
    "left_heel": (0.560, 0.890), "right_heel": (0.440, 0.890),
    "left_foot_index": (0.575, 0.905), "right_foot_index": (0.425, 0.905),
}


def neutral_pose() -> np.ndarray:
    """(33, 4) float32: the pose an avatar relaxes to when nobody is in view."""
    out = np.zeros((NUM_LANDMARKS, 4), np.float32)
    for name, (x, y) in _NEUTRAL_XY.items():
        out[INDEX[name]] = (x, y, 0.0, 1.0)
    return out


def sanitize(landmarks: np.ndarray) -> np.ndarray:
    """Any (33, >=3) array -> finite (33, 4) float32; missing visibility = 1, non-finite -> invisible."""
    a = np.asarray(landmarks, dtype=np.float32)
    if a.shape[0] != NUM_LANDMARKS or a.ndim != 2 or a.shape[1] < 3:
        raise ValueError(f"landmarks must have shape (33, 4), got {a.shape}")
    out = np.ones((NUM_LANDMARKS, 4), np.float32)
    out[:, : min(4, a.shape[1])] = a[:, :4]
    bad = ~np.isfinite(out).all(1)
    out[bad] = 0.0
    out[:, :2] = np.clip(out[:, :2], -1.0, 2.0)    # a little outside the frame is real; far outside is not
    out[:, 3] = np.clip(out[:, 3], 0.0, 1.0)
    return out


def anyone_visible(landmarks: np.ndarray) -> bool:
    """Whether a sanitised (33, 4) pose has a visible landmark; one with none is nobody in view."""
    return bool((landmarks[:, 3] > 0).any())


def to_square(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Landmarks normalised to a (height, width) frame -> normalised to its centre square crop,
    the crop ``model.engine.prepare_image`` takes, so webcam poses land where the model draws."""
    out = np.array(landmarks, dtype=np.float32, copy=True)
    s = float(min(width, height))
    out[:, 0] = (out[:, 0] * width - (width - s) / 2.0) / s
    out[:, 1] = (out[:, 1] * height - (height - s) / 2.0) / s
    return out


def scale_about(landmarks: np.ndarray, scale: float, centre, to) -> np.ndarray:
    """Landmarks (..., 33, 4) scaled by ``scale`` about the point ``centre`` and moved so that it
    lands on ``to``: the same person nearer the camera or elsewhere in the frame."""
    out = np.array(landmarks, dtype=np.float32, copy=True)
    out[..., :2] = (out[..., :2] - np.asarray(centre, np.float32)) * scale + np.asarray(to, np.float32)
    return out


def as_detected(landmarks: np.ndarray, visibility: float = 0.05) -> np.ndarray:
    """Landmarks (..., 33, 4) as a detector reports them: those outside the frame barely visible."""
    out = np.array(landmarks, dtype=np.float32, copy=True)
    outside = ((out[..., :2] < 0) | (out[..., :2] > 1)).any(-1)
    out[..., 3] = np.where(outside, np.minimum(out[..., 3], visibility), out[..., 3])
    return out


def mirror(landmarks: np.ndarray) -> np.ndarray:
    """The pose seen in a mirror: x flipped and left/right names swapped (what MediaPipe reports on a flipped image)."""
    out = np.array(landmarks, dtype=np.float32, copy=True)[list(MIRROR)]
    out[:, 0] = 1.0 - out[:, 0]
    return out


def draw_skeleton(image: np.ndarray, landmarks: np.ndarray | None, min_visibility: float = 0.3,
                  color: tuple[int, int, int] = (0, 255, 128), thickness: int | None = None) -> np.ndarray:
    """A copy of an RGB uint8 image with the skeleton drawn on it (landmarks normalised to it)."""
    import cv2  # opencv ships with mediapipe (opencv-contrib-python)

    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if landmarks is None:
        return out
    H, W = out.shape[:2]
    t = thickness or max(1, round(min(H, W) / 120))
    lm = np.asarray(landmarks, dtype=np.float32)
    ok = np.isfinite(lm[:, :2]).all(1) & (lm[:, 3] >= min_visibility)
    pts = np.round(np.nan_to_num(lm[:, :2]) * [W, H]).clip(-10 * W, 10 * W).astype(np.int32)
    for a, b in CONNECTIONS:
        if ok[a] and ok[b]:
            cv2.line(out, tuple(map(int, pts[a])), tuple(map(int, pts[b])), color, t, cv2.LINE_AA)
    for i in np.flatnonzero(ok):
        side = (255, 160, 0) if "left" in NAMES[i] else (0, 160, 255) if "right" in NAMES[i] else (255, 255, 255)
        cv2.circle(out, tuple(map(int, pts[i])), t + 1, side, -1, cv2.LINE_AA)
    return out
