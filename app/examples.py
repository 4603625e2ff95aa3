"""Example first frames and recorded motions shipped in ``assets/examples/`` (built by ``app.build_examples``).

Layout: ``<dir>/<mode>/*.png|jpg`` (``default.*`` first: the mode's default frame) and
``<dir>/motions/*.npz``. An avatar render dropped into ``avatar/`` as ``default.png`` is picked
up without code changes. A render may have its true pose beside it, ``<stem>.pose.json`` (33 rows
of [x, y, z, visibility]): the avatar's body for retargeting (controls/retarget.py), where MediaPipe
finds no person in a small render.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from controls.motion import list_motions

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class Example:
    path: Path
    caption: str


def _caption(p: Path) -> str:
    stem = p.stem
    if stem == "default":
        return "default"
    kind, _, rest = stem.partition("-")
    return f"{kind} {rest.replace('_', ' ')}".strip()


class Examples:
    """The example gallery of each mode, its default frame, and the recorded motions."""

    def __init__(self, directory: str | Path = DEFAULT_DIR):
        self.dir = Path(directory)
        self._cache: dict[Path, np.ndarray] = {}

    def gallery(self, mode: str) -> list[Example]:
        d = self.dir / mode
        if not d.is_dir():
            return []
        # the default, then renders of the training distribution, then photos
        files = sorted((p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS),
                       key=lambda p: (p.stem != "default", p.stem.startswith("photo"), p.name))
        return [Example(p, _caption(p)) for p in files]

    def load(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            self._cache[path] = np.asarray(Image.open(path).convert("RGB"))
        return self._cache[path]

    def poses(self) -> dict[str, np.ndarray]:
        """{image digest: (33, 4) true pose} of every example with a ``.pose.json`` beside it."""
        out = {}
        for mode in ("avatar",):
            for e in self.gallery(mode):
                side = e.path.with_suffix(".pose.json")
                if side.is_file():
                    out[image_digest(self.load(e.path))] = np.asarray(json.loads(side.read_text()), np.float32)
        return out

    def default(self, mode: str) -> np.ndarray | None:
        g = self.gallery(mode)
        return self.load(g[0].path) if g else None

    def motions(self) -> dict[str, Path]:
        return list_motions(self.dir / "motions")


def image_digest(image: np.ndarray) -> str:
    """A key of an image's pixels (the same picture, from a file or the page, has the same key)."""
    a = np.ascontiguousarray(image, dtype=np.uint8)
    return hashlib.sha1(a.tobytes() + str(a.shape).encode()).hexdigest()
