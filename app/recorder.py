"""Recording a stream to an H.264 MP4 as it is generated (PyAV / libx264; no UI imports).

    rec = Recorder(path, fps=24, size=128)
    rec.add(frames)          # (n, H, W, 3) uint8, from the generating thread
    path = rec.close()       # a playable .mp4

Encoding happens on the fly (a 128 px frame costs about a millisecond), so stopping gives the
file at once and memory stays flat; ``max_seconds`` bounds a forgotten recording.
"""
from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np


class Recorder:
    """One MP4 file being written; thread-safe."""

    def __init__(self, path: str | Path, fps: float, size: int, max_seconds: float = 600.0):
        self.path = Path(path)
        self.size = int(size) + int(size) % 2              # H.264 4:2:0 wants even sides
        self.fps = max(1, int(round(fps)))
        self.max_frames = int(max_seconds * self.fps)
        self.frames = 0
        self._lock = threading.Lock()
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=self.fps)
        self._stream.width = self._stream.height = self.size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": "18", "preset": "veryfast"}
        self.closed = False

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def full(self) -> bool:
        return self.frames >= self.max_frames

    def add(self, frames: np.ndarray) -> None:
        """Append (n, H, W, 3) or (H, W, 3) uint8 frames (ignored once closed or full)."""
        f = np.asarray(frames, dtype=np.uint8)
        if f.ndim == 3:
            f = f[None]
        with self._lock:
            if self.closed:
                return
            for img in f:
                if self.frames >= self.max_frames:
                    break
                if img.shape[:2] != (self.size, self.size):
                    img = np.pad(img, ((0, self.size - img.shape[0]), (0, self.size - img.shape[1]), (0, 0)), mode="edge")
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                for packet in self._stream.encode(vf):
                    self._container.mux(packet)
                self.frames += 1

    def close(self) -> Path:
        """Flush and close; returns the file."""
        with self._lock:
            if not self.closed:
                for packet in self._stream.encode():
                    self._container.mux(packet)
                self._container.close()
                self.closed = True
        return self.path
