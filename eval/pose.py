"""AKD: how well a pose-driven video follows its driving landmarks, measured with MediaPipe.

MediaPipe Pose (the app's own detector, tracking mode, one detector per video) runs on every
frame of a video; on each frame where the driving landmarks show a person, the average
distance between detected and driving body landmarks (11-32, those visible in the driving
pose) is divided by the driving torso length (shoulder centre to hip centre) — the average
keypoint distance (AKD) in torso lengths, as in the talking-head/body reenactment literature
(FOMM, LivePortrait). Frames where MediaPipe finds nobody count in ``missing`` instead. The
same estimator on the ground-truth render is the floor: MediaPipe's own error on these people.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from controls.detector import PoseDetector

BODY = np.arange(11, 33)


def torso_length(lm: np.ndarray) -> float:
    """Shoulder centre to hip centre of (33, 4) landmarks, in normalised image units."""
    return float(np.linalg.norm(lm[11:13, :2].mean(0) - lm[23:25, :2].mean(0)))


def pose_errors(frames: np.ndarray, landmarks: np.ndarray, detect_size: int = 256,
                min_visibility: float = 0.5) -> dict:
    """frames (F, H, W, 3) uint8, landmarks (F, 33, 4) the driving pose of each frame ->
    {"akd": mean error in torso lengths over frames where both show a person (nan if none),
    "missing": share of frames showing a person where MediaPipe found nobody, "frames": count}."""
    errors, missing, counted = [], 0, 0
    with PoseDetector(model_complexity=1, tracking=True) as det:
        for frame, gt in zip(frames, landmarks):
            if frame.shape[0] != detect_size:
                frame = np.asarray(Image.fromarray(frame).resize((detect_size, detect_size), Image.BICUBIC))
            found = det.detect(frame)
            body = BODY[gt[BODY, 3] > min_visibility]
            torso = torso_length(gt)
            if len(body) < 4 or torso < 1e-3:
                continue                                    # no person in the driving pose
            counted += 1
            if found is None:
                missing += 1
                continue
            errors.append(float(np.linalg.norm(found[body, :2] - gt[body, :2], axis=1).mean()) / torso)
    return {"akd": float(np.mean(errors)) if errors else float("nan"),
            "missing": missing / counted if counted else float("nan"), "frames": counted}
