"""Sharded clip storage: frames as memory-mappable .npy, ground truth as .npz, meta as JSON.

A shard ``<dir>/<name>-NNNNN`` holds clips of one shape:
  ``.frames.npy``  (N, F, H, W, 3) uint8
  ``.truth.npz``   controls (N, F, Dc) and, where present, K, w2c, landmarks, mask
  ``.json``        a list of N meta dicts
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from data.clip import Clip

_ARRAYS = ("controls", "K", "w2c", "landmarks", "mask")


def write_shard(prefix: str | os.PathLike, clips: list[Clip]) -> None:
    """Write ``clips`` (all the same shape) as one shard; files appear atomically."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    shapes = {c.frames.shape for c in clips}
    if len(shapes) != 1:
        raise ValueError(f"clips in one shard must share a shape, got {shapes}")
    tmp = prefix.with_name(prefix.name + ".tmp")
    np.save(f"{tmp}.frames.npy", np.stack([c.frames for c in clips]))
    arrays = {}
    for name in _ARRAYS:
        vals = [getattr(c, name) for c in clips]
        if all(v is not None for v in vals):
            arrays[name] = np.stack(vals)
    np.savez(f"{tmp}.truth.npz", **arrays)
    Path(f"{tmp}.json").write_text(json.dumps([c.meta for c in clips]))
    for ext in (".frames.npy", ".truth.npz", ".json"):  # json last: it marks a complete shard
        os.replace(f"{tmp}{ext}", f"{prefix}{ext}")


class ShardReader:
    """Random access to every clip under a directory of shards (frames memory-mapped)."""

    def __init__(self, root: str | os.PathLike | list):
        """``root``: a shard directory, several (a list, or one string joined by commas: a mix
        of sources, read in the order given)."""
        parts = root.split(",") if isinstance(root, str) else root if isinstance(root, (list, tuple)) else [root]
        self.roots = [Path(str(r).strip()) for r in parts]
        self.root = self.roots[0]
        if not any(m for r in self.roots for m in r.glob("*.json")):
            raise FileNotFoundError(f"no shards under {', '.join(str(r) for r in self.roots)}")
        self._frames, self._truth, self._meta, self._index = [], [], [], []
        self._sources = []                                      # (root, first clip, clips) per root
        for root in self.roots:
            first = len(self._index)
            for mpath in sorted(root.glob("*.json")):
                prefix = str(mpath)[: -len(".json")]
                if prefix.endswith(".tmp"):
                    continue
                self._frames.append(np.load(f"{prefix}.frames.npy", mmap_mode="r"))
                with np.load(f"{prefix}.truth.npz") as z:
                    self._truth.append({k: z[k] for k in z.files})
                meta = json.loads(mpath.read_text())
                self._meta.append(meta)
                self._index += [(len(self._frames) - 1, i) for i in range(len(meta))]
            self._sources.append((root, first, len(self._index) - first))

    def sources(self) -> list[tuple[Path, int, int]]:
        """(directory, index of its first clip, number of clips) of each directory of the mix."""
        return list(self._sources)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self._frames[0].shape[1:])

    def frames(self, i: int) -> np.ndarray:
        """(F, H, W, 3) uint8 memory-mapped frames of clip i."""
        s, j = self._index[i]
        return self._frames[s][j]

    def truth(self, i: int, name: str) -> np.ndarray | None:
        s, j = self._index[i]
        a = self._truth[s].get(name)
        return None if a is None else a[j]

    def meta(self, i: int) -> dict:
        s, j = self._index[i]
        return self._meta[s][j]

    def clip(self, i: int) -> Clip:
        return Clip(frames=np.asarray(self.frames(i)), meta=self.meta(i),
                    **{k: self.truth(i, k) for k in _ARRAYS})

    def __iter__(self) -> Iterator[Clip]:
        for i in range(len(self)):
            yield self.clip(i)
