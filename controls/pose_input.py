"""The pose control model: webcam detections or a recorded motion -> per-frame landmark controls.

    pose = PoseInput()
    pose.push(detector.detect(frame), t)        # whenever a webcam frame arrives (None: nobody)
    controls = pose.next_frames(4, t)           # (4, 33, 4) for the next latent frame

Detections are smoothed (``LandmarkSmoother``: One Euro filter, hold then relax to neutral
when nobody is in view). Webcam frames come at their own rate, the engine asks for 4 frames at
a time: ``next_frames`` spreads the move from the last pose it emitted to the newest one over
those frames, so the avatar moves every frame and ends each chunk on the newest pose. When the
webcam goes quiet (no frames for ``stale_s``), that counts as nobody in view. A recorded motion,
once set, replaces the webcam and advances one motion frame per video frame.
"""
from __future__ import annotations

import threading

import numpy as np

from controls.motion import RecordedMotion
from controls.pose import NUM_LANDMARKS
from controls.smoothing import LandmarkSmoother, SmootherConfig


class PoseInput:
    """Latest body pose of one stream and the per-frame controls made from it; thread-safe."""

    def __init__(self, smoother: SmootherConfig | None = None, stale_s: float = 0.3):
        self.smoother = LandmarkSmoother(smoother)
        self.stale_s = stale_s
        self._lock = threading.Lock()
        self.motion: RecordedMotion | None = None
        self.motion_pos = 0
        self.reset()

    def reset(self) -> None:
        """Back to the neutral pose (the motion, if any, restarts)."""
        with self._lock:
            self.smoother.reset()
            self.emitted = self.smoother.pose.copy()
            self.last_push: float | None = None
            self.motion_pos = 0
            self.detected = False

    def set_motion(self, motion: RecordedMotion | None) -> None:
        """Drive from a recorded motion (None: back to the webcam)."""
        with self._lock:
            self.motion = motion
            self.motion_pos = 0

    def push(self, landmarks: np.ndarray | None, t: float) -> np.ndarray:
        """One webcam detection at time t (s); returns the smoothed pose now in use."""
        with self._lock:
            self.last_push = t
            pose = self.smoother.update(landmarks, t)
            self.detected = self.smoother.status == "tracking"    # a pose with nothing visible is nobody
            return pose

    @property
    def status(self) -> str:
        if self.motion is not None:
            return f"playing {self.motion.name}"
        return self.smoother.status

    def current(self) -> np.ndarray:
        """(33, 4) the pose the avatar is heading to."""
        with self._lock:
            if self.motion is not None:
                return self.motion.frames(self.motion_pos, 1)[0]
            return self.smoother.pose.copy()

    def next_frames(self, n: int, t: float) -> np.ndarray:
        """(n, 33, 4) float32 landmarks for the next n video frames at time t (s)."""
        with self._lock:
            if self.motion is not None:
                out = self.motion.frames(self.motion_pos, n)
                self.motion_pos = (self.motion_pos + n) % len(self.motion)
                self.emitted = out[-1].copy()
                return out
            if self.last_push is None or t - self.last_push > self.stale_s:
                self.smoother.update(None, t)          # webcam quiet: nobody in view
                self.detected = False
            goal = self.smoother.pose
            w = (np.arange(1, n + 1, dtype=np.float32) / n)[:, None, None]
            out = (1.0 - w) * self.emitted[None] + w * goal[None]      # (n, 33, 4)
            self.emitted = goal.copy()
            return out.astype(np.float32).reshape(n, NUM_LANDMARKS, 4)
