"""The pose control model: webcam detections or a recorded motion -> per-frame landmark controls.

    pose = PoseInput()
    pose.push(detector.detect(frame), t)        # whenever a webcam frame arrives (None: nobody)
    controls = pose.next_frames(4, t)           # (4, 33, 4) for the next latent frame

Detections are retargeted onto the avatar's own body (``Retargeter``, controls/retarget.py; the
body is ``set_body``'s first-frame pose) and smoothed (``LandmarkSmoother``: One Euro filter, hold
then relax to the avatar's rest pose when nobody is in view). Webcam frames come at their own rate, the engine asks for 4 frames at
a time: ``next_frames`` spreads the move from the last pose it emitted to the newest one over
those frames, so the avatar moves every frame and ends each chunk on the newest pose. When the
webcam goes quiet (no frames for ``stale_s``), that counts as nobody in view. A recorded motion,
once set, replaces the webcam and advances one motion frame per video frame.
"""
from __future__ import annotations

import threading

import numpy as np

from controls.landmarks import neutral_pose, sanitize
from controls.motion import RecordedMotion
from controls.pose import NUM_LANDMARKS
from controls.retarget import MODES, Retargeter, RetargetConfig
from controls.smoothing import LandmarkSmoother, SmootherConfig


class PoseInput:
    """Latest body pose of one stream and the per-frame controls made from it; thread-safe."""

    def __init__(self, smoother: SmootherConfig | None = None, stale_s: float = 0.3, retarget: str | None = None):
        """``retarget``: a mode of controls/retarget.py (``mirror`` or ``relative``), or None: the
        driver's landmarks are used as they are (absolute positions)."""
        self.smoother = LandmarkSmoother(smoother)
        self.stale_s = stale_s
        self._lock = threading.Lock()
        self.motion: RecordedMotion | None = None
        self.motion_pos = 0
        self.body = neutral_pose()
        self.retargeter: Retargeter | None = None
        self.driver: np.ndarray | None = None          # the last detection as it came (the preview's)
        self.set_retarget(retarget)

    def set_body(self, rest: np.ndarray | None) -> None:
        """The avatar's own body, its (33, 4) pose on its first frame (None: the standard body):
        retargeting keeps its bones, and nobody in view relaxes to it. Resets the stream's pose."""
        self.body = neutral_pose() if rest is None else sanitize(rest)
        self.smoother.neutral = self.body.copy()
        if self.retargeter is not None:
            self.retargeter.set_rest(self.body)
        self.reset()

    def set_retarget(self, mode: str | None) -> None:
        """``mirror``, ``relative`` or None (off); resets the stream's pose."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"retarget mode must be one of {MODES} or None, got {mode!r}")
        self.retargeter = None if mode is None else Retargeter(self.body, RetargetConfig(mode=mode))
        self.reset()

    @property
    def retarget_mode(self) -> str | None:
        return None if self.retargeter is None else self.retargeter.config.mode

    def reset(self) -> None:
        """Back to the avatar's rest pose (the motion, if any, restarts)."""
        with self._lock:
            self.smoother.reset()
            if self.retargeter is not None:
                self.retargeter.reset()
            self.emitted = self.smoother.pose.copy()
            self.last_push: float | None = None
            self.motion_pos = 0
            self.motion_frames = 0
            self.detected = False
            self.driver = None

    def set_motion(self, motion: RecordedMotion | None) -> None:
        """Drive from a recorded motion (None: back to the webcam). With retargeting on, the motion
        moves the avatar's own body like any driver (its first pose is the reference)."""
        with self._lock:
            self.motion = motion
            self.motion_pos = 0
            self.motion_frames = 0
            if self.retargeter is not None:
                self.retargeter.reset()

    def push(self, landmarks: np.ndarray | None, t: float) -> np.ndarray:
        """One detection at time t (s); returns the smoothed (retargeted) pose now in use."""
        with self._lock:
            return self._push(landmarks, t)

    def _push(self, landmarks: np.ndarray | None, t: float) -> np.ndarray:
        self.last_push = t
        self.driver = None if landmarks is None else sanitize(landmarks)
        if self.retargeter is not None:
            landmarks = self.retargeter(landmarks, t)
        pose = self.smoother.update(landmarks, t)
        self.detected = self.smoother.status == "tracking"        # a pose with nothing visible is nobody
        return pose

    def _retarget_frame(self, landmarks: np.ndarray, t: float) -> np.ndarray:
        pose = self.retargeter(landmarks, t)
        return self.emitted.copy() if pose is None else pose

    def follow(self, landmarks: np.ndarray, t: float, fps: float = 24.0) -> np.ndarray:
        """Driving poses given frame by frame (the API): (n, 33, 4), frame j at t + j / fps, each
        retargeted and smoothed as a detection (one with nothing visible is nobody: hold, then
        relax) -> (n, 33, 4) float32 controls, one per frame."""
        with self._lock:
            out = [self._push(lm, t + j / fps) for j, lm in enumerate(np.asarray(landmarks, np.float32))]
            self.emitted = out[-1].copy()
            return np.stack(out).astype(np.float32)

    @property
    def status(self) -> str:
        if self.motion is not None:
            return f"playing {self.motion.name}"
        return self.smoother.status

    def current(self) -> np.ndarray:
        """(33, 4) the pose the avatar is heading to."""
        with self._lock:
            if self.motion is not None:
                return self.emitted.copy() if self.retargeter is not None else self.motion.frames(self.motion_pos, 1)[0]
            return self.smoother.pose.copy()

    def next_frames(self, n: int, t: float) -> np.ndarray:
        """(n, 33, 4) float32 landmarks for the next n video frames at time t (s)."""
        with self._lock:
            if self.motion is not None:
                out = self.motion.frames(self.motion_pos, n)
                self.motion_pos = (self.motion_pos + n) % len(self.motion)
                if self.retargeter is not None:
                    fps = self.motion.fps
                    out = np.stack([self._retarget_frame(f, (self.motion_frames + j) / fps) for j, f in enumerate(out)])
                    self.motion_frames += n
                self.emitted = out[-1].copy()
                return out.astype(np.float32)
            if self.last_push is None or t - self.last_push > self.stale_s:
                self.smoother.update(None, t)          # webcam quiet: nobody in view
                self.detected = False
            goal = self.smoother.pose
            w = (np.arange(1, n + 1, dtype=np.float32) / n)[:, None, None]
            out = (1.0 - w) * self.emitted[None] + w * goal[None]      # (n, 33, 4)
            self.emitted = goal.copy()
            return out.astype(np.float32).reshape(n, NUM_LANDMARKS, 4)
