"""Body pose from camera frames: an RGB numpy frame in, 33 landmarks out (MediaPipe Pose, offline).

    with PoseDetector() as det:
        lm = det.detect(frame)        # (33, 4) float32 [x, y, z, visibility] or None (nobody)

Two back ends behind one interface: MediaPipe's ``solutions.pose`` (mediapipe <= 0.10.21; ships
its model, so it runs offline; only ``model_complexity=1`` is bundled) and, given a ``.task``
file, the Tasks API ``PoseLandmarker`` (the only one in mediapipe >= 0.10.30, whose wheels ship
no model). One detector per video stream: in tracking mode it follows the person from frame to
frame, which is faster and steadier than detecting afresh.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from controls.pose import NUM_LANDMARKS

MIN_SIDE = 32      # frames smaller than this hold no usable person


class DetectorUnavailable(RuntimeError):
    """MediaPipe (or the requested model) is not installed."""


def as_rgb_frame(frame: np.ndarray | None) -> np.ndarray | None:
    """Any image-like array -> contiguous (H, W, 3) uint8 RGB, or None for nothing usable."""
    if frame is None:
        return None
    a = np.asarray(frame)
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or min(a.shape[:2]) < MIN_SIDE:
        return None
    if a.shape[2] == 1:
        a = np.repeat(a, 3, 2)
    a = a[..., :3]
    if a.dtype != np.uint8:
        f = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        a = np.clip(f * (255.0 if f.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


class PoseDetector:
    """MediaPipe Pose for one video stream (see the module docstring); thread-safe."""

    def __init__(self, model_complexity: int = 1, tracking: bool = True, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, task_model: str | Path | None = None,
                 min_visibility: float = 0.5):
        self.min_visibility = min_visibility
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._last_ms = -1
        try:
            import mediapipe as mp
        except ImportError as e:  # pragma: no cover - depends on the install
            raise DetectorUnavailable("MediaPipe is not installed (pip install mediapipe==0.10.21)") from e
        if task_model is not None:
            self.backend = "tasks"
            vision = mp.tasks.vision
            options = vision.PoseLandmarkerOptions(
                base_options=mp.tasks.BaseOptions(model_asset_path=str(task_model)),
                running_mode=vision.RunningMode.VIDEO if tracking else vision.RunningMode.IMAGE,
                num_poses=1, min_pose_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence)
            self._mp = mp
            self._impl = vision.PoseLandmarker.create_from_options(options)
        else:
            if not hasattr(mp, "solutions") or not hasattr(mp.solutions, "pose"):
                raise DetectorUnavailable("this MediaPipe has no bundled pose model: install mediapipe==0.10.21 "
                                          "or pass task_model= a pose_landmarker .task file")
            self.backend = "solutions"
            self._impl = mp.solutions.pose.Pose(static_image_mode=not tracking, model_complexity=model_complexity,
                                                smooth_landmarks=True, enable_segmentation=False,
                                                min_detection_confidence=min_detection_confidence,
                                                min_tracking_confidence=min_tracking_confidence)
        self.tracking = tracking

    def detect(self, frame: np.ndarray | None) -> np.ndarray | None:
        """(H, W, 3) RGB frame -> (33, 4) float32 landmarks normalised to the frame, or None when no
        person is found (or the frame is empty, tiny or not an image)."""
        rgb = as_rgb_frame(frame)
        if rgb is None:
            return None
        with self._lock:
            if self._impl is None:
                raise RuntimeError("detector is closed")
            if self.backend == "solutions":
                res = self._impl.process(rgb)
                if res.pose_landmarks is None:
                    return None
                pts = res.pose_landmarks.landmark
                lm = np.array([[p.x, p.y, p.z, p.visibility] for p in pts], np.float32)
            else:
                image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
                if self.tracking:
                    # VIDEO mode needs strictly increasing timestamps
                    ms = max(int((time.monotonic() - self._t0) * 1000), self._last_ms + 1)
                    self._last_ms = ms
                    res = self._impl.detect_for_video(image, ms)
                else:
                    res = self._impl.detect(image)
                if not res.pose_landmarks:
                    return None
                lm = np.array([[p.x, p.y, p.z, p.visibility if p.visibility is not None else 1.0]
                               for p in res.pose_landmarks[0]], np.float32)
        if lm.shape != (NUM_LANDMARKS, 4) or not np.isfinite(lm).all():
            return None
        # a "person" none of whose torso is visible is a false detection
        torso = lm[[11, 12, 23, 24], 3]
        if float(torso.max()) < self.min_visibility:
            return None
        return lm

    def close(self) -> None:
        with self._lock:
            if self._impl is not None:
                self._impl.close()
                self._impl = None

    def __enter__(self) -> "PoseDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def find_person(image: np.ndarray, min_side: int = 256) -> np.ndarray | None:
    """The pose of the person in a still image (static mode, upscaled to ``min_side`` when smaller):
    (33, 4) landmarks normalised to the image, or None when nobody is found."""
    rgb = as_rgb_frame(image)
    if rgb is None:
        return None
    if min(rgb.shape[:2]) < min_side:
        from PIL import Image

        s = min_side / min(rgb.shape[:2])
        rgb = np.asarray(Image.fromarray(rgb).resize((round(rgb.shape[1] * s), round(rgb.shape[0] * s)), Image.BICUBIC))
    with PoseDetector(model_complexity=1, tracking=False) as d:
        return d.detect(rgb)
