"""Where a stream's controls come from: one interface over the camera and the pose inputs (no gradio).

    source = source_for("camera", camera=CameraInput(), pose=PoseInput())
    controls = source.next_frames(4, t)          # the next 4 video frames' controls at time t (s)

A stream picks its source once, by the control mode of its model (``camera``: a world model driven
by keys and sliders; ``pose``: an avatar driven by a body pose), and then only asks it for frames.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from controls.camera_input import CameraInput
from controls.pose_input import PoseInput


class ControlSource(Protocol):
    """Per-frame controls of a stream."""

    def next_frames(self, n: int, t: float) -> np.ndarray:
        """The controls of the next ``n`` video frames at time ``t`` (s, monotonic)."""
        ...


class CameraSource:
    """Held keys and slider rates -> (n, 7) camera controls (``CameraInput``; the time is not used)."""

    def __init__(self, camera: CameraInput):
        self.camera = camera

    def next_frames(self, n: int, t: float) -> np.ndarray:
        return self.camera.next_frames(n)


class PoseSource:
    """The webcam's detections or a recorded motion -> (n, 33, 4) landmarks (``PoseInput``)."""

    def __init__(self, pose: PoseInput):
        self.pose = pose

    def next_frames(self, n: int, t: float) -> np.ndarray:
        return self.pose.next_frames(n, t)


def source_for(mode: str, camera: CameraInput, pose: PoseInput) -> ControlSource | None:
    """The source of a model's control mode (``camera`` or ``pose``); None for a model that takes none."""
    if mode == "camera":
        return CameraSource(camera)
    if mode == "pose":
        return PoseSource(pose)
    return None
