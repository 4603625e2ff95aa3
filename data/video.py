"""Video and image file output: H.264 MP4 through PyAV, contact sheets as PNG."""
from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
from PIL import Image


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: int = 24, crf: int = 18) -> Path:
    """(F, H, W, 3) uint8 -> H.264 MP4 (yuv420p; odd sizes are padded to even)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames)
    F, H, W, _ = frames.shape
    Hp, Wp = H + H % 2, W + W % 2
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = Wp, Hp, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for f in frames:
            if (Hp, Wp) != (H, W):
                f = np.pad(f, ((0, Hp - H), (0, Wp - W), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of a video file as (F, H, W, 3) uint8."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def contact_sheet(rows: list[np.ndarray], path: str | os.PathLike | None = None, gap: int = 2) -> np.ndarray:
    """Rows of (N, H, W, 3) uint8 frames -> one image (optionally saved as PNG)."""
    H, W = rows[0].shape[1:3]
    n = max(len(r) for r in rows)
    sheet = np.full((len(rows) * (H + gap) - gap, n * (W + gap) - gap, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, f in enumerate(r):
            sheet[i * (H + gap):i * (H + gap) + H, j * (W + gap):j * (W + gap) + W] = f
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(path)
    return sheet
