"""The webcam pipeline of the avatar: a camera frame in, the driver's pose and a preview out (no gradio).

    tracker = WebcamTracker()
    landmarks, preview, note = tracker.track(frame)   # any array; landmarks in the model's square or None
    tracker.close()

Each frame is shrunk to ``DETECT_WIDTH`` (MediaPipe's landmarks are normalised, so any scale will
do), the body is found by the tracker's own ``PoseDetector`` (made at the first frame; one per
stream, as it follows the person from frame to frame), and the landmarks are normalised to the
centre square the model sees (``to_square``). The preview is a small copy of the frame with the
driver's skeleton and that square. A frame that holds no picture gives no landmarks, no preview
and a note saying why, for the readout.
"""
from __future__ import annotations

import collections
import time

import numpy as np

from controls.detector import MIN_SIDE, PoseDetector, as_rgb_frame
from controls.landmarks import draw_skeleton, to_square

DETECT_WIDTH = 320     # MediaPipe takes 41 ms a 640x480 frame here and 24 ms at 320x240, same landmarks


class WebcamTracker:
    """One stream's webcam: its pose detector, the detection times and the size of the last frame."""

    def __init__(self, detect_width: int = DETECT_WIDTH, preview_width: int = 240, model_complexity: int = 1):
        self.detect_width = detect_width
        self.preview_width = preview_width
        self.model_complexity = model_complexity
        self.detector: PoseDetector | None = None
        self.pose_ms: collections.deque = collections.deque(maxlen=48)   # detection times, newest last
        self.shape: tuple[int, int] | None = None                        # (H, W) of the last usable frame

    def track(self, frame: object) -> tuple[np.ndarray | None, np.ndarray | None, str]:
        """(the (33, 4) landmarks normalised to the centre square, or None: nobody in view; the
        preview (frame + skeleton + square); a note). A frame with no usable picture gives
        (None, None, why it is unusable); a usable one an empty note."""
        rgb = as_rgb_frame(frame)
        if rgb is None:
            return None, None, unusable(frame)
        self.shape = rgb.shape[:2]
        if self.detector is None:
            self.detector = PoseDetector(model_complexity=self.model_complexity)
        t0 = time.perf_counter()
        lm = self.detector.detect(shrink(rgb, self.detect_width))     # landmarks are normalised: any scale will do
        self.pose_ms.append((time.perf_counter() - t0) * 1e3)
        H, W = rgb.shape[:2]
        return (None if lm is None else to_square(lm, W, H)), draw_preview(rgb, lm, self.preview_width), ""

    def preview(self, frame: object) -> np.ndarray | None:
        """The preview of a frame without detecting anyone (None if it holds no picture)."""
        rgb = as_rgb_frame(frame)
        return None if rgb is None else draw_preview(rgb, None, self.preview_width)

    def close(self) -> None:
        """Free the detector (a later frame makes a new one)."""
        if self.detector is not None:
            self.detector.close()
            self.detector = None


def unusable(frame: object) -> str:
    """Why a webcam frame gave no picture (``as_rgb_frame`` returned None), for the readout."""
    if frame is None:
        return "no frame arrived (is the camera allowed and free?)"
    shape = getattr(frame, "shape", None)
    if not shape:
        return "the frame was not an image"
    if len(shape) >= 2 and min(shape[:2]) < MIN_SIDE:
        return f"the frame ({shape[1]}×{shape[0]}) is too small to find a person in"
    return f"the frame has an unusable layout {tuple(shape)}"


def shrink(rgb: np.ndarray, width: int) -> np.ndarray:
    """The frame at most ``width`` wide (area-averaged)."""
    import cv2

    H, W = rgb.shape[:2]
    if W <= width:
        return rgb
    return cv2.resize(rgb, (width, max(1, round(H * width / W))), interpolation=cv2.INTER_AREA)


def draw_preview(rgb: np.ndarray, landmarks: np.ndarray | None, width: int = 240) -> np.ndarray:
    """A small copy of a webcam frame with the skeleton and the square the model sees."""
    import cv2

    out = draw_skeleton(shrink(rgb, width), landmarks)
    sh, sw = out.shape[:2]
    s = min(sh, sw)
    x0, y0 = (sw - s) // 2, (sh - s) // 2
    cv2.rectangle(out, (x0, y0), (x0 + s - 1, y0 + s - 1), (255, 255, 255), 1)
    return out


def pose_canvas(landmarks: np.ndarray, size: int) -> np.ndarray:
    """A pose drawn on a dark square (the retargeted pose beside the preview, a recorded motion's)."""
    return draw_skeleton(np.full((size, size, 3), 24, np.uint8), landmarks)
