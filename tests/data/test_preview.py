"""Previews: a contact sheet with one row per clip and one column per k-th frame, and MP4s."""
import numpy as np
from PIL import Image

from data.preview import main
from data.video import read_video


def test_sheet_and_videos(tmp_path):
    main(["--source", "photo", "--seeds", "0", "1", "--frames", "9", "--size", "32", "--every", "4",
          "--out", str(tmp_path)])
    sheet = np.asarray(Image.open(tmp_path / "photo-sheet.png"))
    assert sheet.shape == (2 * 32 + 2, 3 * 32 + 2 * 2, 3)  # 2 clips x frames 0, 4, 8, 2 px gaps
    assert read_video(tmp_path / "photo-1.mp4").shape == (9, 32, 32, 3)
